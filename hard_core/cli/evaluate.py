"""`eval`: accuracy of a trained model (a run directory or a .safetensors file) on test + OOD suites."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import RunConfig, validate
from ..errors import UserError
from ..runs import load_student, run_config
from ..runs.reader import checkpoint_step
from ..train import accuracy, dataset_for, pick_device, suites_for
from ..teacher import check_fits
from .flags import add_config_flags
from .printer import format_acc

INHERITED = ("dataset", "canvas", "data_root", "image_size", "suites")


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="accuracy of a trained model on test and OOD suites",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="example:\n  python -m hard_core eval R            # data options come from R's config"
                              "\n  python -m hard_core eval T --suites shift:6 --json")
    p.add_argument("model", help="a run directory or a .safetensors model file")
    add_config_flags(p, skip=[f for f in RunConfig.model_fields if f not in INHERITED + ("device",)])
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def run(args) -> int:
    path = Path(args.model)
    if not path.exists():
        raise UserError(f"not found: {path} (give a run directory or a .safetensors file)")
    saved = run_config(path).model_dump() if path.is_dir() else {}
    options = {k: saved[k] for k in INHERITED if k in saved}
    options.update({k: getattr(args, k) for k in INHERITED if getattr(args, k) is not None})
    cfg = validate(RunConfig, options)  # the flags' bounds, as train's: one line, not a traceback
    device = pick_device(args.device or "auto")
    model = load_student(path, device=str(device))
    dataset = dataset_for(cfg)
    check_fits(model, dataset, f"model {path}")
    suites = {k: v.to(device) for k, v in suites_for(cfg, dataset).items()}
    acc, _, _ = accuracy(model, suites)
    step = checkpoint_step(path)
    if args.json:
        print(json.dumps({"model": str(path), "step": step, "dataset": cfg.dataset, "canvas": cfg.canvas, "acc": acc}))
    else:
        print(f"{path}: checkpoint at step {step}" if step is not None else f"{path}: model file")
        print(format_acc(acc))
    return 0
