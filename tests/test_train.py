"""End-to-end: the one loop pretrains, distils, resumes, obeys control.json and fails cleanly."""
import json

import pytest
import torch

from hard_core import load_student
from hard_core.cli import main
from hard_core.config import RunConfig
from hard_core.errors import UserError
from hard_core.runs import RunReader, run_to_dir
from hard_core.train import Checkpoint, EvalMetrics, StepMetrics, train
from hard_core.train.loop import Diverged


def final_eval(run_dir, model="student"):
    evals = [e for e in RunReader(run_dir).poll() or [] if e["kind"] == "eval" and e["model"] == model]
    return evals[-1]["acc"]


def test_pretrained_teacher_learns(mnist_teacher):
    acc = final_eval(mnist_teacher)
    assert acc["test"] > 0.85, acc  # chance is 0.10
    assert (mnist_teacher / "checkpoint.safetensors").is_file()


def test_kd_student_learns_from_teacher_on_mnist5k(mnist_teacher, tmp_path):
    code = main(["train", "--dataset", "mnist5k", "--teacher", str(mnist_teacher), "--student", "mlp",
                 "--steps", "150", "--eval-every", "150", "--suites", "shift:3", "--seed", "0",
                 "--out", str(tmp_path / "R")])
    assert code == 0
    assert final_eval(tmp_path / "R")["test"] > 0.80, final_eval(tmp_path / "R")
    student = load_student(tmp_path / "R")
    assert student.input_shape == (1, 28, 28) and not student.training
    x = torch.rand(3, *student.input_shape)
    assert student(x).shape == (3, 10)
    teacher_acc = final_eval(tmp_path / "R", "teacher")
    assert teacher_acc["test"] == pytest.approx(final_eval(mnist_teacher)["test"], abs=1e-6)


def test_mnist1d_teacher_and_student_learn(tmp_path):
    assert main(["pretrain", "--dataset", "mnist1d", "--augment", "shift", "--steps", "300",
                 "--eval-every", "300", "--lr", "3e-3", "--out", str(tmp_path / "T")]) == 0
    teacher_acc = final_eval(tmp_path / "T")["test"]
    assert teacher_acc > 0.6, teacher_acc  # chance 0.10
    assert main(["train", "--dataset", "mnist1d", "--teacher", str(tmp_path / "T"), "--student", "mlp",
                 "--augment", "mixup", "--steps", "200", "--eval-every", "200", "--out", str(tmp_path / "R")]) == 0
    assert final_eval(tmp_path / "R")["test"] > 0.3


def small(**kw):
    base = dict(dataset="mnist5k", loss="ce", student="mlp", steps=20, batch_size=32, log_every=5,
                eval_every=10, snapshot_every=10, checkpoint_every=10, suites="shift:2", seed=3)
    return RunConfig(**{**base, **kw})


def test_same_seed_same_run_and_resume_continues_exactly(tmp_path):
    cfg = small(augment="shift", max_shift=2)
    run_to_dir(cfg, tmp_path / "a")

    def crash_after_first_checkpoint(event):
        if isinstance(event, Checkpoint) and event.step == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_to_dir(cfg, tmp_path / "b", on_event=crash_after_first_checkpoint)
    assert RunReader(tmp_path / "b").status()["state"] == "failed"
    run_to_dir(cfg, tmp_path / "b", resume=True)
    a, b = load_student(tmp_path / "a"), load_student(tmp_path / "b")
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    losses = lambda d: [e["loss"] for e in RunReader(d).poll() if e["kind"] == "step"]  # noqa: E731
    assert losses(tmp_path / "a")[-2:] == losses(tmp_path / "b")[-2:]


def test_knobs_pause_and_stop_take_effect_during_a_run():
    polls = {"n": 0}

    def control():
        polls["n"] += 1
        n = polls["n"]
        if n >= 12:
            return {"lr": 0.5, "state": "stop"}
        if 5 <= n < 8:
            return {"lr": 0.5, "state": "pause"}
        return {"lr": 0.5} if n >= 3 else {}

    events = list(train(small(schedule="constant", steps=50), control=control))
    states = [e.state for e in events if e.kind == "status"]
    assert "paused" in states and states[-1] == "stopped"
    lrs = [e.lr for e in events if isinstance(e, StepMetrics)]
    assert lrs[-1] == 0.5
    assert isinstance(events[-2], Checkpoint) and events[-2].knobs["lr"] == 0.5


def test_diverging_loss_fails_with_one_line_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    import hard_core.train.step as step

    calls = {"n": 0}
    real = step.ce_loss

    def blows_up_at_step_13(*args):
        calls["n"] += 1
        loss = real(*args)
        return loss * float("nan") if calls["n"] >= 13 else loss

    monkeypatch.setattr(step, "ce_loss", blows_up_at_step_13)
    cfg = small(steps=40, checkpoint_every=10, log_every=5)
    with pytest.raises(Diverged, match="loss became nan at step 15"):
        run_to_dir(cfg, tmp_path / "r")
    status = json.loads((tmp_path / "r" / "status.json").read_text())
    assert status["state"] == "failed" and "lower --lr" in status["message"]
    student = load_student(tmp_path / "r")  # the step-10 checkpoint, intact and finite
    assert all(torch.isfinite(p).all() for p in student.parameters())


def test_eval_events_report_every_suite(tmp_path):
    events = list(train(small(suites="shift:2,rotation:20,noise:0.2", steps=10)))
    ev = [e for e in events if isinstance(e, EvalMetrics)][-1]
    assert list(ev.acc) == ["test", "shift", "rotation", "noise"]
    assert all(0.0 <= v <= 1.0 for v in ev.acc.values())


def test_diverged_is_a_user_error():
    assert issubclass(Diverged, UserError)
