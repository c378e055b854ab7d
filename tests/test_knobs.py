"""Hostile knobs: one validator for every control request (single process and torchrun alike), bad
values and unreadable control.json ignored with one status line, and no checkpoint ever written with NaN
or infinite weights or optimizer state: the divergence message names a checkpoint that exists and resumes."""
import json
import math
from pathlib import Path

import pytest
import torch

from hard_core.cli import main
from hard_core.config import KNOBS, RunConfig, check_knobs
from hard_core.errors import UserError
from hard_core.runs import ControlFile, RunReader, RunWriter, checkpoint_step, load_student, request, run_to_dir
from hard_core.train import Checkpoint, Diverged, Status, StepMetrics, train


def small(**kw) -> RunConfig:
    base = dict(dataset="mnist5k", loss="ce", student="mlp", steps=30, batch_size=32, log_every=5,
                eval_every=30, snapshot_every=30, checkpoint_every=1, suites="none", seed=5, threads=1, device="cpu")
    return RunConfig(**{**base, **kw})


# ---- (a) the one validator ----

BAD = [("lr", float("nan")), ("lr", float("inf")), ("lr", -1.0), ("lr", 0), ("lr", 0.0), ("lr", 11.0),
       ("lr", 1e9), ("lr", "fast"), ("lr", "0.001"), ("lr", None), ("lr", [1]), ("lr", {"v": 1}), ("lr", True),
       ("lr", 10 ** 400), ("temperature", 0), ("temperature", 101), ("temperature", float("-inf")),
       ("alpha", -0.1), ("alpha", 1.5), ("alpha", False), ("hard_lambda", -1), ("hard_lambda", float("nan"))]
GOOD = [("lr", 1e-3), ("lr", 10), ("lr", 1), ("temperature", 0.5), ("temperature", 100), ("alpha", 0),
        ("alpha", 1), ("alpha", 0.25), ("hard_lambda", 0), ("hard_lambda", 3.5)]


@pytest.mark.parametrize("knob,value", BAD)
def test_a_bad_knob_value_is_refused_with_a_one_line_reason(knob, value, tmp_path):
    good, refused = check_knobs({knob: value, "state": "run"})
    assert good == {} and len(refused) == 1
    line = refused[0]
    assert "\n" not in line and line.startswith(f"{knob}=") and "must be a finite number" in line
    if value is not None:  # request(R, lr=None) means "no change"
        with pytest.raises(UserError, match=f"invalid knob value: {knob}="):  # the README's request() refuses it
            request(tmp_path, **{knob: value})
        assert not (tmp_path / "control.json").exists()


@pytest.mark.parametrize("knob,value", GOOD)
def test_a_good_knob_value_is_accepted_as_a_float(knob, value):
    assert check_knobs({knob: value}) == ({knob: float(value)}, [])


def test_the_bounds_are_run_configs_own():
    refused = dict(r.split("=", 1) for r in check_knobs({k: -5 for k in KNOBS})[1])
    assert "> 0 and <= 10" in refused["lr"] and "> 0 and <= 100" in refused["temperature"]
    assert ">= 0 and <= 1" in refused["alpha"] and refused["hard_lambda"].endswith("(must be a finite number >= 0)")
    assert check_knobs(["lr", 1])[0] == {} and check_knobs({"state": "pause", "x": 1}) == ({}, [])


def test_request_still_merges_good_values_and_skips_none(tmp_path):
    request(tmp_path, lr=0.01, temperature=None)
    assert request(tmp_path, alpha=0.5) == {"lr": 0.01, "alpha": 0.5}


# ---- (b), (c) a running single-process run ignores bad requests and finishes ----

def _steer(run: Path, writes: dict):
    """on_event: at the step events named in `writes`, put that raw content into control.json."""
    def on_event(event):
        if isinstance(event, StepMetrics) and event.step in writes:
            content = writes[event.step]
            (run / "control.json").write_bytes(content if isinstance(content, bytes) else content.encode())
    return on_event


def _messages(run: Path) -> list[str]:
    return [e["message"] for e in RunReader(run).poll() if e["kind"] == "status"]


def test_lr_nan_in_control_json_is_ignored_with_one_line_and_the_run_finishes(tmp_path):
    run = tmp_path / "R"
    run_to_dir(small(), run, on_event=_steer(run, {5: '{"lr": NaN}', 20: '{"lr": 0.0005}'}))
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and status["step"] == 30
    ignored = [m for m in _messages(run) if m.startswith("ignored")]
    assert ignored == ["ignored lr=nan (must be a finite number > 0 and <= 10); kept lr=0.002, temperature=4, "
                       "alpha=1, hard_lambda=1"], ignored  # said once, though the file held it for 15 steps
    assert "set lr=0.0005" in _messages(run)  # a good value afterwards is taken
    steps = [e for e in RunReader(run).poll() if e["kind"] == "step"]
    assert all(math.isfinite(e["loss"]) for e in steps)
    assert load_student(run)  # the last checkpoint is whole and finite


def test_binary_garbage_and_wrong_types_in_control_json_do_not_crash_the_run(tmp_path):
    run = tmp_path / "R"
    writes = {5: '{"lr": 0.001}', 8: b"\x00\xff\xfe\x80garbage\x9c", 11: "[1, 2]", 14: "{\"lr\": ",
              17: '{"lr": "fast", "temperature": null, "alpha": [1], "hard_lambda": true, "state": 7}',
              20: "[" * 100_000, 23: '{"lr": 1e999, "reason": ["x"]}'}
    run_to_dir(small(), run, on_event=_steer(run, writes))
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and status["step"] == 30
    ignored = [m for m in _messages(run) if m.startswith("ignored")]
    assert any("control.json is not valid JSON" in m for m in ignored)
    assert any("control.json holds a list, not an object" in m for m in ignored)
    assert any("lr='fast'" in m and "temperature=None" in m and "alpha=[1]" in m and "hard_lambda=True" in m
               for m in ignored)
    assert any("lr=inf" in m for m in ignored)
    assert all("\n" not in m and "kept lr=0.001" in m for m in ignored[1:])  # the last good request holds
    steps = [e for e in RunReader(run).poll() if e["kind"] == "step"]
    assert steps[-1]["lr"] < 0.001 and all(math.isfinite(e["loss"]) for e in steps)


def test_control_file_keeps_the_last_good_requests_when_the_file_turns_to_garbage(tmp_path):
    control = ControlFile(tmp_path)
    request(tmp_path, state="pause", lr=0.01)
    assert control() == {"state": "pause", "lr": 0.01}
    (tmp_path / "control.json").write_bytes(b"\xff\xfe\x00")
    import os
    os.utime(tmp_path / "control.json", ns=(1, 1))  # a new mtime, whatever the clock's resolution
    assert control() == {"state": "pause", "lr": 0.01, "unreadable": "control.json is not valid JSON"}


def test_a_python_control_callable_with_bad_values_is_validated_too():
    calls = {"n": 0}

    def control():
        calls["n"] += 1
        return {"lr": float("nan"), "temperature": -1} if calls["n"] > 3 else ["not", "a", "dict"]

    events = list(train(small(steps=8, checkpoint_every=8), control=control))
    assert events[-1].state == "finished"
    said = [e.message for e in events if isinstance(e, Status) and e.message.startswith("ignored")]
    assert said == ["ignored the control request is not an object; kept lr=0.002, temperature=4, alpha=1, "
                    "hard_lambda=1",
                    "ignored lr=nan (must be a finite number > 0 and <= 10); temperature=-1 (must be a finite "
                    "number > 0 and <= 100); kept lr=0.002, temperature=4, alpha=1, hard_lambda=1"]


# ---- (d) never a checkpoint with non-finite weights or optimizer state ----

def test_weights_gone_nan_fail_with_one_line_naming_a_checkpoint_that_exists_and_resumes(tmp_path, capsys):
    run = tmp_path / "R"

    def poison_after_checkpoint_7(event):
        if isinstance(event, Checkpoint) and event.step == 7:  # step 8's update makes the weights NaN, while
            state = event.optimizer.state  # its loss (computed before the update) is still finite
            for p in state:
                state[p]["exp_avg"].fill_(float("nan"))

    with pytest.raises(Diverged) as e:
        run_to_dir(small(), run, on_event=poison_after_checkpoint_7)
    message = str(e.value)
    assert "\n" not in message and e.value.step == 8
    assert message.startswith("the student's weights became NaN or infinite at step 8: the run diverged; lower --lr")
    assert message.endswith("the checkpoint at step 7 is kept: continue it with --resume and a lower --lr "
                            "(e.g. --lr 0.0002)")
    assert checkpoint_step(run) == 7 and not list(run.glob(".*.tmp"))
    student = load_student(run)  # whole and finite
    assert all(torch.isfinite(p).all() for p in student.parameters())
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "failed" and status["step"] == 8 and status["message"] == message
    assert main(["train", "--out", str(run), "--resume", "--lr", "2e-4"]) == 0  # the message's own advice
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and status["step"] == 30


def test_a_nan_loss_names_the_checkpoint_that_exists(tmp_path):
    run = tmp_path / "R"

    def poison_weights_after_checkpoint_12(event):
        if isinstance(event, Checkpoint) and event.step == 12:
            next(event.student.parameters()).data.fill_(float("nan"))

    with pytest.raises(Diverged, match=r"^the loss became nan at step 13: .*the checkpoint at step 12 is kept: "
                                       r"continue it with --resume"):
        run_to_dir(small(), run, on_event=poison_weights_after_checkpoint_12)
    assert checkpoint_step(run) == 12
    assert main(["train", "--out", str(run), "--resume"]) == 0


def test_the_run_writer_refuses_a_non_finite_checkpoint_and_leaves_the_file(tmp_path):
    cfg = small(steps=3)
    writer = RunWriter(tmp_path / "R", cfg)
    model = torch.nn.Linear(2, 2)
    model.spec = {"model": "test"}
    opt = torch.optim.AdamW(model.parameters())
    writer.write(Checkpoint(1, model, opt, {"lr": 1e-3}, None, None, 0.1))
    before = (tmp_path / "R" / "checkpoint.safetensors").read_bytes()
    model.weight.data[0, 0] = float("inf")
    with pytest.raises(Diverged, match=r"refused to write the checkpoint at step 2: its student holds NaN or "
                                       r"infinite values .*the last good checkpoint at step 1 is kept"):
        writer.write(Checkpoint(2, model, opt, {"lr": 1e-3}, None, None, 0.2))
    assert (tmp_path / "R" / "checkpoint.safetensors").read_bytes() == before
    writer.close()
