"""Validating T. stddev (paper 2): does a lower teacher-only score go with a lower student test loss?

`score_augmentations` is the one way a ranking is made for a config (the `tstddev` command and the lab's
explorer): `rank_augmentations` on the student's training images, computed once per teacher (a hash of its
weights) and settings and kept as `tstddev-<key>.json`, looked for in `assets/` (shipped for the shipped
teachers, `docs/bench/explorer_ranking.py --ship`), then in the engine's cache folder, where a computed
one is written (atomically; an unreadable file is computed again, an unwritable folder skipped).

For each augmentation: its T. stddev (with the chosen views), and one KD student per seed trained with
that augmentation and the same views (`cells.run_or_reuse` under the output folder's lock, as `sweep` and
`matrix`: finished runs are reused, interrupted ones trained again, a second command on the folder waits).
A student's test loss is its mean cross-entropy on the test split. Across augmentations we then correlate T. stddev with
the mean test loss over seeds: paper 2 claims the correlation is positive.

The scored augmentation is the trained one: same `max_shift`, same batch size, and CutMixPick with its
teacher-entropy criterion in both (the only criterion a teacher-only score can use).

>>> result = validate(RunConfig(dataset="mnist5k", canvas=40, teacher="default"), ["none", "shift"], seeds=3,
...                   out="runs/v", steps=600)
>>> result["spearman"]  # in [-1, 1], or None when undefined (e.g. all test losses equal)
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..assets import ASSETS, cache_dir
from ..augment import AUGMENTATIONS
from ..checkpoint import write_json
from ..config import RunConfig, validate as validate_config
from ..data import Split, default_suites
from ..errors import UserError
from ..probes.tstddev import PAPER_BATCH, PAPER_CHUNK_BATCHES, Score, Views, chunks_for, rank_augmentations
from ..train import dataset_for, pick_device
from ..teacher import load_teacher
from ..train.setup import train_split
from .cells import hold_folder, run_or_reuse
from .reader import load_student, read_dict


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n of `values` (ascending); tied values share the mean of the ranks they span."""
    v = np.asarray(values, dtype=np.float64)
    ranks = np.empty(len(v))
    ranks[v.argsort(kind="stable")] = np.arange(1, len(v) + 1)
    _, group = np.unique(v, return_inverse=True)
    return (np.bincount(group, weights=ranks) / np.bincount(group))[group]


def pearson(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Pearson's correlation of two equally long sequences; None if undefined (n < 2 or a constant one)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two 1D sequences of equal length, got shapes {a.shape} and {b.shape}")
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    if len(a) < 2 or denom == 0:
        return None
    return float(np.clip((a * b).sum() / denom, -1.0, 1.0))


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rank correlation: Pearson's on average ranks (the standard tie handling)."""
    return pearson(average_ranks(a), average_ranks(b))


@torch.no_grad()
def test_loss(student: torch.nn.Module, split: Split, batch_size: int = 1000) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of `student` on `split` (in eval mode, on the student's device)."""
    device = next(student.parameters()).device
    total, correct = 0.0, 0
    for i in range(0, len(split), batch_size):
        x, y = split.get(slice(i, i + batch_size))
        logits = student(x.to(device)).float()
        total += F.cross_entropy(logits, y.to(device), reduction="sum").item()
        correct += (logits.argmax(1) == y.to(device)).sum().item()
    return total / len(split), correct / len(split)


def student_config(base: RunConfig, name: str, seed: int, steps: int, views: Views) -> RunConfig:
    """The KD run of augmentation `name`: quiet bookkeeping (one evaluation, checkpoint, snapshot at the end)."""
    once = {k: steps for k in ("eval_every", "log_every", "snapshot_every", "checkpoint_every", "probe_every")}
    pick = "teacher-entropy" if name == "cutmixpick" else base.pick_criterion
    return validate_config(RunConfig, {**base.model_dump(), **once, "kind": "train", "loss": "kd", "augment": name,
                                       "views": views, "steps": steps, "seed": seed, "suites": "none",
                                       "pick_criterion": pick, "hard": "none"})


def score_augmentations(cfg: RunConfig, names: Sequence[str] | None = None, *, views: Views = "original+augmented",
                        chunks: int | None = None, chunk_batches: int = PAPER_CHUNK_BATCHES,
                        batch_size: int = PAPER_BATCH, keep: bool = True) -> tuple[list[Score], dict]:
    """(ranked `Score`s, the setting) for `cfg`'s teacher on the student's training images (labels given).

    chunks=None: paper 2's 10 epochs' worth. The seed is cfg.seed. A UserError if an augmentation named in
    `names` does not apply (image-only ones on 1D data). The setting says where the ranking was kept and
    whether it was read back (`"read": true`) instead of computed.
    """
    device = pick_device(cfg.device)
    dataset = dataset_for(cfg)
    teacher = load_teacher(cfg, dataset, device)
    split = train_split(cfg, dataset)
    max_shift = int(cfg.max_shift if cfg.max_shift is not None else default_suites(dataset).get("shift", 4))
    chunks = chunks or chunks_for(len(split), chunk_batches, batch_size)
    setting = {"dataset": cfg.dataset, "canvas": cfg.canvas, "world": cfg.world, "teacher": cfg.teacher,
               "images": len(split), "names": list(names or ()), "views": views, "chunks": chunks,
               "chunk_batches": chunk_batches, "batch_size": batch_size, "seed": cfg.seed, "max_shift": max_shift,
               "train_per_class": cfg.train_per_class}
    key = ranking_key(teacher, setting)
    for path in kept_rankings(key):
        kept = read_dict(path) or {}  # an unreadable file is not kept there
        try:
            if kept.get("key") == key:
                return [Score(**row) for row in kept["ranking"]], {**setting, "kept": str(path), "read": True}
        except (ValueError, KeyError, TypeError):
            continue  # not kept there (or a ranking of another shape): look further, else compute
    x, y = split.to(device).get(slice(None))
    scores = rank_augmentations(teacher, x, names, num_classes=dataset.num_classes, max_shift=max_shift, y=y,
                                chunks=chunks, chunk_batches=chunk_batches, batch_size=batch_size, seed=cfg.seed,
                                views=views)
    skipped = sorted(set(names or ()) - {s.name for s in scores})
    if skipped:
        raise UserError(f"{', '.join(skipped)} only apply to images, and {dataset.name} is 1D")
    path = kept_rankings(key)[-1]
    try:
        if keep:
            write_json(path, {"key": key, "setting": setting, "ranking": [s._asdict() for s in scores]})
    except OSError:
        path = None  # a read-only cache folder: the ranking is still returned, only not kept
    return scores, {**setting, "kept": str(path) if keep and path else None, "read": False}


def kept_rankings(key: str) -> list[Path]:
    """Where the ranking of `key` is looked for, in order: shipped in assets/, then the cache folder."""
    name = f"tstddev-{key}.json"
    return [ASSETS / name, cache_dir() / name]


def ranking_key(teacher: torch.nn.Module, setting: dict) -> str:
    """A hash of the teacher's weights, the setting and the augmentations there are: a retrained teacher
    with the same name gets a new ranking, the same teacher under another path reuses its own."""
    h = hashlib.sha256(json.dumps([setting, list(AUGMENTATIONS), "chunks+accuracy"], sort_keys=True).encode())
    for name, tensor in sorted(teacher.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


def validate(base: RunConfig, names: Sequence[str] | None, seeds: int, out: str | Path, *, steps: int = 600,
             views: Views = "original+augmented", chunks: int | None = None,
             chunk_batches: int = PAPER_CHUNK_BATCHES, batch_size: int = PAPER_BATCH, progress: bool = True) -> dict:
    """Score and train every augmentation in `names` (None: all that apply); the result as a JSON-able dict,
    also written to `out`/validate.json (atomically) after the scoring and after each augmentation's students.

    Seeds base.seed, base.seed + 1, ...: one student each, and one T. stddev estimate each (its own chunks
    of images; every augmentation sees the same ones). A row's T. stddev is the mean over those estimates,
    with their spread; the correlations are given for the mean and for each seed's estimate, over the
    augmentations the teacher can read (a collapsed one's score says nothing). Rows go by mean T. stddev.
    """
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}")
    if steps < 1:
        raise UserError(f"--steps must be at least 1, got {steps}")
    if base.teacher is None:
        raise UserError("--teacher is required (a pretrain run directory, a .safetensors file, or 'default')")
    out, seed_list = Path(out), [base.seed + i for i in range(seeds)]
    estimates = {}  # seed -> {name: Score}
    for seed in seed_list:
        scores, how = score_augmentations(base.model_copy(update={"seed": seed}), names, views=views, chunks=chunks,
                                          chunk_batches=chunk_batches, batch_size=batch_size)
        estimates[seed] = {s.name: s for s in scores}
    if len(estimates[base.seed]) < 2:
        raise UserError("--validate needs at least 2 augmentations to correlate T. stddev with test loss")
    device, dataset = pick_device(base.device), dataset_for(base)
    order = sorted(estimates[base.seed], key=lambda n: np.mean([estimates[s][n].t_stddev for s in seed_list]))
    rows, counts = [], {"reused": 0, "trained": 0}
    setting = {"dataset": base.dataset, "canvas": base.canvas, "teacher": base.teacher, "world": base.world,
               "student": base.student, "views": views, "steps": steps, "seeds": seed_list, "chunks": how["chunks"],
               "chunk_batches": chunk_batches, "batch_size": batch_size, "student_batch_size": base.batch_size,
               "runs": counts}
    with hold_folder(out), \
            tqdm(total=len(order) * seeds, unit="run", file=sys.stderr, disable=not progress, dynamic_ncols=True) as bar:
        write_json(out / "validate.json", summary(rows, estimates, complete=False, **setting))
        for name in order:
            losses, accs = [], []
            for seed in seed_list:
                bar.set_postfix_str(f"{name} seed {seed}")
                run_dir = out / f"{name}-s{seed}"
                trained = run_or_reuse(student_config(base, name, seed, steps, views), run_dir)
                counts["trained" if trained else "reused"] += 1
                loss, acc = test_loss(load_student(run_dir, str(device)), dataset.test)
                losses.append(loss)
                accs.append(acc)
                bar.update()
            t = [estimates[s][name].t_stddev for s in seed_list]
            first = estimates[base.seed][name]
            rows.append({"augment": name, "t_stddev": float(np.mean(t)), "t_stddev_by_seed": t,
                         "t_stddev_std": float(np.std(t, ddof=1)) if seeds > 1 else None,
                         "interval": [first.low, first.high], "teacher_acc": first.accuracy,
                         "teacher_clean_acc": first.clean_accuracy, "collapsed": first.collapsed,
                         "test_loss_mean": float(np.mean(losses)),
                         "test_loss_std": float(np.std(losses, ddof=1)) if seeds > 1 else None,
                         "test_acc_mean": float(np.mean(accs)), "test_loss": losses, "test_acc": accs})
            result = summary(rows, estimates, complete=len(rows) == len(order), **setting)
            write_json(out / "validate.json", result)  # after every augmentation: a stopped run still tells
    return result


def summary(rows: list[dict], estimates: dict[int, dict[str, Score]], complete: bool, **setting) -> dict:
    """The JSON result: the setting, every T. stddev estimate, the rows trained so far and the correlations
    (mean T. stddev, and each seed's estimate) with the mean test loss, over the readable augmentations."""
    readable = [r for r in rows if not r["collapsed"]]
    loss = [r["test_loss_mean"] for r in readable]

    def corr(fn, t):
        return fn(t, loss) if len(readable) > 1 else None

    by_seed = [[estimates[s][r["augment"]].t_stddev for r in readable] for s in estimates]
    mean_t = [r["t_stddev"] for r in readable]
    return {**setting, "complete": complete, "rows": rows,
            "t_stddev": {str(s): {n: e._asdict() for n, e in est.items()} for s, est in estimates.items()},
            "spearman": corr(spearman, mean_t), "pearson": corr(pearson, mean_t),
            "spearman_by_seed": [corr(spearman, t) for t in by_seed],
            "pearson_by_seed": [corr(pearson, t) for t in by_seed],
            "collapsed": [r["augment"] for r in rows if r["collapsed"]]}
