"""What the Augmentation explorer shows, Streamlit-free: a few test images before and after one
augmentation (a standard one, CutMixPick, or a finished run's HARD augmentor) with the teacher's soft
label of each view, and the T. stddev ranking of the standard augmentations for a teacher (the engine's
`score_augmentations`, kept per teacher). Nothing here trains or takes a gradient.

>>> shown = explore("mnist5k · canvas 40", "cutmix", seed=0)
>>> images.gallery(shown.snapshot)              # clean on top, augmented below
>>> shown.soft["augmented"][0]                  # the teacher's top classes at T on the first view
>>> scores, how = rank("mnist5k · canvas 40")   # [Score], best first, collapsed ones last
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from hard_core.augment import AUGMENTATIONS, build_augment
from hard_core.config import RunConfig
from hard_core.data import Dataset, default_suites
from hard_core.errors import UserError
from hard_core.models import build_model
from hard_core.probes.tstddev import COLLAPSE, Score, tied  # noqa: F401  (COLLAPSE: the page states the rule)
from hard_core.checkpoint import checkpoint_parts
from hard_core.runs import CHECKPOINT, RunReader, load_augmentor, load_student, run_config
from hard_core.runs.validate import score_augmentations
from hard_core.teacher import load_teacher
from hard_core.train.setup import dataset_for

from .augmentor import hardness_reading
from .runs import finished

DATASETS = {"mnist5k · canvas 40": ("mnist5k", 40), "mnist5k · canvas 28": ("mnist5k", 28),
            "mnist1d": ("mnist1d", None)}
HARD = "HARD augmentor from a finished run"
PARAM_SAMPLES = 128  # images the HARD augmentor transforms for its parameter histograms
PICK_STUDENT = "mlp"  # CutMixPick's scoring student when no finished run has one: a freshly initialised MLP
FIRST = "shift"  # what the explorer opens on: an augmentation that changes every data set's images
TOP = 3  # classes of the teacher's soft label shown per view


def config_for(label: str, teacher: str = "default", world: str = "shift") -> RunConfig:
    """A RunConfig naming the data set of `label`, a teacher and its world (whose shipped teacher 'default'
    is), so the trainer's own loaders apply."""
    name, canvas = DATASETS[label]
    return RunConfig(dataset=name, canvas=canvas, teacher=teacher, world=world)


def dataset(label: str) -> Dataset:
    """The data set behind a label of DATASETS (cached per process by the trainer's setup)."""
    return dataset_for(config_for(label))


@lru_cache(maxsize=8)
def teacher(label: str, spec: str = "default", world: str = "shift") -> nn.Module:
    """The frozen, eval-mode teacher: 'default' is the world's shipped CNN; else anything --teacher takes."""
    cfg = config_for(label, spec, world)
    return load_teacher(cfg, dataset(label), "cpu")


def choices(label: str) -> list[str]:
    """The augmentations that apply to the data set (image-only ones are left out for 1D), then HARD."""
    one_d = dataset(label).is_1d
    names = [n for n in AUGMENTATIONS if not (one_d and build_augment(n, num_classes=10).images_only)]
    return names + [HARD]


def hard_runs(label: str) -> dict[str, Path]:
    """Finished runs with a saved HARD augmentor for this data set: '<id> (hard, student)' -> dir."""
    name, canvas = DATASETS[label]
    found = {}
    for row in finished():
        cfg = row["config"]
        native = 28 if cfg.get("dataset") == "mnist5k" else None  # mnist5k without a canvas is 28x28
        if (row["path"] / CHECKPOINT).is_file() and "augmentor" in checkpoint_parts(row["path"] / CHECKPOINT) and cfg.get("dataset") == name \
                and (cfg.get("canvas") or native) == canvas:
            found[f"{row['id']} (HARD-{cfg.get('hard')}, {cfg.get('student')} student)"] = row["path"]
    return found


def sample(ds: Dataset, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` test images and labels, a seeded random choice in random order (the split is sorted by class)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(ds.test), generator=g)[:n]
    return ds.test.get(idx)


def _u8(x: torch.Tensor) -> torch.Tensor:
    return (x.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)


@dataclass
class Explored:
    """A snapshot-like dict (clean, augmented as uint8, label, param.*), its gallery's caption, and the
    teacher's soft label of each shown view at `temperature` (`soft["clean"]`, `soft["augmented"]`: one
    line of its TOP classes per image, what KD learns from)."""

    snapshot: dict
    note: str
    one_d: bool = False
    soft: dict[str, list[str]] = field(default_factory=dict)
    temperature: float = RunConfig.model_fields["temperature"].default


def soft_label(model: nn.Module, x: torch.Tensor, temperature: float, top: int = TOP) -> list[str]:
    """The teacher's softmax at T per image, as its `top` classes: "7 · 62%  1 · 14%  9 · 8%"."""
    with torch.no_grad():
        p = F.softmax(model(x).float() / temperature, dim=1)
    values, classes = p.topk(min(top, p.shape[1]), dim=1)
    return ["  ".join(f"{int(c)} · {100 * float(v):.0f}%" for v, c in zip(vs, cs)) for vs, cs in zip(values, classes)]


def pick_student(label: str) -> tuple[nn.Module, str, float | None]:
    """CutMixPick's student: the newest finished run's on this data set, distilled from the explorer's
    teacher (the shift world's shipped CNN), with that run's T; else a freshly initialised MLP (said so)."""
    name, canvas = DATASETS[label]
    for row in finished():
        cfg = row["config"]
        native = 28 if cfg.get("dataset") == "mnist5k" else None
        same_data = cfg.get("dataset") == name and (cfg.get("canvas") or native) == canvas
        if cfg.get("kind", "train") == "train" and same_data and cfg.get("teacher") == "default" \
                and cfg.get("world", "shift") == "shift" and (row["path"] / CHECKPOINT).is_file():
            try:
                student = _student(str(row["path"]))
            except (UserError, ValueError, OSError, RuntimeError):
                continue  # an unreadable checkpoint: try the next run
            hard = cfg.get("hard", "none")
            method = f"HARD-{hard}" if hard != "none" else f"KD + {cfg.get('augment', 'none')}"
            return student, (f"the {cfg.get('student')} student of the finished run {row['id']} ({method}, "
                             f"{row['step']} steps)"), cfg.get("temperature")
    ds = dataset(label)
    fresh = build_model(PICK_STUDENT, input_shape=ds.input_shape, num_classes=ds.num_classes, mean=ds.mean, std=ds.std)
    return fresh.eval(), (f"a freshly initialised {PICK_STUDENT} (no finished run on this data set distilled "
                          "from this teacher yet: train one on the Live page)"), None


@lru_cache(maxsize=4)
def _student(path: str) -> nn.Module:
    return load_student(path, "cpu")


def explore(label: str, augmentation: str, seed: int = 0, n: int = 8, run_dir: Path | None = None) -> Explored:
    """Apply one augmentation to `n` seeded test images of the data set, with the teacher's soft labels.

    augmentation: a name of `choices(label)`; for HARD, `run_dir` is a run from `hard_runs` (its teacher
    and T label the views). CutMixPick scores its CutMix candidates by KL(teacher ‖ student) at T with the
    shipped teacher and `pick_student`'s student; each kept candidate is shown below the image it was cut
    from (`Picked.source`).
    """
    ds = dataset(label)
    x, y = sample(ds, max(n, PARAM_SAMPLES if augmentation == HARD else n), seed)
    snap: dict = {"label": y[:n]}
    model, temperature = teacher(label), Explored.temperature
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        if augmentation == HARD:
            if run_dir is None:
                raise ValueError("choose a finished HARD run")
            augmentor = load_augmentor(run_dir)
            if augmentor is None:
                raise ValueError(f"{run_dir} has no learned augmentor in its checkpoint")
            trained = run_config(run_dir)
            model, temperature = teacher(label, trained.teacher or "default", trained.world), trained.temperature
            x_aug, params = augmentor(x)
            snap.update({f"param.{k}": v.float() for k, v in params.items()})
            note = (f"top: clean test images · middle: what the learned {augmentor.spec.get('augmentor')} augmentor "
                    f"of run {Path(run_dir).name} makes of each · bottom: |x̃ − x|")
        elif augmentation == "cutmixpick":
            x, y = x[:n], y[:n]
            student, who, run_t = pick_student(label)
            temperature = run_t or temperature
            aug = build_augment("cutmixpick", num_classes=ds.num_classes, criterion="kl", temperature=temperature)
            picked = aug.pick(x, y, teacher=model, student=student)
            x, x_aug, snap["label"] = x[picked.source], picked.x, y[picked.source]
            changed = int((picked.x.flatten(1) != x.flatten(1)).any(1).sum())
            note = (f"top: the test image each candidate was cut from · middle: the {n} of {aug.rounds * n} CutMix "
                    f"candidates that CutMixPick kept, those where teacher and student disagree most (highest "
                    f"KL(teacher ‖ student) at T = {temperature:g}; {changed} of {n} carry a patch of another "
                    f"image) · bottom: |x̃ − x| · the student: {who}")
        else:
            shift = int(default_suites(ds).get("shift", 4))
            aug = build_augment(augmentation, num_classes=ds.num_classes, max_shift=shift)
            x, y = x[:n], y[:n]
            x_aug, _ = aug(x, y)
            what = f"{augmentation}" + (f" (up to {shift} px)" if augmentation == "shift" else "")
            note = f"top: clean test images · middle: after {what} · bottom: |x̃ − x|"
        soft = {"clean": soft_label(model, x[:n], temperature), "augmented": soft_label(model, x_aug[:n], temperature)}
    snap["clean"], snap["augmented"] = _u8(x[:n]), _u8(x_aug[:n])  # param.* keep all PARAM_SAMPLES
    return Explored(snap, note, ds.is_1d, soft, temperature)


def run_hardness(run_dir: Path | None) -> dict | None:
    """The last hardness reading of a finished HARD run (`augmentor.hardness_reading`), or None."""
    if run_dir is None:
        return None
    reader = RunReader(run_dir)
    reader.poll()
    return hardness_reading(reader.events)


def rank(label: str, teacher_spec: str = "default", world: str = "shift") -> tuple[list[Score], dict]:
    """The T. stddev ranking of every standard augmentation that applies, for this teacher (of `world`):
    (`Score`s best first, collapsed ones last; the setting), as `python -m hard_core tstddev` computes it
    (paper 2's chunks and views, the training images and labels) and keeps it: shipped for the shipped
    teachers, else computed once (minutes on 2 CPU cores) and read back after."""
    return score_augmentations(config_for(label, teacher_spec, world).model_copy(update={"device": "cpu"}))


def cannot_read(score: Score) -> str:
    """The collapse flag in words: "the teacher cannot read these: 13% (clean 99.8%)"."""
    return f"the teacher cannot read these: {100 * score.accuracy:.0f}% (clean {100 * score.clean_accuracy:.1f}%)"


def verdict(scores: list[Score]) -> str:
    """What the ranking says, and no more: the lowest readable score with its interval and ties, and each
    augmentation the teacher cannot read, named as such instead of ranked."""
    ranked = [s for s in scores if s.rank is not None]
    parts = []
    if ranked:
        low, ties = ranked[0], tied(scores, ranked[0])
        parts.append(f"Lowest T. stddev among the augmentations the teacher can read: **{low.name}** "
                     f"({low.t_stddev:.4f}, 95% interval {low.interval})"
                     + (f", tied with {', '.join(ties)} (overlapping intervals)" if ties else "") + ".")
    for s in scores:
        if s.collapsed:
            parts.append(f"**{s.name}** scores {s.t_stddev:.4f}, but {cannot_read(s)}: its mean prediction barely "
                         "moves because it cannot read the images, so the score says nothing and it is not ranked.")
    return " ".join(parts)


TSTDDEV_TEXT = (
    "**T. stddev** (Wang et al., paper 2) scores an augmentation with the teacher alone: average the "
    "teacher's softmax over a chunk of augmented training images and their originals (paper 2: 10 batches of "
    "64), repeat over 10 epochs' worth of chunks, and take the standard deviation of those mean probability "
    "vectors (per class, then averaged). Paper 2 reads **lower as better** and reports that it tracks the "
    "student's test loss on CIFAR-100. Each bar carries its 95% bootstrap interval over the chunks: "
    "overlapping intervals are ties. Beside it, the teacher's accuracy on the views each augmentation changed: "
    "below {collapse:.0%} of its clean accuracy the teacher cannot read them, and a low score then only means "
    "that its prediction stopped moving.")
VALIDATION = (
    "**What the check on this toy found** (docs/results.md, 2026-12-06: shift teacher, 9 standard augmentations, "
    "3 KD students each, trained afresh): the link is weak. T. stddev by paper 2's protocol at seeds 0, 1, 2 "
    "against the students' mean test loss: Spearman +0.40, +0.48, +0.30 and Pearson +0.62, +0.57, +0.52 (the mean "
    "of the three estimates: +0.38 and +0.58, not significant with 9 augmentations); paper 2 reports 0.93-1.0 on "
    "CIFAR-100. It gets the two worst students (none, mixup) right and misses the order of the rest. The ranking "
    "itself is stable (Spearman 0.92-0.93 between seeds), but most of it is ties: read it as a hint, not a verdict.")
