"""`tstddev`: rank the standard augmentations by T. stddev, a teacher-only score (paper 2).

Lower is better: paper 2 claims it predicts a lower student test loss under KD, without training a
student. Computed as the paper's code does: the spread, over --chunks chunks of --chunk-batches batches
of --batch-size training images (default: the paper's 10 batches of 64, over 10 epochs' worth of chunks),
of the teacher's mean prediction per chunk. Each score comes with a 95% bootstrap interval over the chunks;
ranks count only clear differences, so overlapping scores share a rank ("=" marks a tie). Next to it the
teacher's accuracy on the views the augmentation changed: below half its clean accuracy the teacher
cannot read them ("COLLAPSED"), and the score is meaningless (a flat mean prediction scores low).
The ranking is computed once per teacher and settings and kept (assets/, then the cache folder).

`--validate` checks the claim here: it trains `--seeds` KD students per augmentation (with the same
--views), estimates T. stddev at the same seeds, and reports the Spearman and Pearson correlation of
T. stddev with the students' mean test loss, for the mean estimate and for each seed's.

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
from ..probes.tstddev import PAPER_BATCH, PAPER_CHUNK_BATCHES, VIEWS, tied
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
    add_config_flags(p, skip=[f for f in RunConfig.model_fields if f not in DATA], defaults={"batch_size": PAPER_BATCH})
    p.add_argument("--augment", help="comma-separated augmentations [default: all that apply]")
    p.add_argument("--chunks", type=int, metavar="N",
                   help="chunks whose mean teacher probabilities are compared [default: 10 epochs' worth, as paper 2; "
                   "62 for mnist5k's 4,000 training digits]")
    p.add_argument("--chunk-batches", type=int, default=PAPER_CHUNK_BATCHES, metavar="N",
                   help=f"batches per chunk [default: {PAPER_CHUNK_BATCHES}, paper 2's]; the batch is --batch-size "
                   f"(default here: paper 2's {PAPER_BATCH}; the students of --validate keep the run default)")
    p.add_argument("--views", choices=VIEWS, default="original+augmented",
                   help="what a batch's mean teacher prediction is taken over (and, with --validate, what the "
                   "students learn from) [default: original+augmented, paper 2's KD+DA setting]")
    p.add_argument("--json", action="store_true", help="end with one JSON line of the result")
    v = p.add_argument_group("validation (--validate)")
    v.add_argument("--validate", action="store_true",
                   help="train KD students per augmentation and correlate T. stddev with their test loss")
    v.add_argument("--seeds", type=int, default=3, metavar="N", help="students per augmentation [default: 3]")
    v.add_argument("--steps", type=int, default=600, metavar="N", help="training steps per student [default: 600]")
    v.add_argument("--out", help="folder of the students' runs and validate.json; finished runs are reused "
                   "[default: runs/tstddev-validate-<time>]")


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
    if args.chunks is not None and args.chunks < 2:
        raise UserError("--chunks must be at least 2 (a standard deviation needs two chunks)")
    if args.chunk_batches < 1:
        raise UserError("--chunk-batches must be at least 1")
    names = parse_names(args.augment)
    estimate = {"views": args.views, "chunks": args.chunks, "chunk_batches": args.chunk_batches,
                "batch_size": args.batch_size or PAPER_BATCH}
    if args.validate:
        return run_validation(args, cfg, names, estimate)
    t0 = time.perf_counter()
    ranking, how = score_augmentations(cfg, names, **estimate)
    took = "read back from " + how["kept"] if how["read"] else f"computed in {time.perf_counter() - t0:.0f} s"
    print(f"T. stddev of the teacher's mean prediction per chunk: {how['chunks']} chunks of {how['chunk_batches']} "
          f"batches of {how['batch_size']} ({how['images']} training images), views {args.views}, seed {cfg.seed}; "
          f"lower is better ({took})")
    print(f"{'rank':>5}  {'augmentation':14s} {'T. stddev':>9}  {'95% interval':>15}  {'teacher acc':>11}")
    for s in ranking:
        rank = "-" if s.rank is None else f"{s.rank}{'=' if tied(ranking, s) else ''}"
        flag = f"  COLLAPSED: the teacher cannot read these ({100 * s.clean_accuracy:.1f}% clean)" * s.collapsed
        print(f"{rank:>5}  {s.name:14s} {s.t_stddev:9.5f}  {s.interval:>15}  {100 * s.accuracy:10.1f}%{flag}")
    print("= : tied (95% intervals overlap); teacher acc: on the views the augmentation changed")
    if args.json:
        print(json.dumps({"setting": how, "ranking": [{**s._asdict(), "collapsed": s.collapsed} for s in ranking]}))
    return 0


def run_validation(args, cfg: RunConfig, names: list[str] | None, estimate: dict) -> int:
    out = args.out or f"runs/tstddev-validate-{time.strftime('%Y%m%d-%H%M%S')}"
    result = validate(cfg, names, args.seeds, out, steps=args.steps, **estimate)
    print(f"T. stddev vs student test loss: {len(result['rows'])} augmentations x {args.seeds} seeds, "
          f"{args.steps} steps, {cfg.student} student, views {args.views} ({result['runs']['reused']} runs reused); "
          f"T. stddev: {result['chunks']} chunks of {result['chunk_batches']} batches of {result['batch_size']}")
    print(f"{'augmentation':14s} {'T. stddev (mean +- std)':>24} {'teacher acc':>11} {'test loss (mean +- std)':>24} "
          f"{'test acc':>9}")
    for r in result["rows"]:
        t_std = "-" if r["t_stddev_std"] is None else f"{r['t_stddev_std']:.5f}"
        std = "-" if r["test_loss_std"] is None else f"{r['test_loss_std']:.4f}"
        flag = "  COLLAPSED (left out)" if r["collapsed"] else ""
        print(f"{r['augment']:14s} {r['t_stddev']:13.5f} +- {t_std:>7} {100 * r['teacher_acc']:10.1f}% "
              f"{r['test_loss_mean']:15.4f} +- {std:>6} {100 * r['test_acc_mean']:8.2f}%{flag}")
    by_seed = ", ".join(f"{_num(a)} / {_num(b)}" for a, b in zip(result["spearman_by_seed"], result["pearson_by_seed"]))
    print(f"Spearman rho = {_num(result['spearman'])}, Pearson r = {_num(result['pearson'])} for the mean T. stddev; "
          f"each seed's estimate (Spearman / Pearson): {by_seed} (paper 2 predicts > 0: lower T. stddev, lower "
          "test loss)")
    print(f"results: {out}/validate.json")
    if args.json:
        print(json.dumps(result))
    return 0


def _num(value: float | None) -> str:
    return "undefined" if value is None else f"{value:+.3f}"
