"""torchrun's layer (hard_core/train/distributed.py): 2 CPU processes with gloo, started here and stopped by pid.

Each test starts its ranks as plain processes with the environment torchrun would give them (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). Most runs train an MLP on mnist5k without augmentation
(no step randomness, and no teacher, to keep them short), so 2 ranks at global batch B compute the same
averaged gradient as 1 rank at B, up to float rounding (the tolerances below); the HARD test uses the
shipped teacher at canvas 40.
"""
import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from hard_core import load_student
from hard_core.cli import main
from hard_core.config import RunConfig
from hard_core.runs import RunReader, request, run_to_dir
from hard_core.train import StepMetrics

LOSS_RTOL = 5e-3  # 2 ranks vs 1 rank: the logged loss curves agree to 0.5% at every logged step
WEIGHT_ATOL = 1e-3  # and resumed students agree with an uninterrupted one to 1e-3 per weight

# Runs in every rank: "sync" trains a few HARD steps on each rank's shard and compares the modules across
# ranks; "run" trains into a run directory (rank 0 writes), rank 0 asking for lr=5e-4 after step 5 and a
# stop after step 10 through control.json, and prints each rank's status messages.
WORKER = r"""
import json, sys
import torch, torch.distributed as dist, torch.nn.functional as F
from hard_core.config import KNOBS, RunConfig
from hard_core.runs import request, run_to_dir
from hard_core.train import Status, StepMetrics
from hard_core.train.distributed import is_lead
mode, cfg, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
if mode == "sync":
    from hard_core.train.setup import build_session
    from hard_core.train.step import distil_step
    result = {}
    for schedule in ("alternate", "reverse"):
        s = build_session(RunConfig(**cfg, hard_schedule=schedule))
        flat = lambda m: torch.cat([p.detach().flatten() for p in m.parameters() if p.requires_grad])
        start, batches, knobs = flat(s.augmentor), s.batches(0), {k: getattr(s.cfg, k) for k in KNOBS}
        for step in range(1, s.cfg.steps + 1):
            torch.manual_seed(s.dist.seed(step))
            x, y = next(batches)
            distil_step(s, x, F.one_hot(y, 10).float(), knobs, step)
        for name, m in (("student", s.student), ("augmentor", s.augmentor)):
            mine = flat(m)
            every = [torch.empty_like(mine) for _ in range(s.dist.world)]
            dist.all_gather(every, mine)
            result[f"{schedule}.{name}.spread"] = max((e - mine).abs().max().item() for e in every)
        result[f"{schedule}.augmentor.moved"] = (flat(s.augmentor) - start).abs().max().item()
    print(json.dumps(result))
else:
    statuses = []
    def on_event(e):
        if isinstance(e, Status):
            statuses.append([e.step, e.state, e.message])
        if isinstance(e, StepMetrics) and is_lead():
            if e.step == 5:
                request(out, lr=5e-4)
            if e.step == 10:
                request(out, state="stop")
    run_to_dir(RunConfig(**cfg), out, on_event=on_event)
    print(json.dumps(statuses))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ranks(args: list[str], world: int = 2, timeout: float = 240, check: bool = True) -> list[tuple[int, str, str]]:
    """Run `python <args>` as `world` ranks of one gloo group; (returncode, stdout, stderr) per rank,
    each checked to be 0 unless `check` is false."""
    port, procs = free_port(), []
    try:
        for r in range(world):
            env = {**os.environ, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": str(world),
                   "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                   "OMP_NUM_THREADS": "1"}
            procs.append(subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))
        outs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    results = [(p.returncode, o, e) for p, (o, e) in zip(procs, outs)]
    for code, _, err in results:
        assert code == 0 or not check, err[-3000:]
    return results


def small(**kw) -> dict:
    base = dict(dataset="mnist5k", loss="ce", student="mlp", steps=30, batch_size=64, log_every=5,
                eval_every=30, snapshot_every=1000, checkpoint_every=1000, suites="shift:3", seed=1, device="cpu")
    return {**base, **kw}


def steps_logged(run_dir) -> list[int]:
    return [e["step"] for e in RunReader(run_dir).poll() if e["kind"] == "step"]


def test_ranks_keep_student_and_augmentor_identical():
    """Each rank trains on its own shard, yet both modules stay equal across ranks: the student's and the
    augmentor's gradients are all-reduced (the latter through backward(inputs=...) in the alternating
    schedule, and through the gradient reversal in the reverse one)."""
    cfg = small(dataset="mnist5k", canvas=40, loss="kd", teacher="default", hard="affine", hard_every=1,
                steps=4, batch_size=32)
    [(_, out, _), _] = ranks(["-c", WORKER, "sync", json.dumps(cfg), "-"])
    result = json.loads(out.strip().splitlines()[-1])
    for schedule in ("alternate", "reverse"):
        assert result[f"{schedule}.augmentor.moved"] > 1e-4, result  # it did learn
        assert result[f"{schedule}.student.spread"] < 1e-6, result
        assert result[f"{schedule}.augmentor.spread"] < 1e-6, result


@pytest.mark.slow
def test_two_ranks_match_one_and_rank_zero_alone_writes(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    run_to_dir(RunConfig(**small()), one)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in small().items()]
    [(_, _, err0), (_, _, err1)] = ranks(["-m", "hard_core", "train", *flags, "--out", str(two)])
    assert "[finished] step 30" in err0 and "[finished]" not in err1  # rank 0 reports the run, rank 1 not

    loss = lambda d: {e["step"]: e["loss"] for e in RunReader(d).poll() if e["kind"] == "step"}  # noqa: E731
    a, b = loss(one), loss(two)
    assert list(a) == list(b) == list(range(5, 31, 5))
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=LOSS_RTOL), (step, a[step], b[step])
    acc = lambda d: [e for e in RunReader(d).poll() if e["kind"] == "eval" and e["model"] == "student"][-1]["acc"]  # noqa: E731
    for suite in ("test", "shift"):
        assert abs(acc(one)[suite] - acc(two)[suite]) <= 0.01, (acc(one), acc(two))

    saved = json.loads((two / "config.json").read_text())
    assert saved["distributed"] == {"world_size": 2, "backend": "gloo"}
    assert json.loads((one / "config.json").read_text())["distributed"]["world_size"] == 1
    events = RunReader(two).poll()
    assert steps_logged(two) == sorted(set(steps_logged(two)))  # every step logged once
    assert sum(e["kind"] == "eval" and e["model"] == "student" for e in events) == 1
    assert json.loads((two / "status.json").read_text())["state"] == "finished"


@pytest.mark.slow
def test_knob_and_stop_reach_every_rank_and_checkpoints_resume_both_ways(tmp_path):
    """A: 2 ranks stopped at step 10 by control.json, resumed in one process. B: one process stopped the
    same way, resumed by 2 ranks. Both end where an uninterrupted one-process run with the same knob
    change ends."""
    cfg = small()
    ref, a, b = tmp_path / "ref", tmp_path / "a", tmp_path / "b"

    def lr_after_5(event):
        if isinstance(event, StepMetrics) and event.step == 5:
            request(ref, lr=5e-4)
    run_to_dir(RunConfig(**cfg), ref, on_event=lr_after_5)

    statuses = [json.loads(out.strip().splitlines()[-1]) for _, out, _ in
                ranks(["-c", WORKER, "run", json.dumps(cfg), str(a)])]
    for rank_statuses in statuses:  # each rank acted on the knob and the stop at the same step
        assert [5, "running", "set lr=0.0005"] in rank_statuses, rank_statuses
        assert rank_statuses[-1][:2] == [10, "stopped"], rank_statuses
    assert main(["train", "--out", str(a), "--resume"]) == 0  # the DDP checkpoint, in one process

    proc = subprocess.run([sys.executable, "-c", WORKER, "run", json.dumps(cfg), str(b)],
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])[-1][:2] == [10, "stopped"]
    ranks(["-m", "hard_core", "train", "--out", str(b), "--resume"])  # a one-process checkpoint, in 2 ranks

    want = load_student(ref).state_dict()
    for run in (a, b):
        assert steps_logged(run) == list(range(5, 31, 5))
        got = load_student(run).state_dict()
        for k in want:
            torch.testing.assert_close(got[k], want[k], atol=WEIGHT_ATOL, rtol=0, msg=f"{run.name}: {k}")
    assert [r["world_size"] for r in json.loads((a / "config.json").read_text())["resumes"]] == [1]
    assert [r["world_size"] for r in json.loads((b / "config.json").read_text())["resumes"]] == [2]


def test_a_global_batch_that_does_not_divide_over_the_ranks_is_one_line(tmp_path):
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in small(batch_size=63).items()]
    [(code0, _, err0), (code1, _, _)] = ranks(["-m", "hard_core", "train", *flags, "--out", str(tmp_path / "R")],
                                              check=False)
    assert code0 == code1 == 2
    assert err0.strip().splitlines()[-1].startswith("error: --batch-size 63 is the global batch"), err0


def test_sync_bn_on_the_cpu_is_one_line(monkeypatch):
    """torch's SyncBatchNorm runs on GPUs only: under torchrun on the CPU --sync-bn is refused up front."""
    from hard_core.errors import UserError
    from hard_core.train.setup import build_session

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(UserError, match="--sync-bn needs GPUs"):
        build_session(RunConfig(**small(student="small-cnn", sync_bn=True)))
