"""The run's teacher, from whatever the user names, frozen and in eval mode.

    default                          the world's shipped teacher (assets/teacher-*.safetensors, with a card)
    runs/T                           a pretrain run directory (its checkpoint's student)
    teacher.safetensors              a hard_core model file (weights + the spec that rebuilds them)
    DIR                              a Hugging Face Hub folder: config.json + model.safetensors (timm, transformers)
    timm:NAME@FILE, torchvision:NAME@FILE   an architecture and a plain state dict in safetensors
    timm:NAME, torchvision:NAME, hf-hub:ID  the library's own pretrained weights (online only)

>>> teacher = load_teacher(RunConfig(teacher="default"), dataset_for(cfg), "cpu")
>>> describe_teacher(RunConfig(teacher="default"))
'the shipped CNN of the shift world (trained on digits moved by up to 6 px)'
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .assets import shipped_teacher
from .checkpoint import load_model
from .config import RunConfig
from .data import Dataset
from .errors import UserError
from .jsonfile import read_dict
from .models.external import describe, is_external, load_external
from .worlds import get_world

FORMS = "'default', a pretrain run directory, a .safetensors file, a Hub folder (config.json + " \
        "model.safetensors), timm:NAME@FILE or torchvision:NAME@FILE"


def teacher_path(ref: str, cfg: RunConfig) -> Path:
    """The hard_core model file behind `default`, a run directory or a file (not for models of other libraries)."""
    if ref == "default":
        return shipped_teacher(cfg.dataset, cfg.canvas, get_world(cfg.world).teacher)
    if ref.startswith("python:"):
        raise UserError(f"this run's teacher was a Python object ({ref[7:]}), handed to hard_core.distil; only "
                        "Python can hand it over again")
    path = Path(ref)
    if path.is_dir():
        path = path / "checkpoint.safetensors"
        if not path.is_file():
            raise UserError(f"--teacher {ref}: that directory holds no checkpoint.safetensors (a pretrain run that "
                            "has not finished?) and no config.json (a Hub folder)")
    elif not path.is_file():
        raise UserError(f"--teacher {ref}: not found (give {FORMS})")
    return path


def load_teacher(cfg: RunConfig, dataset: Dataset, device) -> nn.Module:
    """A frozen, eval-mode teacher whose inputs and classes fit the dataset."""
    ref = cfg.teacher
    if is_external(ref):
        teacher = load_external(ref, dataset.input_shape, dataset.num_classes).to(device).eval()
    else:
        path = teacher_path(ref, cfg)
        teacher = load_model(path, device)
        check_fits(teacher, dataset, f"teacher {path}")
    return frozen(teacher)


def frozen(teacher: nn.Module) -> nn.Module:
    """The teacher as the engine runs it: no weight gradients, and its image convolutions' weights in
    channels-last order, the layout oneDNN and cuDNN convolve fastest. The shipped CNN teacher on 96 digits of
    40 x 40, one CPU thread: forward 47 -> 21 ms, backward to the input (HARD's augmentor update) 98 -> 43 ms;
    outputs within 1e-5. Only 4-D weights change layout (torch's `Module.to(memory_format=...)`)."""
    return teacher.requires_grad_(False).to(memory_format=torch.channels_last)


def check_fits(model: nn.Module, dataset: Dataset, what: str) -> None:
    """A hard_core model must be fed the data's shape and predict its classes (one line if not)."""
    if tuple(model.input_shape) != dataset.input_shape:
        raise UserError(f"{what} expects inputs {tuple(model.input_shape)} but {dataset.name} gives "
                        f"{dataset.input_shape} (check --canvas)")
    if model.spec["num_classes"] != dataset.num_classes:
        raise UserError(f"{what} has {model.spec['num_classes']} classes but {dataset.name} has "
                        f"{dataset.num_classes}")


def describe_teacher(cfg: RunConfig, teacher: nn.Module | None = None) -> str:
    """The teacher in words, for a run's card: what it is and where it comes from."""
    ref = cfg.teacher
    if ref is None:
        return "no teacher"
    if ref == "default":
        world = get_world(cfg.world)
        card = _card(cfg)
        trained = f" (trained on {get_world(world.teacher_augment).nuisance})" if world.teacher_augment else ""
        arch = str(card.get("architecture", "cnn"))
        arch = arch.upper() if arch == "cnn" else arch
        return f"the shipped {arch} of the {world.name} world{trained}"
    if teacher is not None and ":" in teacher.spec.get("model", ""):
        return f"{describe(teacher)} from {ref}"
    if is_external(ref):
        return ref
    return f"{'run ' if Path(ref).is_dir() else ''}{ref}"


def _card(cfg: RunConfig) -> dict:
    try:
        return read_dict(teacher_path("default", cfg).with_suffix(".json")) or {}
    except UserError:
        return {}
