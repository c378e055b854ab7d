"""Crash safety: SIGKILL at random moments and the README's resume, one writer per run, SIGTERM, a full
disk, a SIGTERMed `assets` (the table of bad inputs is tests/test_bad_input.py)."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from hard_core.cli import main
from hard_core.config import RunConfig
from hard_core.errors import UserError
from hard_core.runs import RunReader, checkpoint_step, load_student, run_to_dir

HARD_RUN = ["--dataset", "mnist5k", "--canvas", "40", "--teacher", "default", "--student", "mlp", "--hard", "affine",
            "--suites", "shift:6", "--eval-every", "20", "--log-every", "5", "--snapshot-every", "20",
            "--probe-every", "1000", "--seed", "0", "--threads", "1", "--device", "cpu"]


def engine(*argv) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hard_core", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def wait_for(check, timeout=120.0, what="it"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.001)
    raise AssertionError(f"timed out waiting for {what}")


def logged_step(run: Path) -> int:
    steps = [e["step"] for e in RunReader(run).poll() if e["kind"] == "step"]
    return steps[-1] if steps else 0


def in_checkpoint_write(run: Path) -> bool:
    return any(run.glob(".checkpoint.safetensors.*.tmp"))


def kill(p: subprocess.Popen) -> None:
    if p.poll() is None:
        os.kill(p.pid, signal.SIGKILL)
    p.wait()


def history(run: Path) -> list[dict]:
    return RunReader(run).poll()


def assert_clean_history(run: Path) -> None:
    events = history(run)
    for kind in ("step", "checkpoint"):
        steps = [e["step"] for e in events if e["kind"] == kind]
        assert steps == sorted(set(steps)), (kind, steps)  # every step logged once, in order
    evals = [(e["step"], e["model"]) for e in events if e["kind"] == "eval"]
    assert len(evals) == len(set(evals)), evals
    elapsed = [e["elapsed_s"] for e in events if e["kind"] == "step"]
    assert elapsed == sorted(elapsed)  # training time continues across resumes


@pytest.mark.slow
def test_sigkill_at_random_moments_then_the_readme_resume_ends_bit_identical(tmp_path):
    """Five SIGKILLs (two inside a checkpoint write, one while a resume is still loading, two at random
    steps), each followed by exactly `train --out R --resume`: the weights equal an uninterrupted run's."""
    steps = ["--steps", "60", "--checkpoint-every", "5"]
    ref, run = tmp_path / "ref", tmp_path / "R"
    assert engine("train", *HARD_RUN, *steps, "--out", str(ref)).wait() == 0
    rng = random.Random(0)
    moments = ["checkpoint-write", "loading", rng.randint(12, 30), "checkpoint-write", rng.randint(35, 55)]
    p = engine("train", *HARD_RUN, *steps, "--out", str(run))
    for i, moment in enumerate(moments):
        if moment == "checkpoint-write":  # the temporary checkpoint file exists: the kill lands mid-write
            wait_for(lambda: in_checkpoint_write(run) and logged_step(run) >= 10, what="a checkpoint write")
        elif moment == "loading":
            time.sleep(0.5)
        else:
            wait_for(lambda: logged_step(run) >= moment or p.poll() is not None, what=f"step {moment}")
            assert p.poll() is None, p.stderr.read()
        kill(p)
        if i == 0:  # a killed run reads as died, not as running forever
            assert RunReader(run).status()["state"] == "died"
        p = engine("train", "--out", str(run), "--resume")
    assert p.wait() == 0, p.stderr.read()
    a, b = load_file(str(ref / "checkpoint.safetensors")), load_file(str(run / "checkpoint.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # student, augmentor, optimizers
    assert_clean_history(run)
    final = lambda d: [e["acc"] for e in history(d) if e["kind"] == "eval" and e["model"] == "student"][-1]  # noqa: E731
    assert final(ref) == final(run)
    resumed_at = [r["step"] for r in json.loads((run / "config.json").read_text())["resumes"]]
    assert resumed_at and all(step % 5 == 0 for step in resumed_at)  # each from a whole checkpoint
    assert not list(run.glob(".*.tmp")) and not list(run.glob("snapshots/.*.tmp"))  # the kills' halves: removed


@pytest.mark.slow
def test_a_second_writer_is_refused_and_sigterm_stops_with_a_checkpoint(tmp_path, capsys):
    run = tmp_path / "R"
    p = engine("train", *HARD_RUN, "--steps", "2000", "--checkpoint-every", "1000", "--out", str(run))
    try:
        wait_for(lambda: logged_step(run) >= 5, what="the first run to train")
        assert main(["train", *HARD_RUN, "--out", str(run)]) == 2
        assert "being written by another process (pid " in capsys.readouterr().err
        assert main(["train", "--out", str(run), "--resume"]) == 2  # resuming a live run
        assert "being written by another process (pid " in capsys.readouterr().err
        os.kill(p.pid, signal.SIGTERM)
        assert p.wait(60) == 128 + signal.SIGTERM
    finally:
        kill(p)
    status = RunReader(run).status()
    assert status["state"] == "stopped" and status["message"] == "stopped by SIGTERM"
    assert load_file(str(run / "checkpoint.safetensors"))  # written at the stop
    assert checkpoint_step(run) == status["step"] >= 5


def test_sigterm_ends_a_command_that_trains_several_runs(tmp_path):
    """The matrix stops its run in progress with a checkpoint and exits 143; it never starts the next run."""
    out = tmp_path / "M"
    p = engine("matrix", "--worlds", "shift", "--methods", "kd,oracle", "--steps", "3000", "--student", "mlp",
               "--threads", "1", "--device", "cpu", "--out", str(out))
    try:
        wait_for(lambda: (out / "shift-kd-s0").is_dir() and logged_step(out / "shift-kd-s0") >= 10,
                 what="the first run to train")
        os.kill(p.pid, signal.SIGTERM)
        assert p.wait(60) == 128 + signal.SIGTERM
    finally:
        kill(p)
    assert "stopped by SIGTERM" in p.stderr.read()
    assert RunReader(out / "shift-kd-s0").status()["state"] == "stopped" and checkpoint_step(out / "shift-kd-s0") >= 10
    assert not (out / "shift-oracle-s0").exists()


def test_a_full_disk_at_a_checkpoint_keeps_the_last_good_one(tmp_path, monkeypatch):
    import hard_core.checkpoint as ckpt

    real, calls = ckpt.save_file, {"n": 0}

    def disk_fills_on_the_second_checkpoint(tensors, path, metadata=None):
        if metadata and "parts" in metadata:
            calls["n"] += 1
            if calls["n"] == 2:
                Path(path).write_bytes(b"\0" * 100)  # a partial write, then the error
                raise OSError(28, "No space left on device")
        return real(tensors, path, metadata=metadata)

    monkeypatch.setattr(ckpt, "save_file", disk_fills_on_the_second_checkpoint)
    cfg = RunConfig(dataset="mnist5k", loss="ce", student="mlp", steps=30, batch_size=32, checkpoint_every=10,
                    eval_every=30, suites="none", seed=1)
    with pytest.raises(UserError, match=r"no space left on device; the last good checkpoint at step 10 is kept"):
        run_to_dir(cfg, tmp_path / "R")
    assert checkpoint_step(tmp_path / "R") == 10 and not list((tmp_path / "R").glob(".*.tmp"))
    load_student(tmp_path / "R")  # whole and finite
    status = json.loads((tmp_path / "R" / "status.json").read_text())
    assert status["state"] == "failed" and status["step"] == 20 and "no space left" in status["message"]


def test_resume_takes_the_recorded_config_refuses_other_flags_and_records_knobs(tmp_path, capsys):
    run = tmp_path / "R"
    tiny = ["--dataset", "mnist5k", "--loss", "ce", "--steps", "20", "--batch-size", "32", "--checkpoint-every",
            "10", "--eval-every", "20", "--suites", "none", "--threads", "1"]
    assert main(["train", *tiny, "--out", str(run)]) == 0
    assert main(["train", "--out", str(run), "--resume"]) == 0
    assert "already finished at step 20" in capsys.readouterr().out
    # as if stopped at step 10: a resume with a knob change continues the recorded run with it
    ckpt = load_file(str(run / "checkpoint.safetensors"))
    from safetensors import safe_open

    with safe_open(str(run / "checkpoint.safetensors"), "pt") as f:
        meta = f.metadata()
    save_file(ckpt, str(run / "checkpoint.safetensors"), metadata={**meta, "extra": json.dumps(
        {**json.loads(meta["extra"]), "step": 10})})
    assert main(["train", "--out", str(run), "--resume", "--steps", "30"]) == 2
    assert "--steps 30 differs from the run's 20" in capsys.readouterr().err
    assert main(["train", "--out", str(run), "--resume", "--lr", "0.0005"]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["config"]["lr"] == RunConfig.model_fields["lr"].default  # the recorded config stays
    assert saved["resumes"][-1]["overrides"] == {"lr": 0.0005}
    assert_clean_history(run)
    steps = [e for e in history(run) if e["kind"] == "status" and e["state"] == "running"]
    assert "resumed from step 10, lr=0.0005" in steps[-1]["message"]
    # the checkpoint now holds lr=0.0005 in force: a knob given at config.json's own value still overrides it
    with safe_open(str(run / "checkpoint.safetensors"), "pt") as f:
        meta = f.metadata()
    save_file(load_file(str(run / "checkpoint.safetensors")), str(run / "checkpoint.safetensors"),
              metadata={**meta, "extra": json.dumps({**json.loads(meta["extra"]), "step": 10})})
    default = RunConfig.model_fields["lr"].default
    assert main(["train", "--out", str(run), "--resume", "--lr", str(default)]) == 0
    steps = [e for e in history(run) if e["kind"] == "status" and e["state"] == "running"]
    assert f"resumed from step 10, lr={default:g}" in steps[-1]["message"]
    assert json.loads((run / "config.json").read_text())["resumes"][-1]["overrides"] == {"lr": default}


# ---- bad inputs: exit 2, one line, no traceback, and the existing run unchanged ----

def test_assets_holds_its_folder_cleans_a_killed_runs_leftovers_and_a_sigterm_names_no_deleted_folder(tmp_path):
    """`assets` is one writer per folder (`<out>/lock`, as sweep and matrix): a second one waits. It trains in
    `<out>/.training/`, which it empties at the start (what a SIGKILLed one left) and deletes on the way out:
    a SIGTERM says so instead of pointing at a checkpoint there."""
    import fcntl

    from hard_core.cli.assets import TEACHERS, WORK, teacher_name
    from hard_core.worlds import WORLDS

    dataset, canvas, world, _ = TEACHERS[0]
    name, out = teacher_name(dataset, canvas, WORLDS[world].teacher), tmp_path / "A"
    (out / WORK / "killed").mkdir(parents=True)
    (out / WORK / "killed" / "checkpoint.safetensors.tmp").write_bytes(b"\0" * 4096)  # a SIGKILLed write's
    holder = open(out / "lock", "a+")
    fcntl.flock(holder, fcntl.LOCK_EX)  # another `assets` on the folder
    p = subprocess.Popen([sys.executable, "-m", "hard_core", "assets", "--only", name, "--out", str(out)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(5)
        assert p.poll() is None and (out / WORK / "killed").exists()  # waiting, touching nothing
        holder.close()
        wait_for(lambda: logged_step(out / WORK / name) >= 5, what="the teacher to train")
        assert not (out / WORK / "killed").exists()
        os.kill(p.pid, signal.SIGTERM)
        assert p.wait(60) == 128 + signal.SIGTERM
    finally:
        holder.close()
        kill(p)
    err = p.stderr.read()
    assert "is being filled by another command" in err
    assert f"stopped by SIGTERM while training {name}; nothing of it was kept" in err
    assert "holds its checkpoint" not in err and not (out / WORK).exists()
    assert not list(out.glob("*.safetensors"))
