"""`bench`: milliseconds per training step of KD and of each HARD variant, measured in one process with
the same data, batch, teacher and student, interleaved round by round so machine noise hits all alike.

Every variant's student learns from the same number of distinct images per step (the batch: HARD
augments a share of it and keeps the rest clean, discarding none), so ms/step and images/s compare
like with like. The step timed is the real one (`train.step.distil_step`), so the ratio is what a live
session costs. The benchmark repeats its batches, so HARD-vae's per-image cache of its VAE's encodings
is warm after the warm-up round, as in training from the second epoch on. `--json` prints, as its last line,
{"ms_per_step": {...}, "images_per_s": {...}, "ratio_to_kd": {"hard-affine": ..., ...}}.

`--ddp N` measures scaling instead: it runs this benchmark under torchrun with 1 process and with N
(gloo on the CPU, NCCL on GPUs; one thread per CPU process), each process keeping `--batch-size` images
per step (so N processes step on a global batch N times larger), and prints images/s of both and the
scaling efficiency = images/s(N) / (N x images/s(1)). Under torchrun the benchmark shards each global
batch over the ranks and rank 0 prints.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from ..config import RunConfig, validate
from ..errors import UserError
from ..data.stream import EpochSampler
from ..train.distributed import is_lead
from ..train.setup import build_session
from ..train.step import distil_step
from .flags import add_config_flag

VARIANTS = {"kd": {}, "hard-affine": {"hard": "affine"},
            "hard-affine-reverse": {"hard": "affine", "hard_schedule": "reverse"},
            "hard-colour": {"hard": "colour"}, "hard-mix": {"hard": "mix"}, "hard-vae": {"hard": "vae"}}


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="ms per step of KD and each HARD variant (one process)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="example:\n  python -m hard_core bench --json")
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--canvas", type=int, default=40)
    p.add_argument("--teacher", default="default")
    p.add_argument("--student", default="mlp")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians are reported (x KD: the "
                   "median of each round's ratio) [default: 5]")
    p.add_argument("--steps", type=int, default=10, help="steps per variant per round [default: 10]")
    add_config_flag(p, "device")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of: " + ", ".join(VARIANTS))
    every = RunConfig.model_fields["hard_every"].default
    p.add_argument("--hard-every", type=int, default=every, metavar="K",
                   help=f"the HARD variants update their augmentor every K-th step, as in training [default: {every}]")
    p.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    p.add_argument("--ddp", type=int, metavar="N", help="scaling: images/s of 1 vs N torchrun processes and "
                   "the efficiency (each process keeps --batch-size images per step)")
    p.add_argument("--repeats", type=int, default=2, help="with --ddp: alternate 1 and N processes this many "
                   "times; the best of each is reported [default: 2]")


def run(args) -> int:
    names = [v.strip() for v in args.variants.split(",")]
    for flag, value in (("--hard-every", args.hard_every), ("--steps", args.steps), ("--rounds", args.rounds),
                        ("--ddp", args.ddp or 1), ("--repeats", args.repeats)):
        if value < 1:
            raise UserError(f"{flag} must be at least 1, got {value}")
    if args.ddp:
        return scaling(args, names)
    sessions = {}
    for name in names:
        if name not in VARIANTS:
            raise UserError(f"unknown variant '{name}'; choose from: {', '.join(VARIANTS)}")
        cfg = validate(RunConfig, dict(dataset=args.dataset, canvas=args.canvas, teacher=args.teacher,  # as train
                                       student=args.student, batch_size=args.batch_size, device=args.device,
                                       suites="none", steps=10**6, hard_every=args.hard_every, **VARIANTS[name]))
        sessions[name] = build_session(cfg)
    any_s = next(iter(sessions.values()))
    sampler = EpochSampler(len(any_s.train), args.batch_size, 0, any_s.device)
    batches = [any_s.train.get(any_s.dist.shard(sampler.indices(i + 1))) for i in range(args.steps)]
    batches = [(x, F.one_hot(y, any_s.dataset.num_classes).float()) for x, y in batches]
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds + 1):  # round 0 warms up (allocator, autograd graphs, caches)
        for name, s in sessions.items():
            knobs = {"lr": s.cfg.lr, "temperature": s.cfg.temperature, "alpha": s.cfg.alpha,
                     "hard_lambda": s.cfg.hard_lambda}
            _sync(s.device)
            t0 = time.perf_counter()
            for i, (x, y) in enumerate(batches):
                distil_step(s, x, y, knobs, r * args.steps + i + 1)
            _sync(s.device)
            if r:
                times[name].append((time.perf_counter() - t0) / args.steps * 1000)
    ms = {n: statistics.median(t) for n, t in times.items()}
    if not is_lead():
        return 0
    base = ms.get("kd")
    # x KD: the median over rounds of each round's own ratio. A round times every variant within seconds,
    # so the host's slower spells (KD's step drifted from 37 to 57 ms within an hour here) cancel out,
    # where a ratio of medians taken over different rounds keeps them.
    ratios = {n: statistics.median(a / b for a, b in zip(t, times["kd"])) for n, t in times.items()} if base else {}
    ranks = f" x {any_s.dist.world} ranks ({any_s.dist.backend})" if any_s.dist.enabled else ""
    print(f"{args.dataset} canvas {args.canvas}, batch {args.batch_size} distinct images per step, {args.student} "
          f"student, augmentor update every {args.hard_every} step(s), {any_s.device.type}, "
          f"{torch.get_num_threads()} threads{ranks}; median of {args.rounds} rounds x {args.steps} steps")
    per_s = {n: args.batch_size / (v / 1000) for n, v in ms.items()}
    print(f"{'variant':22s} {'ms/step':>8s} {'images/s':>9s} {'x KD':>6s}")
    for n, v in ms.items():
        print(f"{n:22s} {v:8.1f} {per_s[n]:9.0f} {ratios.get(n, float('nan')):6.2f}")
    if args.json:
        ratio = {n: round(r, 3) for n, r in ratios.items() if n != "kd"}
        print(json.dumps({"ms_per_step": {n: round(v, 2) for n, v in ms.items()},
                          "images_per_s": {n: round(v, 1) for n, v in per_s.items()}, "ratio_to_kd": ratio}))
    return 0


def scaling(args, names: list[str]) -> int:
    """images/s of 1 and of N torchrun processes, alternated `--repeats` times, and the efficiency."""
    n = args.ddp
    best: dict[int, dict[str, float]] = {1: {}, n: {}}
    for _ in range(args.repeats):
        for k in (1, n):
            for name, v in _torchrun_bench(args, names, k).items():
                best[k][name] = max(best[k].get(name, 0.0), v)
    print(f"{args.dataset} canvas {args.canvas}, {args.student} student, {args.batch_size} images per process per "
          f"step, {args.device} device, 1 thread per process; best of {args.repeats} alternated runs")
    print(f"{'variant':22s} {'1 proc img/s':>12s} {f'{n} procs img/s':>14s} {'speed-up':>8s} {'efficiency':>10s}")
    efficiency = {}
    for name in names:
        one, many = best[1][name], best[n][name]
        efficiency[name] = many / (n * one)
        print(f"{name:22s} {one:12.0f} {many:14.0f} {many / one:8.2f} {efficiency[name]:10.2f}")
    if args.json:
        print(json.dumps({"processes": n, "images_per_s": {str(k): v for k, v in best.items()},
                          "efficiency": {k: round(v, 3) for k, v in efficiency.items()}}))
    return 0


def _torchrun_bench(args, names: list[str], k: int) -> dict[str, float]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(k),
           "-m", "hard_core", "bench", "--json", "--variants", ",".join(names), "--batch-size", str(args.batch_size * k),
           "--dataset", args.dataset, "--canvas", str(args.canvas), "--teacher", args.teacher, "--student",
           args.student, "--rounds", str(args.rounds), "--steps", str(args.steps), "--device", args.device,
           "--hard-every", str(args.hard_every)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise UserError(f"the {k}-process benchmark failed: {last}")
    return json.loads(done.stdout.strip().splitlines()[-1])["images_per_s"]


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
