"""The model registry and the wrapper every model shares (see the package docstring)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..errors import UserError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str):
    """Decorator: add a builder `fn(input_shape, num_classes) -> nn.Module` under `name`."""

    def add(fn):
        _MODELS[name] = fn
        return fn

    return add


def list_models() -> list[str]:
    return sorted(_MODELS)


class Normalize(nn.Module):
    """(x - mean) / std per channel, as a buffer so it moves with the model and lands in checkpoints."""

    def __init__(self, mean, std, dims: int):
        super().__init__()
        shape = (1, -1) + (1,) * dims
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(shape))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(shape))

    def forward(self, x):
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """`Normalize` then a body; carries `input_shape` and the `spec` that rebuilds it."""

    def __init__(self, body: nn.Module, input_shape, mean, std, spec: dict):
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.spec = spec
        self.normalize = Normalize(mean, std, dims=len(input_shape) - 1)
        self.body = body

    def forward(self, x):
        return self.body(self.normalize(x))


def build_model(name: str, *, input_shape, num_classes: int, mean=None, std=None) -> Classifier:
    """Build a registered model; `mean`/`std` default to 0.5 per channel."""
    if name not in _MODELS:
        raise UserError(f"unknown model '{name}'; choose from: {', '.join(list_models())}")
    input_shape = tuple(int(s) for s in input_shape)
    channels = input_shape[0]
    mean = list(mean) if mean is not None else [0.5] * channels
    std = list(std) if std is not None else [0.5] * channels
    body = _MODELS[name](input_shape, num_classes)
    spec = dict(model=name, input_shape=list(input_shape), num_classes=num_classes, mean=mean, std=std)
    return Classifier(body, input_shape, mean, std, spec)

