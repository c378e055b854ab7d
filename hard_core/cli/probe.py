"""`probe`: which invariances did the teacher pass to the student? Maps of a finished KD run.

For every cell of a grid of transforms (shifts, or rotations x zooms) of a fixed set of test images:
the teacher's and the student's accuracy, and how much each model's output moves, KL(m(x) || m(t(x))).
Also the mean teacher-student disagreement: |d KL(T(x) || S(x)) / dx| per pixel at the run's temperature.
Teacher, student and data all come from the run directory.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ..errors import UserError
from ..jsonfile import read_dict
from ..weights import content_hash
from ..losses import kl_div
from ..probes import InvarianceProbe, disagreement_map
from ..probes.invariance import KINDS
from ..probes.live import probe_grid
from ..runs import load_run, run_config
from ..runs.reader import checkpoint_step
from ..train import dataset_for, pick_device
from .flags import add_config_flag

CHUNK = 256  # images per disagreement-map batch


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="invariance maps of a run's teacher and student, and their disagreement",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="example:\n  python -m hard_core probe runs/R                  # shift maps"
                              "\n  python -m hard_core probe runs/R --kind rotation-scale --json")
    p.add_argument("run_dir", help="a train run directory (with a teacher and a student checkpoint)")
    p.add_argument("--kind", choices=KINDS, default="shift",
                   help="grid: shift (dy x dx, up to the shift suite's strength), the curves rotation (angle "
                        "+-90), polarity (blend x -> 1 - x) and thickness (strokes 1 px thinner .. 2 px "
                        "thicker), or rotation-scale (+-30 degrees x zoom 0.75..1.25); 1D runs have shift "
                        "only [default: shift]")
    p.add_argument("--images", type=int, default=256, metavar="N",
                   help="test images in the probe set, a seeded random choice [default: 256]")
    add_config_flag(p, "device")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")


def run(args) -> int:
    path = Path(args.run_dir)
    if not path.exists():
        raise UserError(f"not found: {path} (give a run directory)")
    cfg = run_config(path)
    if cfg.kind == "pretrain" or cfg.teacher is None:
        raise UserError(f"{path} is a {'pretrain' if cfg.kind == 'pretrain' else 'no-teacher'} run: probe compares "
                        "a student with its teacher, give a KD run directory")
    if args.images < 1:
        raise UserError(f"--images must be at least 1, got {args.images}")
    try:
        grid = probe_grid(args.kind, dataset_for(cfg))  # at the strengths a run is probed at while it trains
    except ValueError as e:
        raise UserError(str(e)) from None
    device = pick_device(args.device or "auto")
    try:
        loaded = load_run(path, device, augmentor=False)
    except UserError as e:
        raise UserError(f"run {path}: {e}") from None
    dataset, teacher, student = loaded.dataset, loaded.teacher, loaded.student
    step = checkpoint_step(path)
    used, trained = content_hash(teacher), ((read_dict(path / "config.json") or {}).get("identity") or {}).get("teacher")
    probe = InvarianceProbe(dataset.test.x, dataset.test.y, grid, images=args.images, device=device)
    maps = {"teacher": probe(teacher), "student": probe(student)}
    disagreement = _disagreement(teacher, student, probe.x, cfg.temperature)
    if args.json:
        print(json.dumps({"run": str(path), "step": step, "dataset": cfg.dataset, "canvas": cfg.canvas, "kind": grid.kind,
                          "images": len(probe.x), "axes": {n: a.tolist() for n, a in zip(grid.names, grid.axes)},
                          **{who: {"acc": m["acc"].tolist(), "kl": m["kl"].tolist()} for who, m in maps.items()},
                          "disagreement": disagreement,
                          "teacher_weights": {"ref": cfg.teacher, "sha256": used, "trained_with": trained}}))
        return 0
    print(f"run {path}: {cfg.dataset}" + (f" canvas {cfg.canvas}" if cfg.canvas else "")
          + f", student {cfg.student} (checkpoint at step {step}), teacher {cfg.teacher}; {len(probe.x)} test images")
    print(f"teacher weights {used}: " + ("the ones the run trained with" if used == trained else
          f"NOT the run's {trained} (the teacher file was replaced since)" if trained else "not recorded by the run"))
    for who, m in maps.items():
        print(f"\n{who}: accuracy % under {grid.kind} ({_summary(grid, m)})")
        print(format_map(grid, m["acc"]))
    print(f"\nteacher-student disagreement at T={cfg.temperature:g}: mean |dKL/dx| per pixel "
          f"{disagreement['mean_grad']:.3g}, KL(T||S) {disagreement['kl']:.3g}")
    return 0


@torch.no_grad()
def _kl(teacher, student, x, temperature) -> float:
    return float(sum(kl_div(teacher(x[i:i + CHUNK]), student(x[i:i + CHUNK]), temperature, "none").sum()
                     for i in range(0, len(x), CHUNK)) / len(x))


def _disagreement(teacher, student, x, temperature: float) -> dict[str, float]:
    total = sum(float(disagreement_map(teacher, student, x[i:i + CHUNK], temperature).sum())
                for i in range(0, len(x), CHUNK))
    pixels = x[0, 0].numel()
    return {"temperature": temperature, "mean_grad": total / (len(x) * pixels),
            "kl": _kl(teacher, student, x, temperature)}


def _label(v: float) -> str:
    return f"{v:.3g}"


def format_map(grid, values: torch.Tensor) -> str:
    """A compact text table of `values` (in [0, 1], shown as %) labelled by the grid's axes."""
    if len(grid.axes) == 1:
        head = f"{grid.names[0]:>6} " + " ".join(f"{_label(v):>5}" for v in grid.axes[0].tolist())
        return head + "\n" + f"{'acc %':>6} " + " ".join(f"{100 * v:5.1f}" for v in values.tolist())
    rows, cols = grid.axes
    corner = f"{grid.names[0]}\\{grid.names[1]}"
    lines = [f"{corner:>11} " + " ".join(f"{_label(v):>5}" for v in cols.tolist())]
    for r, row in zip(rows.tolist(), values.tolist()):
        lines.append(f"{_label(r):>11} " + " ".join(f"{100 * v:5.1f}" for v in row))
    return "\n".join(lines)


def _summary(grid, m: dict) -> str:
    acc = m["acc"]
    identity = [torch.isclose(a.float(), torch.tensor(1.0 if n == "scale" else 0.0)).nonzero().flatten()
                for n, a in zip(grid.names, grid.axes)]
    worst = int(acc.argmin())
    where = [int(i) for i in torch.unravel_index(torch.tensor(worst), acc.shape)]
    at = " ".join(f"{n}={_label(float(a[i]))}" for n, a, i in zip(grid.names, grid.axes, where))
    parts = [f"mean {100 * float(acc.mean()):.1f}%"]
    if all(len(i) == 1 for i in identity):
        parts.append(f"untransformed {100 * float(acc[tuple(int(i) for i in identity)]):.1f}%")
    parts.append(f"worst {100 * float(acc.min()):.1f}% at {at}")
    parts.append(f"mean KL {float(m['kl'].mean()):.3g}")
    return ", ".join(parts)
