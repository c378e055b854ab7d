"""Torchvision data sets (mnist, fashion-mnist, cifar10, cifar100, svhn) and image folders.

>>> ds = load_torchvision("cifar10", root="data")    # downloads once when online; x stays uint8
>>> ds = load_folder("my_images", image_size=32)     # one sub-folder per class, PNG / JPEG

Images are kept as uint8 N x C x H x W (`Split.get` converts a batch at a time). An image folder larger
than `stream.STREAM_ABOVE` (or any, with stream="on") is not read up front: its splits are `FileSplit`s
that a DataLoader decodes batch by batch while training. Torchvision's CIFAR reader unpickles, but only
files whose MD5 matches the official archive (torchvision checks that first); image folders are decoded
with torchvision.io and nothing user-supplied is ever unpickled.
"""
from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import UserError
from .builtin import channel_stats, pad_to_canvas
from .stream import FileSplit, sample, should_stream
from .types import Dataset, Split

# name -> (torchvision class, folder under root that holds the files, native side)
TORCHVISION = {
    "mnist": ("MNIST", "MNIST/raw", 28),
    "fashion-mnist": ("FashionMNIST", "FashionMNIST/raw", 28),
    "cifar10": ("CIFAR10", "cifar-10-batches-py", 32),
    "cifar100": ("CIFAR100", "cifar-100-python", 32),
    "svhn": ("SVHN", ".", 32),  # train_32x32.mat and test_32x32.mat directly in root
}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
FOLDER_TEST_FRACTION = 0.2  # without train/ and test/: the last 20% of each class (sorted names) is test
STATS_IMAGES = 2000  # a streamed folder's channel mean / std come from this many evenly spaced images


def _images(ds) -> tuple[Tensor, Tensor]:
    """uint8 N x C x H x W images and int64 labels straight from a torchvision data set's arrays."""
    x = torch.as_tensor(np.asarray(ds.data))
    if x.ndim == 3:  # MNIST-like: N x H x W
        x = x.unsqueeze(1)
    elif x.shape[-1] == 3:  # CIFAR: N x H x W x 3; SVHN is already N x 3 x H x W
        x = x.permute(0, 3, 1, 2)
    y = ds.labels if hasattr(ds, "labels") else ds.targets
    return x.contiguous(), torch.as_tensor(np.asarray(y), dtype=torch.int64)


def load_torchvision(name: str, root: str | Path | None = None, canvas: int | None = None,
                     download: bool = True) -> Dataset:
    """One of `TORCHVISION` under `root` (default "data"); a missing, undownloadable set is one UserError."""
    import torchvision.datasets as tvd
    from urllib.error import URLError

    cls_name, sub, native = TORCHVISION[name]
    root = Path("data" if root is None else root)
    where = root / sub if sub != "." else root
    cls = getattr(tvd, cls_name)
    try:
        if name == "svhn":
            parts = [cls(str(root), split=s, download=download) for s in ("train", "test")]
        else:
            parts = [cls(str(root), train=t, download=download) for t in (True, False)]
    except (URLError, OSError, RuntimeError, tarfile.TarError, EOFError) as e:  # offline, partial, corrupt
        cause = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        files = " (train_32x32.mat, test_32x32.mat)" if name == "svhn" else ""
        how, fix = (("could not be downloaded (offline?)", "run once with internet") if download
                    else ("download is off", "allow the download"))
        raise UserError(f"{name} is not in {where}{files} and {how}: copy the dataset there or {fix} "
                        f"[{type(e).__name__}: {cause}]") from None
    (xtr, ytr), (xte, yte) = (_images(p) for p in parts)
    xtr, xte = pad_to_canvas(xtr, canvas, name), pad_to_canvas(xte, canvas, name)
    classes = [str(c) for c in getattr(parts[0], "classes", None) or range(int(ytr.max()) + 1)]
    mean, std = channel_stats(xtr)
    info = {"canvas": canvas or native, "native": native, "source": f"torchvision.datasets.{cls_name} in {where}"}
    return Dataset(name, Split(xtr, ytr), Split(xte, yte), classes, mean, std, info)


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    """Sorted image files of a class folder; hidden files are skipped, anything else is an error."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    for p in files:
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            raise UserError(f"{p} is not a PNG or JPEG image (image folders hold only .png/.jpg/.jpeg files)")
    if not files:
        raise UserError(f"class folder {folder} holds no images")
    return files


def _files(files: list[tuple[Path, int]], size: int, canvas: int | None) -> FileSplit:
    return FileSplit([p for p, _ in files], torch.tensor([c for _, c in files], dtype=torch.int64), size, canvas)


def load_folder(root: str | Path | None, image_size: int | None = None, canvas: int | None = None,
                stream: str = "auto") -> Dataset:
    """An image folder: root/<class>/*.png, or root/train/<class>/ and root/test/<class>/.

    Without train/ and test/, each class is split deterministically: its sorted file names, the last
    20% (at least one) test, the rest train. Images are converted to RGB and resized to `image_size`
    (default 32) squared, by torchvision. `stream`: "on" reads images only when a batch needs them, "off"
    reads them all now, "auto" streams folders whose images would take more than 2 GiB.

    >>> load_folder("pets", image_size=64).classes    # ['cat', 'dog']
    """
    if root is None:
        raise UserError("dataset 'folder' needs --data-root: a folder with one sub-folder per class")
    root, size = Path(root), 32 if image_size is None else image_size  # 32: CIFAR-sized by default
    if not root.is_dir():
        raise UserError(f"image folder {root} does not exist")
    if (root / "train").is_dir() and (root / "test").is_dir():
        classes = [d.name for d in _class_dirs(root / "train")]
        index = {c: i for i, c in enumerate(classes)}
        train = [(f, index[d.name]) for d in _class_dirs(root / "train") for f in _image_files(d)]
        test = []
        for d in _class_dirs(root / "test"):
            if d.name not in index:
                raise UserError(f"{d}: class '{d.name}' is in test/ but not in {root / 'train'}")
            test += [(f, index[d.name]) for f in _image_files(d)]
        rule = "train/ and test/ sub-folders"
    else:
        classes, train, test = [d.name for d in _class_dirs(root)], [], []
        for i, d in enumerate(_class_dirs(root)):
            files = _image_files(d)
            if len(files) < 2:
                raise UserError(f"class folder {d} needs at least 2 images to split into train and test")
            n_test = max(1, round(FOLDER_TEST_FRACTION * len(files)))
            train += [(f, i) for f in files[:-n_test]]
            test += [(f, i) for f in files[-n_test:]]
        rule = "per class, sorted file names: last 20% test"
    if not classes:
        raise UserError(f"image folder {root} has no class sub-folders (expected {root}/<class>/<image>.png)")
    if not test:
        raise UserError(f"image folder {root}: {root / 'test'} holds no class folders")
    if canvas is not None and canvas < size:
        raise UserError(f"folder: canvas {canvas} is smaller than the {size}x{size} images (use {size} or more)")
    tr, te = _files(train, size, canvas), _files(test, size, canvas)
    streamed = should_stream(stream, len(tr), tuple(tr.x.shape[1:]))
    if not streamed:  # decoded exactly as a stream would, then held in memory
        tr, te = sample(tr, len(tr)), sample(te, len(te))
    mean, std = channel_stats(sample(tr, STATS_IMAGES).x if streamed else tr.x)
    info = {"source": str(root), "image_size": size, "split": rule, "streamed": streamed}
    if canvas is not None:
        info.update(canvas=canvas, native=size)
    return Dataset("folder", tr, te, classes, mean, std, info)
