"""`assets`: regenerate the shipped teachers in assets/ deterministically (CPU, fixed seed and threads).

Each teacher is the `cnn` model pretrained with random shifts, so it is shift-robust: the invariance
HARD should pass on to an MLP student. Next to each .safetensors file is a JSON card with the dataset,
canvas, architecture, accuracy per suite and the command that made it.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from ..assets import ASSETS, teacher_name
from ..checkpoint import write_json
from ..config import RunConfig
from ..runs import RunReader, run_to_dir
from .printer import Printer

# (dataset, canvas, steps): enough steps for ~97% on mnist5k; mnist1d needs more (1D shapes are harder).
TEACHERS = [("mnist5k", 28, 1000), ("mnist5k", 40, 1000), ("mnist1d", None, 2000)]
COMMAND = "python -m hard_core assets"


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="regenerate the shipped teachers in assets/", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ASSETS), metavar="DIR", help="where to write [default: assets/]")
    p.add_argument("--only", metavar="NAME", help="regenerate one asset, e.g. teacher-mnist5k-c40")


def teacher_config(dataset: str, canvas: int | None, steps: int) -> RunConfig:
    return RunConfig(kind="pretrain", loss="ce", dataset=dataset, canvas=canvas, student="cnn", augment="shift",
                     steps=steps, lr=3e-3, eval_every=steps, checkpoint_every=steps, seed=0, device="cpu",
                     threads=2)


def run(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for dataset, canvas, steps in TEACHERS:
        name = teacher_name(dataset, canvas)
        if args.only and args.only != name:
            continue
        cfg = teacher_config(dataset, canvas, steps)
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = Path(tmp) / name
            printer = Printer(run_dir)
            run_to_dir(cfg, run_dir, on_event=printer)
            acc = [e for e in RunReader(run_dir).poll() if e["kind"] == "eval"][-1]["acc"]
            shutil.copyfile(run_dir / "student.safetensors", out / f"{name}.safetensors")
        write_json(out / f"{name}.json", {
            "name": name, "kind": "teacher", "dataset": dataset, "canvas": canvas, "architecture": "cnn",
            "input_shape": [1, canvas, canvas] if canvas else [1, 40], "test_accuracy": acc["test"],
            "suite_accuracy": acc, "command": f"{COMMAND} --only {name}", "config": cfg.model_dump()})
        print(f"{name}: test {100 * acc['test']:.1f}%  ->  {out / name}.safetensors")
    return 0
