"""The teacher's reference (accuracy, predictions, invariance maps) is computed once and kept on disk."""
import torch
from safetensors.torch import load_file, save_file

from hard_core.config import RunConfig
from hard_core.train import EvalMetrics, Snapshot, train
from hard_core.train.reference import reference_key
from hard_core.train.setup import PROBE_IMAGES, build_session, held
from hard_core.probes.live import RunProbe

CFG = dict(dataset="mnist5k", canvas=28, teacher="default", student="mlp", steps=4, batch_size=32, log_every=2,
           eval_every=4, snapshot_every=4, probe_every=4, checkpoint_every=4, suites="shift:2", seed=1)


def first_run(cfg: RunConfig) -> tuple[dict, dict, Snapshot]:
    """The teacher's accuracy, the student's agreement with it, and the probing snapshot of a short run."""
    events = list(train(cfg))
    teacher = next(e for e in events if isinstance(e, EvalMetrics) and e.model == "teacher")
    student = next(e for e in events if isinstance(e, EvalMetrics) and e.model == "student")
    probed = next(e for e in events if isinstance(e, Snapshot) and "disagreement" in e.tensors)
    return teacher.acc, student.agree, probed


def test_a_second_run_reads_the_kept_reference_and_a_broken_one_is_recomputed(tmp_path, monkeypatch):
    monkeypatch.setenv("HARD_CACHE", str(tmp_path))
    cfg = RunConfig(**CFG)
    acc, agree, snap = first_run(cfg)
    (kept,) = tmp_path.glob("reference-*.safetensors")
    tensors = load_file(kept)
    assert set(tensors) >= {"acc.test", "acc.shift", "pred.test", "pred.shift", "map.shift.acc", "map.shift.kl"}
    assert float(tensors["acc.shift"]) == acc["shift"]

    # the second run takes what the file says: shown by a file whose numbers were changed
    tensors["acc.shift"] = torch.tensor(0.125)
    tensors["pred.test"] = torch.full_like(tensors["pred.test"], -1)  # agrees with no student prediction
    tensors["map.shift.acc"] = torch.full_like(tensors["map.shift.acc"], 0.5)
    save_file(tensors, kept)
    acc2, agree2, snap2 = first_run(cfg)
    assert acc2["shift"] == 0.125 and acc2["test"] == acc["test"]
    assert agree2["test"] == 0.0 and agree["test"] > 0.2
    assert torch.all(snap2.tensors["invariance.shift.teacher.acc"] == 0.5)

    # an unreadable file is computed again, with the first run's numbers, and replaced
    kept.write_bytes(b"not a safetensors file")
    acc3, agree3, snap3 = first_run(cfg)
    assert acc3 == acc and agree3 == agree
    assert torch.equal(snap3.tensors["invariance.shift.teacher.kl"], snap.tensors["invariance.shift.teacher.kl"])
    assert float(load_file(kept)["acc.shift"]) == acc["shift"]


def test_the_key_changes_with_the_teacher_and_the_suites_not_with_the_student(tmp_path, monkeypatch):
    monkeypatch.setenv("HARD_CACHE", str(tmp_path))
    s = build_session(RunConfig(**CFG))
    probe = RunProbe(s.teacher, held(s.dataset, PROBE_IMAGES), s.device)
    key = reference_key(s.teacher, s.suites, probe, s.autocast)
    assert key == reference_key(s.teacher, s.suites, probe, s.autocast)
    other = build_session(RunConfig(**{**CFG, "student": "cnn", "seed": 5}))
    assert reference_key(other.teacher, other.suites, probe, other.autocast) == key
    wider = build_session(RunConfig(**{**CFG, "suites": "shift:3"}))
    assert reference_key(wider.teacher, wider.suites, probe, wider.autocast) != key
    with torch.no_grad():
        next(s.teacher.parameters()).add_(1e-6)
    assert reference_key(s.teacher, s.suites, probe, s.autocast) != key


def test_an_unwritable_cache_only_costs_time(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder would be")
    monkeypatch.setenv("HARD_CACHE", str(blocked / "cache"))
    acc, _, _ = first_run(RunConfig(**CFG))
    assert 0.5 < acc["test"] <= 1.0
