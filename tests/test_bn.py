"""BatchNorm-correct HARD: only the student's own training pass changes its BatchNorm statistics. Candidate
scoring, the game metrics of logging steps (`measure`) and the alternating augmentor update run the student
under `eval_mode`, so how often a run logs changes nothing it learns."""
import contextlib

import pytest
import torch

from hard_core.config import RunConfig
from hard_core.train import train
from hard_core.train.events import Checkpoint

STEPS = 8
# candidates: colour's own (4); affine with 2, so that scoring runs for a family that defaults to 1; mix and
# vae with their own 1 (between updates the teacher then sees x[:c] only when the step does not log)
CANDIDATES = {"affine": 2, "colour": None, "mix": None, "vae": None}


def _final_state(family: str, schedule: str, log_every: int) -> dict[str, torch.Tensor]:
    """A short HARD run of a BatchNorm student (small-cnn) on canvas 28, which has a shipped teacher and
    which the shipped VAE takes; the student's and the augmentor's state after the last step. One torch thread:
    on a busy 2-core machine two threads (and the loop's teacher-ahead thread) made these runs 5-20x slower."""
    cfg = RunConfig(dataset="mnist5k", canvas=28, teacher="default", student="small-cnn", suites="none",
                    hard=family, hard_schedule=schedule, hard_candidates=CANDIDATES[family], hard_every=2,
                    steps=STEPS, batch_size=32, seed=0, log_every=log_every, checkpoint_every=1000,
                    eval_every=1000, probe_every=1000, snapshot_every=1000, threads=1)
    last = None
    for event in train(cfg):
        if isinstance(event, Checkpoint):
            last = event
    assert last is not None and last.step == STEPS
    state = {f"student.{k}": v.clone() for k, v in last.student.state_dict().items()}
    state.update({f"augmentor.{k}": v.clone() for k, v in last.augmentor.state_dict().items()})
    return state


def _differing(a: dict, b: dict) -> list[str]:
    assert a.keys() == b.keys()
    return [k for k in a if not torch.equal(a[k], b[k])]


@pytest.mark.parametrize("schedule", ["alternate", "reverse"])
@pytest.mark.parametrize("family", ["affine", "colour", "mix", "vae"])
def test_logging_every_step_changes_nothing_a_bn_student_learns(family, schedule):
    """`--log-every 1` (game metrics at every step) and `--log-every 1000` (only at the last) end with
    bit-identical weights and buffers, BatchNorm's running statistics and counters included."""
    logged, quiet = _final_state(family, schedule, 1), _final_state(family, schedule, 1000)
    assert any(k.endswith("running_mean") for k in logged)  # the student does have BatchNorm
    assert _differing(logged, quiet) == []
    tracked = {k: v.item() for k, v in logged.items() if k.endswith("num_batches_tracked")}
    assert tracked and set(tracked.values()) == {STEPS}, tracked  # one update per step: its training pass


def test_the_comparison_sees_a_pass_that_leaves_train_mode_on(monkeypatch):
    """The test above can fail: with the step's `eval_mode` a no-op (the engine before the fix), scoring,
    measuring and the augmentor's pass update the statistics too, more often when every step logs."""
    from hard_core.train import step

    monkeypatch.setattr(step, "eval_mode", lambda *modules: contextlib.nullcontext())
    logged, quiet = _final_state("colour", "alternate", 1), _final_state("colour", "alternate", 1000)
    assert any(k.endswith("running_mean") for k in _differing(logged, quiet))
    assert logged["student.body.1.num_batches_tracked"].item() > 3 * STEPS
