"""`train` (distil a student) and `pretrain` (train a teacher with cross-entropy): one loop, two presets."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..config import KNOBS, RunConfig, load_config_file, validate
from ..errors import UserError
from ..runs import CHECKPOINT, checkpoint_step, run_config, run_to_dir
from ..train.distributed import is_lead
from .flags import add_config_flags, config_from_args
from .printer import Printer

EXAMPLES = {
    "train": "example:\n  python -m hard_core train --dataset mnist5k --canvas 40 --teacher T --student mlp "
             "--augment none --steps 400 --out R\n"
             "on 2 GPUs (or CPU processes), one run directory written by rank 0 (docs/scale.md):\n"
             "  torchrun --standalone --nproc_per_node 2 -m hard_core train ... --out R",
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
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint, with "
                   "the config recorded in its config.json; only knobs (--lr, --temperature, --alpha, "
                   "--hard-lambda) may be changed")
    if pre:
        add_config_flags(p, skip=("teacher", "loss", "temperature", "alpha", "pick_criterion", "pick_rounds"),
                         rename={"student": "model"}, defaults={"student": "cnn"})
    else:
        add_config_flags(p)


def run(args) -> int:
    overrides = None
    if args.resume:
        cfg, overrides = resume_config(args)
        step = checkpoint_step(args.out) if (Path(args.out) / CHECKPOINT).is_file() else None  # else: the writer says why
        if step == cfg.steps:
            print(f"{args.out} already finished at step {step} of {cfg.steps}: nothing to resume")
            return 0
    elif args.command == "pretrain":
        from_file = load_config_file(args.config) if args.config else {}
        fixed = {"kind": "pretrain", "loss": "ce"}
        if args.student is None and "student" not in from_file:
            fixed["student"] = "cnn"
        cfg = config_from_args(args, **fixed)
    else:
        cfg = config_from_args(args)
    out = Path(args.out or f"runs/{args.command}-{time.strftime('%Y%m%d-%H%M%S')}")
    printer = Printer(out) if is_lead() else None  # under torchrun, rank 0 reports (and writes) the run
    run_to_dir(cfg, out, resume=args.resume, on_event=printer, overrides=overrides)
    if printer is not None:
        printer.close()
    return 0


def resume_config(args) -> tuple[RunConfig, dict]:
    """The run's recorded config, with the knob values this command gives. Any other option that
    differs from config.json is refused: a resume continues the recorded run, it does not start another."""
    if not args.out:
        raise UserError("--resume needs --out: the run directory to continue")
    saved = run_config(args.out)
    if saved.kind != ("pretrain" if args.command == "pretrain" else "train"):
        raise UserError(f"{args.out} is a {saved.kind} run: resume it with `{saved.kind} --out {args.out} --resume`")
    given = load_config_file(args.config) if args.config else {}
    given.update({k: getattr(args, k) for k in RunConfig.model_fields if getattr(args, k, None) is not None})
    merged = validate(RunConfig, {**saved.model_dump(), **given})
    fixed = [k for k in given if k not in KNOBS and getattr(merged, k) != getattr(saved, k)]
    if fixed:
        k = fixed[0]
        raise UserError(f"--{k.replace('_', '-')} {getattr(merged, k)} differs from the run's "
                        f"{getattr(saved, k)} (config.json); a resume continues the recorded run, and only "
                        "the knobs --lr, --temperature, --alpha and --hard-lambda may change")
    # a knob given is always an override, even at config.json's value: the checkpoint holds the values in force,
    # which a dashboard may have changed (a diverged run's message asks for exactly this resume)
    return saved, {k: getattr(merged, k) for k in given if k in KNOBS}
