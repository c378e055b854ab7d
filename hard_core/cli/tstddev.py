"""`tstddev`: rank the standard augmentations by T. stddev, a teacher-only score (paper 2).

Lower is better: paper 2 claims it predicts a lower student test loss under KD, without training a
student. `--validate` checks that claim here: it trains `--seeds` KD students per augmentation (with the
same --views) and reports the Spearman and Pearson correlation of T. stddev with their mean test loss.

--views original+augmented (the default, paper 2's KD+DA setting) takes each batch's mean teacher
prediction over the originals plus their augmented views, i.e. over what the student learns from;
--views augmented over the augmented batch alone.
"""
from __future__ import annotations

import argparse
import json
import time

from ..augment import AUGMENTATIONS
from ..config import RunConfig, validate as validate_config
from ..errors import UserError
from ..probes.tstddev import VIEWS
from ..runs.validate import score_augmentations, validate
from .flags import add_config_flags

DATA = ("world", "dataset", "canvas", "data_root", "image_size", "teacher", "seed", "device", "batch_size",
        "max_shift", "student")


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="rank standard augmentations by T. stddev (teacher only), or --validate it",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="examples:\n  python -m hard_core tstddev --dataset mnist5k --canvas 40 --teacher default\n"
                       "  python -m hard_core tstddev --validate --seeds 3 --steps 600 --dataset mnist5k "
                       "--canvas 40 --teacher default")
    add_config_flags(p, skip=[f for f in RunConfig.model_fields if f not in DATA])
    p.add_argument("--augment", help="comma-separated augmentations [default: all that apply]")
    p.add_argument("--batches", type=int, default=20, metavar="N",
                   help="augmented batches whose mean teacher probabilities are compared [default: 20]")
    p.add_argument("--views", choices=VIEWS, default="original+augmented",
                   help="what a batch's mean teacher prediction is taken over (and, with --validate, what the "
                   "students learn from) [default: original+augmented, paper 2's KD+DA setting]")
    v = p.add_argument_group("validation (--validate)")
    v.add_argument("--validate", action="store_true",
                   help="train KD students per augmentation and correlate T. stddev with their test loss")
    v.add_argument("--seeds", type=int, default=3, metavar="N", help="students per augmentation [default: 3]")
    v.add_argument("--steps", type=int, default=600, metavar="N", help="training steps per student [default: 600]")
    v.add_argument("--out", help="folder of the students' runs and validate.json; finished runs are reused "
                   "[default: runs/tstddev-validate-<time>]")
    v.add_argument("--json", action="store_true", help="end with one JSON line of the result")


def parse_names(text: str | None) -> list[str] | None:
    if not text:
        return None
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    for n in names:
        if n not in AUGMENTATIONS:
            raise UserError(f"unknown augmentation '{n}'; choose from: {', '.join(AUGMENTATIONS)}")
    return names or None


def run(args) -> int:
    options = {k: getattr(args, k) for k in DATA if getattr(args, k, None) is not None}
    cfg = validate_config(RunConfig, options)
    if cfg.teacher is None:
        raise UserError("--teacher is required (a pretrain run directory, a .safetensors file, or 'default')")
    if args.batches < 2:
        raise UserError("--batches must be at least 2 (a standard deviation needs two batches)")
    names = parse_names(args.augment)
    if args.validate:
        return run_validation(args, cfg, names)
    _, _, ranking = score_augmentations(cfg, names, views=args.views, batches=args.batches)
    print(f"T. stddev of the teacher's mean prediction ({args.batches} batches of {cfg.batch_size}, views "
          f"{args.views}); lower is better")
    print(f"{'rank':>4}  {'augmentation':14s} {'T. stddev':>10}")
    for i, (name, score) in enumerate(ranking, 1):
        print(f"{i:>4}  {name:14s} {score:10.5f}")
    return 0


def run_validation(args, cfg: RunConfig, names: list[str] | None) -> int:
    out = args.out or f"runs/tstddev-validate-{time.strftime('%Y%m%d-%H%M%S')}"
    result = validate(cfg, names, args.seeds, out, steps=args.steps, views=args.views, batches=args.batches)
    print(f"T. stddev vs student test loss: {len(result['rows'])} augmentations x {args.seeds} seeds, "
          f"{args.steps} steps, {cfg.student} student, views {args.views} ({result['runs']['reused']} runs reused)")
    print(f"{'augmentation':14s} {'T. stddev':>10} {'test loss (mean +- std)':>24} {'test acc':>9}")
    for r in result["rows"]:
        std = "-" if r["test_loss_std"] is None else f"{r['test_loss_std']:.4f}"
        print(f"{r['augment']:14s} {r['t_stddev']:10.5f} {r['test_loss_mean']:15.4f} +- {std:>6} "
              f"{100 * r['test_acc_mean']:8.2f}%")
    print(f"Spearman rho = {_num(result['spearman'])}, Pearson r = {_num(result['pearson'])} "
          "(paper 2 predicts > 0: lower T. stddev, lower test loss)")
    print(f"results: {out}/validate.json")
    if args.json:
        print(json.dumps(result))
    return 0


def _num(value: float | None) -> str:
    return "undefined" if value is None else f"{value:+.3f}"
