"""`tstddev`: rank the standard augmentations by T. stddev, a teacher-only score (paper 2).

Lower is better: it predicts a lower student test loss under KD, without training a student.
"""
from __future__ import annotations

import argparse

from ..augment import AUGMENTATIONS
from ..config import RunConfig
from ..data import default_suites
from ..errors import UserError
from ..probes import rank_augmentations
from ..train import dataset_for, pick_device
from ..train.setup import load_teacher
from .flags import add_config_flags

DATA = ("dataset", "canvas", "data_root", "image_size", "teacher", "seed", "device", "batch_size", "max_shift")


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="rank standard augmentations by T. stddev (teacher only)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="example:\n  python -m hard_core tstddev --dataset mnist5k --canvas 40 --teacher T")
    add_config_flags(p, skip=[f for f in RunConfig.model_fields if f not in DATA])
    p.add_argument("--augment", help="comma-separated augmentations to rank [default: all that apply]")
    p.add_argument("--batches", type=int, default=20, metavar="N",
                   help="augmented batches whose mean teacher probabilities are compared [default: 20]")


def run(args) -> int:
    options = {k: getattr(args, k) for k in DATA if getattr(args, k, None) is not None}
    cfg = RunConfig(**options)
    if cfg.teacher is None:
        raise UserError("--teacher is required (a pretrain run directory, a .safetensors file, or 'default')")
    if args.batches < 2:
        raise UserError("--batches must be at least 2 (a standard deviation needs two batches)")
    names = [n.strip() for n in args.augment.split(",")] if args.augment else None
    for n in names or []:
        if n not in AUGMENTATIONS:
            raise UserError(f"unknown augmentation '{n}'; choose from: {', '.join(AUGMENTATIONS)}")
    device = pick_device(cfg.device)
    dataset = dataset_for(cfg)
    teacher = load_teacher(cfg, dataset, device)
    x, y = dataset.train.to(device).get(slice(None))
    max_shift = cfg.max_shift if cfg.max_shift is not None else default_suites(dataset).get("shift", 4)
    ranking = rank_augmentations(teacher, x, names, num_classes=dataset.num_classes, max_shift=int(max_shift),
                                 batches=args.batches, batch_size=cfg.batch_size, seed=cfg.seed, y=y)
    print(f"T. stddev of the teacher's mean prediction ({args.batches} batches of {cfg.batch_size}); "
          "lower is better")
    print(f"{'rank':>4}  {'augmentation':14s} {'T. stddev':>10}")
    for i, (name, score) in enumerate(ranking, 1):
        print(f"{i:>4}  {name:14s} {score:10.5f}")
    return 0
