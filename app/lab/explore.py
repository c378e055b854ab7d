"""What the Augmentation explorer shows, Streamlit-free: a few test images before and after one
augmentation (a standard one, CutMixPick, or a finished run's HARD augmentor), and the T. stddev
ranking of the standard augmentations for a teacher. Nothing here trains or takes a gradient.

>>> shown = explore("mnist5k · canvas 40", "cutmix", seed=0)
>>> images.gallery(shown.snapshot)              # clean on top, augmented below
>>> rank("mnist5k · canvas 40")                 # [(name, T. stddev)], lowest (best) first
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from hard_core.assets import ASSETS, cache_dir
from hard_core.augment import AUGMENTATIONS, build_augment, pick_top, score_candidates
from hard_core.config import RunConfig
from hard_core.data import Dataset, default_suites
from hard_core.models import build_model
from hard_core.models.external import is_external
from hard_core.probes import rank_augmentations
from hard_core.checkpoint import checkpoint_parts, write_json
from hard_core.runs import CHECKPOINT, RunReader, load_augmentor
from hard_core.teacher import load_teacher, teacher_path
from hard_core.train.setup import dataset_for

from .augmentor import hardness_reading
from .runs import finished

DATASETS = {"mnist5k · canvas 40": ("mnist5k", 40), "mnist5k · canvas 28": ("mnist5k", 28),
            "mnist1d": ("mnist1d", None)}
HARD = "HARD augmentor from a finished run"
PARAM_SAMPLES = 128  # images the HARD augmentor transforms for its parameter histograms
PICK_STUDENT = "mlp"  # CutMixPick's scoring student: a freshly initialised one (no trained student here)


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
    """A snapshot-like dict (clean, augmented as uint8, label, param.*) and its gallery's caption."""

    snapshot: dict
    note: str
    one_d: bool = False


def explore(label: str, augmentation: str, seed: int = 0, n: int = 8, run_dir: Path | None = None) -> Explored:
    """Apply one augmentation to `n` seeded test images of the data set.

    augmentation: a name of `choices(label)`; for HARD, `run_dir` is a run from `hard_runs`.
    CutMixPick scores its CutMix candidates by KL(teacher || student) at T = 4 with the shipped teacher
    and a freshly initialised MLP student (seeded); each kept candidate is shown below the image it
    was cut from.
    """
    ds = dataset(label)
    x, y = sample(ds, max(n, PARAM_SAMPLES if augmentation == HARD else n), seed)
    snap: dict = {"label": y[:n]}
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        if augmentation == HARD:
            if run_dir is None:
                raise ValueError("choose a finished HARD run")
            augmentor = load_augmentor(run_dir)
            if augmentor is None:
                raise ValueError(f"{run_dir} has no learned augmentor in its checkpoint")
            x_aug, params = augmentor(x)
            snap.update({f"param.{k}": v.float() for k, v in params.items()})
            note = (f"top: clean test images · middle: what the learned {augmentor.spec.get('augmentor')} augmentor "
                    f"of run {Path(run_dir).name} makes of each · bottom: |x̃ − x|")
        elif augmentation == "cutmixpick":
            x, y = x[:n], y[:n]
            aug = build_augment("cutmixpick", num_classes=ds.num_classes, criterion="kl")
            student = build_model(PICK_STUDENT, input_shape=ds.input_shape, num_classes=ds.num_classes,
                                  mean=ds.mean, std=ds.std).eval()
            xc, _ = aug.candidates(x, y)
            scores = score_candidates(xc, aug.criterion, aug.temperature, teacher(label), student)
            keep = pick_top(scores, n)
            x, x_aug = x[keep % n], xc[keep]
            snap["label"] = y[keep % n]
            note = (f"top: the test image each candidate was cut from · middle: the {n} of {len(xc)} CutMix "
                    f"candidates that CutMixPick kept, those where teacher and student disagree most (highest "
                    f"KL(teacher ‖ student) at T = {aug.temperature:g}; the student is a freshly initialised "
                    f"{PICK_STUDENT}, seed {seed}: none is trained on this page) · bottom: |x̃ − x|")
        else:
            shift = int(default_suites(ds).get("shift", 4))
            aug = build_augment(augmentation, num_classes=ds.num_classes, max_shift=shift)
            x, y = x[:n], y[:n]
            x_aug, _ = aug(x, y)
            what = f"{augmentation}" + (f" (up to {shift} px)" if augmentation == "shift" else "")
            note = f"top: clean test images · middle: after {what} · bottom: |x̃ − x|"
    snap["clean"], snap["augmented"] = _u8(x[:n]), _u8(x_aug[:n])  # param.* keep all PARAM_SAMPLES
    return Explored(snap, note, ds.is_1d)


def run_hardness(run_dir: Path | None) -> dict | None:
    """The last hardness reading of a finished HARD run (`augmentor.hardness_reading`), or None."""
    if run_dir is None:
        return None
    reader = RunReader(run_dir)
    reader.poll()
    return hardness_reading(reader.events)


def rank(label: str, teacher_spec: str = "default", batches: int = 20, batch_size: int = 128,
         seed: int = 0, world: str = "shift") -> list[tuple[str, float]]:
    """T. stddev of every standard augmentation that applies, for this teacher (of `world`), lowest first.

    Same settings as `python -m hard_core tstddev`: training images and labels, the shift suite's
    strength for "shift", CutMixPick with its teacher-entropy criterion, and paper 2's views (each batch's
    mean over the originals plus their augmented views: what the student learns from under KD + DA).
    The ranking takes a minute or two on 2 CPU cores, so it is computed once per teacher (its weights'
    hash), data set and settings and kept (see `kept_rankings`).
    """
    model = teacher(label, teacher_spec, world)
    key = ranking_key(model, label, batches, batch_size, seed)
    places = kept_rankings(label, teacher_spec, key, world)
    for path in places:
        try:
            kept = json.loads(path.read_text())
            if kept["key"] == key:
                return [(str(name), float(score)) for name, score in kept["ranking"]]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not kept there (or an unreadable file): look further, else compute
    ds = dataset(label)
    x, y = ds.train.get(slice(None))
    shift = int(default_suites(ds).get("shift", 4))
    ranked = rank_augmentations(model, x, num_classes=ds.num_classes, max_shift=shift, batches=batches,
                                batch_size=batch_size, seed=seed, y=y, views="original+augmented")
    try:
        write_json(places[-1], {"key": key, "label": label, "teacher": teacher_spec, "batches": batches,
                                "batch_size": batch_size, "seed": seed,
                                "ranking": [[name, float(score)] for name, score in ranked]})
    except OSError:
        pass  # a read-only runs folder: the ranking is still shown, only not kept
    return ranked


def kept_rankings(label: str, teacher_spec: str, key: str, world: str = "shift") -> list[Path]:
    """Where a computed ranking is looked for, in order: next to a shipped teacher (`tstddev-<teacher>.json`
    in assets/, written by `docs/bench/explorer_ranking.py --ship`, so a fresh clone ranks at once), then
    the engine's cache folder (`hard_core.assets.cache_dir`), where what is computed once is kept,
    shared by every session and surviving a restart. Each file names the `key` it was computed for."""
    if is_external(teacher_spec):  # a model of another library: never shipped
        return [cache_dir() / f"tstddev-{key}.json"]
    path = teacher_path(teacher_spec, config_for(label, teacher_spec, world))
    shipped = [path.with_name(f"tstddev-{path.stem}.json")] if path.resolve().parent == ASSETS.resolve() else []
    return shipped + [cache_dir() / f"tstddev-{key}.json"]


def ranking_key(model: nn.Module, label: str, batches: int, batch_size: int, seed: int) -> str:
    """A hash of the teacher's weights and everything else the ranking depends on: a retrained teacher
    with the same name gets a new ranking, the same teacher under another path reuses its own."""
    h = hashlib.sha256(json.dumps([label, batches, batch_size, seed, sorted(AUGMENTATIONS)]).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


TSTDDEV_TEXT = (
    "**T. stddev** (Wang et al., paper 2) scores an augmentation with the teacher alone: average the "
    "teacher's softmax over a batch of augmented training images, repeat for {batches} batches, and take "
    "the standard deviation of those mean probability vectors (per class, then averaged). **Lower is "
    "better**: a lower T. stddev predicts a lower student test loss under KD, without training a student.")
