"""A run directory's models, loaded for inspection: its config, data, teacher, student and HARD augmentor.

>>> run = load_run("runs/R")                 # eval mode, on the CPU
>>> run.teacher(x), run.student(x)           # logits on [0, 1] images of run.dataset.input_shape
>>> x_aug, params = run.augmentor(x)         # the learned augmentor (None without --hard)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..augment.hard import HardAugmentor, build_augmentor
from ..checkpoint import checkpoint_parts, load_into, read_model_spec
from ..config import RunConfig, validate
from ..data import Dataset
from ..errors import UserError
from .reader import CHECKPOINT, load_student, read_json


@dataclass
class LoadedRun:
    path: Path
    cfg: RunConfig
    dataset: Dataset
    teacher: nn.Module | None
    student: nn.Module
    augmentor: HardAugmentor | None


def run_config(run_dir: str | Path) -> RunConfig:
    """The validated config of a run directory (one clear line if it is not one)."""
    path = Path(run_dir)
    saved = read_json(path / "config.json") if path.is_dir() else None
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
        raise UserError(f"{path} is not a run directory (no readable config.json)")
    return validate(RunConfig, saved["config"])


def load_augmentor(run_dir: str | Path, device="cpu") -> HardAugmentor | None:
    """The run's learned augmentor in eval mode, or None if the run has none (yet)."""
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file() or "augmentor" not in checkpoint_parts(path):
        return None
    spec = dict(read_model_spec(path, "augmentor"))
    name, shape = spec.pop("augmentor", None), spec.pop("input_shape", None)
    if name is None or shape is None:
        raise UserError(f"{path} is not a HARD augmentor checkpoint")
    try:  # a spec from another version of the family (HARD-mix was a grid of patches), or a damaged one
        augmentor = build_augmentor(name, input_shape=shape, **spec)
    except (TypeError, ValueError) as e:
        raise UserError(f"{path}: its {name} augmentor cannot be rebuilt by this version ({e})") from None
    load_into(augmentor, path, "augmentor")
    return augmentor.to(device).eval()


def load_run(run_dir: str | Path, device="cpu", augmentor: bool = True) -> LoadedRun:
    """Config, data, teacher (None for pretrain runs), student and augmentor (unless `augmentor=False`:
    the VAE one loads a diffusers model) of a run with a checkpoint."""
    from ..teacher import check_fits, load_teacher  # the trainer's own rules
    from ..train.setup import dataset_for

    path = Path(run_dir)
    cfg = run_config(path)
    dataset = dataset_for(cfg)
    student = load_student(path, device=str(device))
    check_fits(student, dataset, f"student of {path}")
    teacher = load_teacher(cfg, dataset, torch.device(device)) if cfg.kind != "pretrain" and cfg.teacher else None
    return LoadedRun(path, cfg, dataset, teacher, student, load_augmentor(path, device) if augmentor else None)
