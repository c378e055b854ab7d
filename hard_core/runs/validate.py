"""Validating T. stddev (paper 2): does a lower teacher-only score go with a lower student test loss?

For each augmentation: its T. stddev (`rank_augmentations`, on the student's training images, with the
chosen views), and one KD student per seed trained with that augmentation and the same views (through
`run_to_dir`; finished runs in the output folder are reused, interrupted ones resumed). A student's test
loss is its mean cross-entropy on the test split. Across augmentations we then correlate T. stddev with
the mean test loss over seeds: paper 2 claims the correlation is positive.

The scored augmentation is the trained one: same `max_shift`, same batch size, and CutMixPick with its
teacher-entropy criterion in both (the only criterion a teacher-only score can use).

>>> result = validate(RunConfig(dataset="mnist5k", canvas=40, teacher="default"), ["none", "shift"], seeds=3,
...                   out="runs/v", steps=600)
>>> result["spearman"]  # in [-1, 1], or None when undefined (e.g. all test losses equal)
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..checkpoint import write_json
from ..config import RunConfig, validate as validate_config
from ..data import Split, default_suites
from ..errors import UserError
from ..probes.tstddev import Views, rank_augmentations
from ..train import dataset_for, pick_device
from ..teacher import load_teacher
from ..train.setup import train_split
from .execute import run_to_dir
from .reader import CHECKPOINT, load_student, read_json

# Fields that may differ between a saved run and a rerun without making it a different experiment.
_IGNORED = ("device", "threads")


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


def train_or_reuse(cfg: RunConfig, run_dir: Path) -> str:
    """Train `cfg` into `run_dir` unless it is already there: "reused", "resumed" or "trained"."""
    if (run_dir / "events.jsonl").exists():
        saved = read_json(run_dir / "config.json", {}).get("config", {})
        mine = cfg.model_dump()
        if any(saved.get(k) != v for k, v in mine.items() if k not in _IGNORED):
            raise UserError(f"{run_dir} holds a run with another config; choose another --out")
        has_checkpoint = (run_dir / CHECKPOINT).is_file()
        if has_checkpoint and read_json(run_dir / "status.json", {}).get("state") == "finished":
            return "reused"
        if has_checkpoint:
            run_to_dir(cfg, run_dir, resume=True)
            return "resumed"
        shutil.rmtree(run_dir)  # our own run, stopped before its first checkpoint: nothing to keep
    run_to_dir(cfg, run_dir)
    return "trained"


def score_augmentations(cfg: RunConfig, names: Sequence[str] | None, *, views: Views, batches: int):
    """(device, dataset, [(name, T. stddev)] ascending) for `cfg`'s teacher on the student's training images.

    A UserError if an augmentation named in `names` does not apply (image-only ones on 1D data).
    """
    device = pick_device(cfg.device)
    dataset = dataset_for(cfg)
    teacher = load_teacher(cfg, dataset, device)
    x, y = train_split(cfg, dataset).to(device).get(slice(None))
    max_shift = cfg.max_shift if cfg.max_shift is not None else default_suites(dataset).get("shift", 4)
    scores = rank_augmentations(teacher, x, names, num_classes=dataset.num_classes, max_shift=int(max_shift),
                                batches=batches, batch_size=cfg.batch_size, seed=cfg.seed, y=y, views=views)
    skipped = sorted(set(names or ()) - {n for n, _ in scores})
    if skipped:
        raise UserError(f"{', '.join(skipped)} only apply to images, and {dataset.name} is 1D")
    return device, dataset, scores


def validate(base: RunConfig, names: Sequence[str] | None, seeds: int, out: str | Path, *, steps: int = 600,
             views: Views = "original+augmented", batches: int = 20, progress: bool = True) -> dict:
    """Score and train every augmentation in `names` (None: all that apply); the result as a JSON-able dict,
    also written to `out`/validate.json (atomically) after the scoring and after each augmentation's students.

    Students use seeds base.seed, base.seed + 1, ...; T. stddev uses base.seed (the same image batches for
    every augmentation). Rows are sorted by T. stddev, ascending.
    """
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}")
    if steps < 1:
        raise UserError(f"--steps must be at least 1, got {steps}")
    if base.teacher is None:
        raise UserError("--teacher is required (a pretrain run directory, a .safetensors file, or 'default')")
    device, dataset, scores = score_augmentations(base, names, views=views, batches=batches)
    if len(scores) < 2:
        raise UserError("--validate needs at least 2 augmentations to correlate T. stddev with test loss")
    out, seed_list = Path(out), [base.seed + i for i in range(seeds)]
    rows, counts = [], {"reused": 0, "resumed": 0, "trained": 0}
    setting = {"dataset": base.dataset, "canvas": base.canvas, "teacher": base.teacher, "world": base.world,
               "student": base.student, "views": views, "steps": steps, "seeds": seed_list, "batches": batches,
               "batch_size": base.batch_size, "runs": counts}
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "validate.json", summary(rows, scores, complete=False, **setting))
    with tqdm(total=len(scores) * seeds, unit="run", file=sys.stderr, disable=not progress,
              dynamic_ncols=True) as bar:
        for name, score in scores:
            losses, accs = [], []
            for seed in seed_list:
                bar.set_postfix_str(f"{name} seed {seed}")
                run_dir = out / f"{name}-s{seed}"
                counts[train_or_reuse(student_config(base, name, seed, steps, views), run_dir)] += 1
                loss, acc = test_loss(load_student(run_dir, str(device)), dataset.test)
                losses.append(loss)
                accs.append(acc)
                bar.update()
            rows.append({"augment": name, "t_stddev": score, "test_loss_mean": float(np.mean(losses)),
                         "test_loss_std": float(np.std(losses, ddof=1)) if seeds > 1 else None,
                         "test_acc_mean": float(np.mean(accs)), "test_loss": losses, "test_acc": accs})
            result = summary(rows, scores, complete=len(rows) == len(scores), **setting)
            write_json(out / "validate.json", result)  # after every augmentation: a stopped run still tells
    return result


def summary(rows: list[dict], scores: list[tuple[str, float]], complete: bool, **setting) -> dict:
    """The JSON result: the setting, every T. stddev, the rows trained so far and their correlations."""
    t, loss = [r["t_stddev"] for r in rows], [r["test_loss_mean"] for r in rows]
    return {**setting, "complete": complete, "t_stddev": dict(scores), "rows": rows,
            "spearman": spearman(t, loss) if len(rows) > 1 else None,
            "pearson": pearson(t, loss) if len(rows) > 1 else None}
