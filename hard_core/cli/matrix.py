"""`matrix`: the invariance-transfer matrix. For each world (a nuisance the teacher learned and the student's
data lacks) and method (KD, the KD oracle, the HARD families) it distils students, one run directory per
cell and seed under --out, and reports each cell's OOD accuracy on the world's suite, its in-domain
accuracy and the gap closed = (method - KD) / (oracle - KD) on the OOD accuracy.

It writes matrix.md (the table), matrix.json (settings, command, every run's numbers and directory) and
matrix.png (a heatmap of gap closed). A cell whose directory already holds the finished run of the same
config is reused, so an interrupted matrix continues where it stopped when run again with the same --out;
a second matrix or sweep on the same --out waits for the first (`runs.cells`, shared with `sweep`).
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from ..checkpoint import atomic_write, write_json
from ..errors import UserError
from ..runs.cells import hold_folder, reusable, run_or_reuse
from ..runs.matrix import accuracies, build_config, cell_dir, markdown, rows, summarise, write_png
from ..train.events import StepMetrics
from ..worlds import METHODS, WORLDS, get_world
from .flags import add_config_flag

EXAMPLE = ("example:\n  python -m hard_core matrix --worlds shift,scarce --methods kd,oracle,hard-affine "
           "--steps 600 --out docs/matrix")


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="worlds x methods: OOD accuracy and gap closed of KD, oracle and HARD",
                       description=__doc__, epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worlds", default=",".join(WORLDS), help="comma-separated worlds [default: all: %(default)s]")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods [default: all: %(default)s]")
    p.add_argument("--steps", type=int, default=600, help="training steps per run [default: 600]")
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..K-1 per cell; cells show the mean [default: 1]")
    p.add_argument("--out", metavar="DIR", help="folder of the runs and the reports [default: runs/matrix-<time>]")
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--canvas", type=int, default=40, help="0 for none (e.g. mnist1d) [default: 40]")
    p.add_argument("--student", default="mlp")
    p.add_argument("--teacher", default="default", help="'default': each world's shipped teacher")
    add_config_flag(p, "device")
    p.add_argument("--threads", type=int, help="torch CPU threads per run (e.g. 1 on a shared machine)")


def names(text: str, known, what: str) -> list[str]:
    """The comma-separated names, in order, without repeats; a UserError for an unknown or empty one."""
    picked = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not picked:
        raise UserError(f"--{what}s: give at least one of: {', '.join(known)}")
    for n in picked:
        if n not in known:
            raise UserError(f"unknown {what} '{n}'; choose from: {', '.join(known)}")
    return picked


def command_line(args, worlds, methods, out: Path) -> str:
    """The command that makes this matrix again, every setting spelled out."""
    flags = ["--worlds", ",".join(worlds), "--methods", ",".join(methods), "--steps", args.steps,
             "--seeds", args.seeds, "--dataset", args.dataset, "--canvas", args.canvas, "--student", args.student,
             "--teacher", args.teacher, "--out", out]
    flags += ["--device", args.device] if args.device != "auto" else []
    flags += ["--threads", args.threads] if args.threads else []
    return shlex.join(["python", "-m", "hard_core", "matrix", *map(str, flags)])


def run(args) -> int:
    from tqdm import tqdm

    worlds = names(args.worlds, WORLDS, "world")
    methods = names(args.methods, METHODS, "method")
    for flag in ("steps", "seeds", "threads"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise UserError(f"--{flag} must be at least 1 (got {getattr(args, flag)})")
    out = Path(args.out or f"runs/matrix-{time.strftime('%Y%m%d-%H%M%S')}")
    common = dict(steps=args.steps, dataset=args.dataset, canvas=args.canvas or None, teacher=args.teacher,
                  student=args.student, device=args.device, threads=args.threads)
    plan = {(w, m, s): build_config(w, m, s, **common) for w in worlds for m in methods for s in range(args.seeds)}
    from ..teacher import teacher_path  # each world's teacher exists: fail now, not after an hour

    for w in worlds:
        teacher_path(plan[w, methods[0], 0].teacher, plan[w, methods[0], 0])
    with hold_folder(out):
        todo = {key: not reusable(out / cell_dir(*key), cfg) for key, cfg in plan.items()}
        results, failed, trained = {}, [], 0
        bar = tqdm(plan.items(), desc="matrix", unit="run", file=sys.stderr, dynamic_ncols=True)
        for (w, m, s), cfg in bar:
            bar.set_description(f"{w}/{m}" + (f" seed {s}" if args.seeds > 1 else ""))
            run_dir = out / cell_dir(w, m, s)
            result = {"dir": cell_dir(w, m, s), "config": cfg.model_dump(mode="json"), "reused": not todo[w, m, s]}
            try:
                trained += run_or_reuse(cfg, run_dir, on_event=lambda e, n=cfg.steps: show_step(bar, e, n))
                result.update(accuracies(run_dir, w), error=None)
            except UserError as e:
                result.update(ood=None, test=None, error=str(e))
                failed.append(f"{w}/{m} seed {s}: {e}")
                bar.write(f"failed: {failed[-1]}", file=sys.stderr)
            results[w, m, s] = result
        bar.close()

        settings = {"worlds": worlds, "methods": methods, "seeds": args.seeds, **common}
        matrix = summarise(settings, command_line(args, worlds, methods, out), results)
        write_json(out / "matrix.json", matrix)
        atomic_write(out / "matrix.md", lambda tmp: Path(tmp).write_text(markdown(matrix)))
        write_png(matrix, out / "matrix.png")
    print(table(matrix))
    print(f"\nwrote {out / 'matrix.md'}, matrix.json, matrix.png "
          f"({trained} runs trained, {len(todo) - trained} reused)")
    if failed:
        raise UserError(f"{len(failed)} of {len(plan)} runs failed; the first: {failed[0]}")
    return 0


def show_step(bar, event, steps: int) -> None:
    if isinstance(event, StepMetrics):
        bar.set_postfix_str(f"step {event.step}/{steps}")


def table(matrix: dict) -> str:
    """The matrix as aligned text: rows worlds, columns methods, cells 'OOD / in-domain (gap closed)'."""
    methods = matrix["settings"]["methods"]
    cells = [["world (suite)", *methods]] + [[f"{r['world']} ({get_world(r['world']).suite})",
                                              *(r[m] for m in methods)] for r in rows(matrix)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
    return "\n".join([matrix["legend"], "", *lines])
