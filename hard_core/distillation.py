"""Distil from Python: your teacher, your student, your data, into a run directory the lab can watch.

>>> import hard_core
>>> run = hard_core.distil(teacher=my_teacher, student="mlp", train=my_train_set, test=my_test_set,
...                        hard="affine", steps=600, out="runs/mine")
>>> run.accuracy["test"], run.student(x)         # final accuracy per suite; the trained student
>>> # and in a terminal: HARD_LAB_RUNS=runs make run   (the lab lists runs/mine beside its own runs)

`teacher` is a reference as `--teacher` takes it ("default", a run directory, a Hub folder,
"timm:NAME@FILE", ...) or an `nn.Module`; `student` a model name as `--student` takes it ("mlp",
"timm:resnet18", ...) or an `nn.Module`. Modules map float batches in [0, 1] to logits and normalise
for themselves; they are trained (the student) and used in place. `train` and `test` are
`torch.utils.data.Dataset`s of (image, label) pairs, images C x H x W (or 1 x L) in [0, 1] (uint8 is
divided by 255), or (images, labels) tensors; without them the config's `dataset` is used. Every other
keyword is a `RunConfig` option (`python -m hard_core train --help` lists them).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from .config import RunConfig, validate
from .data import Dataset, Split
from .data.builtin import channel_stats
from .errors import UserError
from .models import Classifier
from .runs import final_metrics, load_student, run_to_dir
from .train import Event
from .train.setup import Given

MAX_IMAGES = 2_000_000  # what `distil` holds in memory; larger sets belong in an image folder (--stream)


@dataclass
class Run:
    """A finished run: its directory, its student (eval mode) and its final accuracy per suite."""

    path: Path
    student: nn.Module
    accuracy: dict[str, float]
    teacher_accuracy: dict[str, float]


def distil(teacher: str | nn.Module = "default", student: str | nn.Module = "mlp", train=None, test=None, *,
           out: str | Path | None = None, classes: list[str] | None = None,
           on_event: Callable[[Event], None] | None = None, **options) -> Run:
    """Train `student` from `teacher` as `options` say (see the module docstring) and return the run."""
    dataset = as_dataset(train, test, classes) if train is not None else None
    if dataset is None and test is not None:
        raise UserError("distil: give `train` with `test` (or neither, for the config's dataset)")
    names = {"teacher": _name(teacher), "student": _name(student)}
    if dataset is not None:
        names["dataset"] = dataset.name
    cfg = validate(RunConfig, {**options, **names})
    given = Given(dataset=dataset)
    if isinstance(teacher, nn.Module) or isinstance(student, nn.Module):
        shape, k = (dataset.input_shape, dataset.num_classes) if dataset is not None else _shape_of(cfg)
        if isinstance(teacher, nn.Module):
            given.teacher = _wrap(teacher, shape, k).eval().requires_grad_(False)
        if isinstance(student, nn.Module):
            given.student = _wrap(student, shape, k)
    out = Path(out or f"runs/distil-{time.strftime('%Y%m%d-%H%M%S')}")
    run_to_dir(cfg, out, on_event=on_event, given=given)
    trained = given.student.body.eval() if given.student is not None else load_student(out)
    metrics = final_metrics(out)
    return Run(out, trained, metrics["student"], metrics["teacher"])


def as_dataset(train, test=None, classes: list[str] | None = None, name: str = "python") -> Dataset:
    """A `Dataset` held in memory from your own train (and test) data: `torch.utils.data.Dataset`s of
    (image, label) or (images, labels) tensors. Without `test`, the last tenth of `train` is the test split."""
    x, y = _tensors(train, "train")
    if test is None:
        keep = len(x) - max(1, len(x) // 10)
        x, y, tx, ty = x[:keep], y[:keep], x[keep:], y[keep:]
    else:
        tx, ty = _tensors(test, "test")
    if tx.shape[1:] != x.shape[1:]:
        raise UserError(f"test images are {tuple(tx.shape[1:])} but train images are {tuple(x.shape[1:])}")
    k = int(max(y.max(), ty.max())) + 1
    classes = list(classes) if classes is not None else [str(c) for c in getattr(train, "classes", range(k))]
    if len(classes) < k:
        raise UserError(f"labels go up to {k - 1} but {len(classes)} classes are named")
    mean, std = channel_stats(x)
    return Dataset(name, Split(x, y), Split(tx, ty), classes, mean, std, {"source": "python"})


def _tensors(data, split: str) -> tuple[Tensor, Tensor]:
    """(float images in [0, 1], int64 labels) from a Dataset of pairs or an (images, labels) pair."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(torch.is_tensor(t) for t in data):
        x, y = data
    elif isinstance(data, torch.utils.data.Dataset):
        if len(data) > MAX_IMAGES:
            raise UserError(f"{split}: {len(data)} images is more than distil holds in memory ({MAX_IMAGES}); "
                            "use an image folder (--dataset folder --stream on)")
        try:
            batches = list(DataLoader(data, batch_size=512, shuffle=False, num_workers=0))
            x = torch.cat([torch.as_tensor(b[0]) for b in batches])
            y = torch.cat([torch.as_tensor(b[1]) for b in batches])
        except (TypeError, RuntimeError, IndexError) as e:
            raise UserError(f"{split}: items must be (image tensor, integer label) pairs of one shape "
                            f"({str(e).splitlines()[0]})") from None
    else:
        raise UserError(f"{split}: give a torch.utils.data.Dataset of (image, label) or an (images, labels) "
                        f"pair of tensors, not {type(data).__name__}")
    if x.dtype == torch.uint8:
        x = x.float() / 255
    if x.dim() not in (3, 4) or not x.is_floating_point() or len(x) != len(y) or len(x) == 0:
        raise UserError(f"{split}: images must be N x C x H x W (or N x 1 x L) floats with one label each; got "
                        f"{x.dtype} {tuple(x.shape)} and {len(y)} labels")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1 or not torch.isfinite(x).all():
        raise UserError(f"{split}: images must be in [0, 1] (got {lo:.3g} to {hi:.3g}); give them unnormalised, "
                        "each model normalises for itself")
    y = y.long().flatten()
    if int(y.min()) < 0:
        raise UserError(f"{split}: labels must be 0, 1, ... (got {int(y.min())})")
    return x.float().contiguous(), y


def _name(model) -> str:
    """What the run's config records for a model: its reference, or `python:<class>` for an object."""
    return f"python:{type(model).__name__}" if isinstance(model, nn.Module) else str(model)


def _wrap(module: nn.Module, input_shape, num_classes: int) -> Classifier:
    """Your module inside the engine's `Classifier` (identity normalisation: it normalises for itself), so it
    carries `input_shape` and a `spec`; its weights are checked to give one logit per class."""
    shape = tuple(int(s) for s in input_shape)
    spec = dict(model=f"python:{type(module).__name__}", input_shape=list(shape), num_classes=num_classes,
                mean=[0.0] * shape[0], std=[1.0] * shape[0])
    wrapped = Classifier(module, shape, spec["mean"], spec["std"], spec)
    device = next(iter(module.parameters()), torch.empty(0)).device
    with torch.no_grad():
        try:
            out = wrapped.to(device).eval()(torch.rand(2, *shape, device=device))
        except Exception as e:  # noqa: BLE001 - whatever the user's forward raises, said in one line
            raise UserError(f"{type(module).__name__} cannot take a batch of {shape} inputs: "
                            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if tuple(out.shape) != (2, num_classes):
        raise UserError(f"{type(module).__name__} maps a batch of 2 to {tuple(out.shape)}; it must give "
                        f"(2, {num_classes}) logits, one per class")
    return wrapped.train()


def _shape_of(cfg: RunConfig) -> tuple[tuple[int, ...], int]:
    from .train.setup import dataset_for

    dataset = dataset_for(cfg)
    return dataset.input_shape, dataset.num_classes
