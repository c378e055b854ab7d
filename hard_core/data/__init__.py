"""Data sets as in-memory float [0, 1] tensors, and out-of-domain test suites built from them.

>>> ds = load_dataset("mnist5k", canvas=40)              # built in, offline: 4,000 / 1,000 digits
>>> suites = make_suites(ds, default_suites(ds), seed=0)   # {"shift": Split, "rotation": Split, ...}
"""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from .builtin import load_mnist1d, load_mnist5k
from .suites import default_suites, make_suites, parse_suites
from .types import Dataset, Split
from .vision import TORCHVISION, load_folder, load_torchvision

__all__ = ["Split", "Dataset", "load_dataset", "DATASETS", "make_suites", "parse_suites", "default_suites"]

DATASETS = ("mnist5k", "mnist1d", "mnist", "fashion-mnist", "cifar10", "cifar100", "svhn", "folder")


def load_dataset(name: str, *, canvas: int | None = None, root: str | Path | None = None,
                 image_size: int | None = None, download: bool = True, stream: str = "auto") -> Dataset:
    """Load a data set by name (see `DATASETS`).

    canvas: centre each image on a black canvas of this side (>= the native side).
    root: folder of torchvision sets (default "data") or the image folder for "folder"; ignored by the
    built-in sets. image_size: side images of "folder" are resized to (default 32).
    download: let torchvision fetch a missing set (one UserError naming the folder if that fails).
    stream: for "folder": "on" decodes images batch by batch while training, "off" reads them all now,
    "auto" streams above 2 GiB (`stream.STREAM_ABOVE`).

    >>> load_dataset("mnist5k", canvas=40).input_shape    # (1, 40, 40)
    """
    key = name.strip().lower()
    if key not in DATASETS:
        raise UserError(f"unknown dataset '{name}'; known: {', '.join(DATASETS)}")
    if image_size is not None and key != "folder":
        raise UserError(f"--image-size applies to dataset 'folder' only, not to '{name}'")
    if key == "mnist5k":
        return load_mnist5k(canvas)
    if key == "mnist1d":
        return load_mnist1d(canvas)
    if key in TORCHVISION:
        return load_torchvision(key, root, canvas, download)
    return load_folder(root, image_size, canvas, stream)
