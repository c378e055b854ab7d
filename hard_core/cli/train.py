"""`train` (distil a student) and `pretrain` (train a teacher with cross-entropy): one loop, two presets."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..config import load_config_file
from ..runs import run_to_dir
from .flags import add_config_flags, config_from_args
from .printer import Printer

EXAMPLES = {
    "train": "example:\n  python -m hard_core train --dataset mnist5k --canvas 40 --teacher T --student mlp "
             "--augment none --steps 400 --out R",
    "pretrain": "example:\n  python -m hard_core pretrain --dataset mnist5k --canvas 40 --augment shift "
                "--steps 400 --out T",
}


def add_parser(sub, name: str) -> None:
    pre = name == "pretrain"
    p = sub.add_parser(name, help="train a teacher with cross-entropy" if pre else "distil a student from a teacher",
                       description=__doc__ if not pre else "Train a teacher (cross-entropy) into a run directory; "
                       "pass that directory as --teacher to `train`.",
                       epilog=EXAMPLES[name], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="FILE", help="YAML or JSON file of options; flags override it")
    p.add_argument("--out", metavar="DIR", help="run directory to write [default: runs/<command>-<time>]")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    if pre:
        add_config_flags(p, skip=("teacher", "loss", "temperature", "alpha", "pick_criterion", "pick_rounds"),
                         rename={"student": "model"}, defaults={"student": "cnn"})
    else:
        add_config_flags(p)


def run(args) -> int:
    if args.command == "pretrain":
        from_file = load_config_file(args.config) if args.config else {}
        fixed = {"kind": "pretrain", "loss": "ce"}
        if args.student is None and "student" not in from_file:
            fixed["student"] = "cnn"
        cfg = config_from_args(args, **fixed)
    else:
        cfg = config_from_args(args)
    out = Path(args.out or f"runs/{args.command}-{time.strftime('%Y%m%d-%H%M%S')}")
    printer = Printer(out)
    run_to_dir(cfg, out, resume=args.resume, on_event=printer)
    printer.close()
    return 0
