"""The teacher's kept outputs on the clean training images (hard_core/train/targets.py): the teacher runs only
on batches with an image it has not seen, the kept logits are its outputs, and a run resumed past the
first epoch (which replays the first sightings) ends with the weights of an uninterrupted one."""
import pytest
import torch

from hard_core.config import RunConfig
from hard_core.runs import RunReader, load_student, run_to_dir
from hard_core.train.events import Checkpoint
from hard_core.train.setup import build_session
from hard_core.train.targets import TeacherTargets

BASE = dict(dataset="mnist5k", canvas=40, teacher="default", student="mlp", batch_size=500, suites="none",
            eval_every=1000, snapshot_every=1000, probe_every=1000, log_every=5, threads=1)


def test_the_teacher_runs_in_the_first_epoch_only_and_the_kept_logits_are_its_outputs():
    s = build_session(RunConfig(**BASE, steps=24))
    calls = []
    s.teacher_step.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    batches = s.batches(0)
    per_epoch = len(s.train) // 500
    for step in range(1, 2 * per_epoch + 1):
        x, _ = next(batches)
        kept = s.targets(step, x)
        if step in (1, per_epoch + 1):  # a fresh batch and one of the second epoch: the teacher's own answer
            with torch.no_grad():
                torch.testing.assert_close(kept, s.teacher(x), rtol=1e-5, atol=1e-5)
    assert len(calls) == per_epoch + (1 if len(s.train) % 500 else 0) + 2  # + the two checks above
    assert bool(s.targets.known[:per_epoch * 500].any()) and s.targets.known.sum() >= per_epoch * 500


def test_kept_targets_only_where_the_batch_is_the_training_images():
    assert TeacherTargets.maybe(build_session(RunConfig(**BASE, steps=2))) is not None
    assert build_session(RunConfig(**BASE, steps=2, hard="affine")).targets is not None
    assert build_session(RunConfig(**BASE, steps=2, augment="shift")).targets is None  # new views every step
    assert build_session(RunConfig(**{**BASE, "teacher": None}, steps=2, loss="ce")).targets is None


@pytest.mark.parametrize("hard", ["none", "affine"])
def test_a_run_resumed_in_its_second_epoch_ends_with_the_same_weights(tmp_path, hard):
    cfg = RunConfig(**BASE, steps=20, hard=hard, checkpoint_every=12)  # 8 steps an epoch: resumed at 12

    def crash(event):
        if isinstance(event, Checkpoint) and event.step == 12:
            raise KeyboardInterrupt

    run_to_dir(cfg, tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        run_to_dir(cfg, tmp_path / "b", on_event=crash)
    run_to_dir(cfg, tmp_path / "b", resume=True)
    a, b = load_student(tmp_path / "a"), load_student(tmp_path / "b")
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    losses = lambda d: [e["loss"] for e in RunReader(d).poll() if e["kind"] == "step"]  # noqa: E731
    assert losses(tmp_path / "a") == losses(tmp_path / "b")


def test_a_resume_replays_the_first_sightings_row_for_row():
    """What a resumed run rebuilds before its first step: the same rows, from the same batches, bit for bit
    (per-image outputs need not be independent of the batch on every device, so the batches are replayed)."""
    s = build_session(RunConfig(**BASE, steps=24))
    batches = s.batches(0)
    for step in range(1, 13):
        s.targets(step, next(batches)[0])
    fresh = TeacherTargets(s)
    fresh.replay(12)
    assert torch.equal(fresh.known, s.targets.known) and bool(fresh.known.any())
    assert torch.equal(fresh.logits[fresh.known], s.targets.logits[s.targets.known])
