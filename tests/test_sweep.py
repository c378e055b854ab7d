"""The `sweep` command on a tiny setting: the product of the given values trained once each, mean ± std over
seeds in sweep.json/md and a plot, finished runs reused on a second call, bad values refused in one line,
and sweeps and a matrix on one --out taking turns instead of training a run twice or deleting a held one."""
import fcntl
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hard_core.cli import main
from hard_core.errors import UserError
from hard_core.runs import final_metrics
from hard_core.runs.cells import run_or_reuse
from hard_core.runs.store import hold_lock
from hard_core.runs.sweep import expand

SWEEP = ["sweep", "--world", "scarce", "--steps", "30", "--loss", "ce,kd", "--seed", "0,1", "--threads", "1"]
RUNS = ["loss=ce-seed=0", "loss=ce-seed=1", "loss=kd-seed=0", "loss=kd-seed=1"]


def mtimes(out: Path) -> dict:
    return {name: (out / name / "events.jsonl").stat().st_mtime_ns for name in RUNS}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    threads = torch.get_num_threads()
    out = tmp_path_factory.mktemp("sweep") / "s"
    try:
        assert main([*SWEEP, "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    return out


def test_writes_each_combination_with_mean_and_std_over_seeds(made):
    sweep = json.loads((made / "sweep.json").read_text())
    assert sweep["settings"]["swept"] == {"loss": ["ce", "kd"], "seed": ["0", "1"]}
    assert sorted(r["dir"] for r in sweep["runs"]) == RUNS and not any(r["reused"] for r in sweep["runs"])
    for group in sweep["groups"]:
        loss = group["values"]["loss"]
        accs = [final_metrics(made / f"loss={loss}-seed={s}")["student"]["test"] for s in (0, 1)]
        assert group["metrics"]["test"] == pytest.approx(
            {"mean": statistics.fmean(accs), "std": statistics.stdev(accs), "n": 2})
    for name in RUNS:  # the swept values reached the runs, and each evaluated once, at its end
        cfg = json.loads((made / name / "config.json").read_text())["config"]
        assert (cfg["loss"], cfg["seed"], cfg["steps"], cfg["eval_every"]) == \
            (name.split("-")[0][5:], int(name[-1]), 30, 30)
    md = (made / "sweep.md").read_text()
    assert "| loss | test acc % | seeds |" in md and "--loss=ce,kd" in md
    assert all(re.search(rf"\| {loss} \| \d+\.\d ± \d+\.\d \| 2 \|", md) for loss in ("ce", "kd"))
    assert (made / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_second_call_reuses_every_finished_run(made, capsys):
    before = mtimes(made)
    assert main([*SWEEP, "--out", str(made)]) == 0
    assert "(0 runs trained, 4 reused)" in capsys.readouterr().out
    assert mtimes(made) == before
    assert all(r["reused"] for r in json.loads((made / "sweep.json").read_text())["runs"])


@pytest.mark.parametrize("flags,words", [(["--steps", "30,0"], "--steps: Input should be greater than 0"),
                                         (["--loss", "kd,xx"], "--loss: Input should be 'kd' or 'ce'"),
                                         (["--seed", "0,,1"], "--seed: an empty value"),
                                         (["--steps", "30,60", "--x", "lr"], "--x lr: not a swept option")])
def test_a_bad_value_exits_2_with_one_line(tmp_path, capsys, flags, words):
    assert main(["sweep", "--world", "scarce", *flags, "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err and err.count("\n") == 1
    assert not (tmp_path / "bad").exists()  # refused before anything was written


def test_a_run_directory_another_process_holds_is_refused_not_deleted(tmp_path):
    (_, _, cfg), = expand({"world": "scarce", "canvas": 40, "teacher": "default", "steps": 5}, {})
    held = tmp_path / "cell"
    held.mkdir()
    (held / "status.json").write_text(json.dumps({"state": "running", "step": 3}))
    with hold_lock(held):  # as a `train` writing it would
        with pytest.raises(UserError, match="being written by another process"):
            run_or_reuse(cfg, held)
    assert json.loads((held / "status.json").read_text())["state"] == "running"


def test_sweeps_and_a_matrix_on_one_out_take_turns(tmp_path):
    """Two identical sweeps and a matrix start while --out is held: each waits, then one sweep trains the
    four runs, the other reuses them, and the matrix trains its own cell; no run is trained twice."""
    out = tmp_path / "shared"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    commands = [SWEEP, SWEEP, ["matrix", "--worlds", "scarce", "--methods", "kd", "--steps", "10", "--threads", "1"]]
    procs = []
    with open(out / "lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as a running sweep would hold it
        try:
            for i, command in enumerate(commands):
                logs = (open(tmp_path / f"{i}.out", "w"), open(tmp_path / f"{i}.err", "w"))
                procs.append(subprocess.Popen([sys.executable, "-m", "hard_core", *command, "--out", str(out)],
                                              stdout=logs[0], stderr=logs[1], env=env))
            deadline = time.time() + 120
            while not all("waiting" in (tmp_path / f"{i}.err").read_text() for i in range(3)):
                assert time.time() < deadline and all(p.poll() is None for p in procs), "a command did not wait"
                time.sleep(0.5)
            assert not any((out / name).exists() for name in RUNS)  # nothing trained while the folder was held
            fcntl.flock(lock, fcntl.LOCK_UN)
            assert [p.wait(timeout=300) for p in procs] == [0, 0, 0]
        finally:
            for p in procs:  # only the processes this test started, by their pid
                if p.poll() is None:
                    p.kill()
                    p.wait()
    said = [(tmp_path / f"{i}.out").read_text() for i in range(3)]
    assert sorted(re.search(r"\((\d+) runs trained", s).group(1) for s in said[:2]) == ["0", "4"]
    assert "(1 runs trained, 0 reused)" in said[2]
    for name in [*RUNS, "scarce-kd-s0"]:  # one start per run: none was trained twice
        starts = [e for e in map(json.loads, (out / name / "events.jsonl").read_text().splitlines())
                  if e.get("kind") == "status" and e.get("state") == "starting"]
        assert len(starts) == 1, name
