"""The model registry and the wrapper every model shares (see the package docstring).

A registered name builds one architecture (`@register_model("mlp")`); a name that ends in ":" registers a
source of many (`@register_model("timm:")` builds `timm:<architecture>`), so models from other libraries
are built, checkpointed and rebuilt exactly like the built-in ones.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UserError, quote

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str):
    """Decorator: add a builder `fn(input_shape, num_classes, **args) -> nn.Module` under `name`; for a source
    (`name` ending in ":") the builder takes the architecture first: `fn(arch, input_shape, num_classes, **args)`."""

    def add(fn):
        _MODELS[name] = fn
        return fn

    return add


def list_models() -> list[str]:
    """Every registered name, the sources written as `timm:<architecture>`."""
    return sorted(n + "<architecture>" if n.endswith(":") else n for n in _MODELS)


@contextmanager
def eval_mode(*modules: nn.Module | None) -> Iterator[None]:
    """Modules in eval mode inside, every submodule's own train/eval flag restored after: the one way the
    engine runs a pass that only scores, measures or evaluates, so that no such pass changes a model's state
    (BatchNorm's running statistics) or depends on the batch it is given."""
    saved = [(m, m.training) for module in modules if module is not None for m in module.modules()]
    try:
        for module in modules:
            if module is not None:
                module.eval()
        yield
    finally:
        for m, flag in saved:
            m.training = flag


class Normalize(nn.Module):
    """(x - mean) / std per channel, as a buffer so it moves with the model and lands in checkpoints."""

    def __init__(self, mean, std, dims: int):
        super().__init__()
        shape = (1, -1) + (1,) * dims
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(shape))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(shape))

    def forward(self, x):
        return (x - self.mean) / self.std


def fit_input(x: Tensor, size: tuple[int, ...]) -> Tensor:
    """A batch in [0, 1] brought to a model's own input `size` (C, H, W): grey repeated to RGB or RGB averaged
    to grey, then resized bilinearly (antialiased when shrinking), as timm's distillation task feeds a teacher
    trained at another resolution."""
    channels, side = size[0], tuple(size[1:])
    if x.shape[1] != channels:
        x = x.expand(-1, channels, *x.shape[2:]) if x.shape[1] == 1 else x.mean(1, keepdim=True)
    if tuple(x.shape[2:]) != side:
        shrink = any(s < t for s, t in zip(side, x.shape[2:]))
        x = F.interpolate(x, size=side, mode="bilinear", align_corners=False, antialias=shrink)
    return x


def per_channel(values, channels: int) -> list[float]:
    """Per-channel statistics for `channels` channels: one value repeated, or three averaged to grey."""
    values = [float(v) for v in values]
    if len(values) == channels:
        return values
    if len(values) == 1:
        return values * channels
    if channels == 1:
        return [sum(values) / len(values)]
    raise UserError(f"{len(values)} normalisation values do not fit a model with {channels} input channels")


class Classifier(nn.Module):
    """Fit the input to the body's own size (when it has one), `Normalize`, then the body; carries
    `input_shape` (what it is fed: the data's shape) and the `spec` that rebuilds it. Returns logits, also
    for bodies that return an object with `.logits` (Hugging Face transformers)."""

    def __init__(self, body: nn.Module, input_shape, mean, std, spec: dict, size=None):
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.size = tuple(size) if size is not None and tuple(size) != self.input_shape else None
        self.spec = spec
        channels = (self.size or self.input_shape)[0]
        self.normalize = Normalize(per_channel(mean, channels), per_channel(std, channels),
                                   dims=len(input_shape) - 1)
        self.body = body

    def forward(self, x):
        if self.size is not None:
            x = fit_input(x, self.size)
        out = self.body(self.normalize(x))
        if isinstance(out, Tensor):
            return out
        return out.logits if hasattr(out, "logits") else out[0]


MAX_INPUT = 1 << 26  # numbers in one input (C x H x W): 64M, e.g. 3 x 4729 x 4729; a spec asking more is refused
MAX_CLASSES = 1 << 20


def check_dims(input_shape, num_classes, name: str) -> tuple[int, ...]:
    """A model's input shape and class count, checked before anything is allocated: a spec (from a file
    anyone can write) of [1, 60000, 60000] would ask for terabytes, a negative size for a RuntimeError."""
    shape = list(input_shape) if isinstance(input_shape, (list, tuple)) else None
    if not shape or len(shape) > 4 or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape):
        raise UserError(f"model '{name}': input_shape must be 1 to 4 positive sizes, e.g. [1, 28, 28] "
                        f"(got {quote(input_shape)})")
    if math.prod(shape) > MAX_INPUT:
        raise UserError(f"model '{name}': input_shape {shape} holds {math.prod(shape):,} numbers per image, more "
                        f"than {MAX_INPUT:,}")
    if not (isinstance(num_classes, int) and not isinstance(num_classes, bool) and 1 <= num_classes <= MAX_CLASSES):
        raise UserError(f"model '{name}': num_classes must be 1 to {MAX_CLASSES:,} (got {quote(num_classes)})")
    return tuple(shape)


def build_model(name: str, *, input_shape, num_classes: int, mean=None, std=None, size=None,
                args: dict | None = None) -> Classifier:
    """Build a registered model (or `source:architecture`); `mean`/`std` default to 0.5 per channel. `size`
    is the body's own input (C, H, W) when it differs from `input_shape`; `args` go to the builder. A body
    that declares a fixed input size (timm's `pretrained_cfg["fixed_input_size"]`) gets that size."""
    source, _, arch = name.partition(":")
    key = source + ":" if arch else name
    if key not in _MODELS:
        raise UserError(f"unknown model '{name}'; choose from: {', '.join(list_models())}")
    input_shape = check_dims(input_shape, num_classes, name)
    args = dict(args or {})
    try:
        body = _MODELS[key](arch, input_shape, num_classes, **args) if arch else \
            _MODELS[key](input_shape, num_classes, **args)
    except (TypeError, ValueError, RuntimeError) as e:
        raise UserError(f"model '{name}' cannot be built for inputs {input_shape} and {num_classes} classes: "
                        f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    size = tuple(int(s) for s in size) if size is not None else declared_size(body, input_shape)
    channels = input_shape[0]
    mean = list(mean) if mean is not None else [0.5] * channels
    std = list(std) if std is not None else [0.5] * channels
    spec = dict(model=name, input_shape=list(input_shape), num_classes=num_classes, mean=mean, std=std)
    if size is not None and size != input_shape:
        spec["size"] = list(size)
    if args:
        spec["args"] = args
    return Classifier(body, input_shape, mean, std, spec, size)


def declared_size(body: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The input size a body insists on (timm's fixed-size models, e.g. ViTs), with its channels; None if it
    takes the data as it comes."""
    cfg = getattr(body, "pretrained_cfg", None) or {}
    channels = _in_channels(body) or input_shape[0]
    if cfg.get("fixed_input_size") and cfg.get("input_size"):
        return (channels, *[int(s) for s in cfg["input_size"][1:]])
    return (channels, *input_shape[1:]) if channels != input_shape[0] else None


def _in_channels(body: nn.Module) -> int | None:
    """The channels of the body's first convolution or patch embedding (None for bodies without one)."""
    for m in body.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            return m.in_channels
        if isinstance(m, nn.Linear):
            return None
    return None
