"""The two containers every data source returns: a `Split` (images + labels) and a `Dataset`."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class Split:
    """Images and integer labels held in memory.

    `x` is N x C x H x W (or N x 1 x L for 1D signals), either float in [0, 1] or uint8 (large
    torchvision sets, converted a batch at a time by `get`). `y` is int64 of length N.
    """

    x: Tensor
    y: Tensor

    def __post_init__(self):
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"{self.x.shape[0]} images but {self.y.shape[0]} labels")

    def __len__(self) -> int:
        return self.x.shape[0]

    def get(self, idx: Tensor | slice) -> tuple[Tensor, Tensor]:
        """Float images in [0, 1] and labels for the given indices."""
        x = self.x[idx]
        if x.dtype == torch.uint8:
            x = x.float().div_(255)
        return x, self.y[idx]

    def to(self, device) -> "Split":
        return Split(self.x.to(device), self.y.to(device))


@dataclass
class Dataset:
    """A named train/test pair plus everything a model needs to know about the inputs.

    `mean`/`std` are per-channel statistics of the training images; models normalise with them
    internally, so every tensor outside a model stays in [0, 1].
    """

    name: str
    train: Split
    test: Split
    classes: list[str]
    mean: list[float]
    std: list[float]
    info: dict = field(default_factory=dict)  # e.g. {"canvas": 40}

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def is_1d(self) -> bool:
        return len(self.input_shape) == 2
