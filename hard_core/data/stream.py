"""Each step's batch: from memory, or streamed from disk through a `torch.utils.data.DataLoader`.

    batches = step_batches(split, batch_size=128, seed=0, start=0, steps=400, device=device)
    x, y = next(batches)          # step 1: float [0, 1] images and labels, on `device`

The global batch of step s comes from a seeded permutation per epoch (`EpochSampler`), so any step's batch
is recomputed on resume without replaying the ones before it. Under torchrun each rank takes its
contiguous part of it (`shard`): disjoint, and a function of (seed, step, rank) only. The same
`StepSampler` drives the DataLoader, so a streamed run sees exactly the images an in-memory run sees.

A `FileSplit` is a list of image files and labels, decoded and resized with torchvision when read (in the
DataLoader's workers while training): only the batches in flight are in memory. Augmentation stays on the
training device, in the loop.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import re
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Sampler, TensorDataset

from ..errors import UserError, env_int
from .builtin import pad_to_canvas
from .types import Split

STREAM_ABOVE = 2 << 30  # bytes of uint8 training images above which `--stream auto` streams


class EpochSampler:
    """Global batch indices for step s (1-based) from a seeded permutation per epoch."""

    def __init__(self, n: int, batch_size: int, seed: int, device=None):
        self.n, self.b, self.seed, self.device = n, batch_size, seed, device
        self.per_epoch = max(n // batch_size, 1)
        self._epoch, self._perm = -1, None

    def indices(self, step: int) -> Tensor:
        epoch, i = divmod(step - 1, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g).to(self.device)
        return self._perm[i * self.b:(i + 1) * self.b]


def shard(indices: Tensor, rank: int = 0, world: int = 1) -> Tensor:
    """Rank `rank`'s contiguous part of a global batch (all of it in a world of one)."""
    return indices if world == 1 else indices.tensor_split(world)[rank]


class StepSampler(Sampler[list[int]]):
    """A DataLoader batch sampler: for steps start + 1 .. steps, this rank's part of each global batch
    (the deterministic equivalent of a DistributedSampler, step-addressed so a resume starts anywhere)."""

    def __init__(self, n: int, batch_size: int, seed: int, start: int, steps: int, rank: int = 0, world: int = 1):
        self.epochs = EpochSampler(n, batch_size, seed)
        self.start, self.steps, self.rank, self.world = start, steps, rank, world

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start + 1, self.steps + 1):
            yield shard(self.epochs.indices(step), self.rank, self.world).tolist()

    def __len__(self) -> int:
        return self.steps - self.start


@dataclass
class FileSplit(torch.utils.data.Dataset):
    """Image files and labels, read on demand: RGB, resized to `size` squared, centred on `canvas`.

    Behaves as a `Split` where the loop needs one: `len`, `y`, `get(idx)` (decodes those images, for
    evaluation batches) and `x`, a meta tensor that holds the images' shape and dtype but no memory.
    """

    files: list[Path]
    y: Tensor
    size: int
    canvas: int | None = None
    device: torch.device | None = field(default=None, compare=False)

    def __post_init__(self):
        side = self.canvas or self.size
        self.x = torch.empty(len(self.files), 3, side, side, dtype=torch.uint8, device="meta")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return read_image(self.files[i], self.size, self.canvas), self.y[i]

    def get(self, idx: Tensor | slice) -> tuple[Tensor, Tensor]:
        rows = range(len(self))[idx] if isinstance(idx, slice) else idx.tolist()
        x = torch.stack([read_image(self.files[i], self.size, self.canvas) for i in rows])
        return x.to(self.device).float().div_(255), self.y[list(rows)].to(self.device)

    def to(self, device) -> "FileSplit":
        return FileSplit(self.files, self.y, self.size, self.canvas, torch.device(device))

    def subset(self, keep: Tensor) -> "FileSplit":
        return FileSplit([self.files[i] for i in keep.tolist()], self.y[keep], self.size, self.canvas, self.device)


MAX_PIXELS = 1 << 25  # per image file unless $HARD_MAX_PIXELS says otherwise (33.5M: 5792 x 5792, 100 MB decoded)


def max_pixels() -> int:
    """$HARD_MAX_PIXELS (read at each use, so a test or a lab can set it), else MAX_PIXELS."""
    return env_int("HARD_MAX_PIXELS", MAX_PIXELS, minimum=1)


def check_pixels(path: Path) -> None:
    """Refuse an image whose header announces more than `max_pixels()`, before anything is decoded: a 48 KB PNG
    can hold 20000 x 20000 pixels (1.2 GB decoded). PIL reads only the header here."""
    from PIL import Image, UnidentifiedImageError

    limit = max_pixels()
    try:
        with Image.open(path) as im:
            size = "{}x{} pixels".format(*im.size) if im.size[0] * im.size[1] > limit else None
    except Image.DecompressionBombError:  # PIL's own cap (2 x Image.MAX_IMAGE_PIXELS), above ours
        size = f"over {2 * (Image.MAX_IMAGE_PIXELS or 0):,} pixels"
    except (UnidentifiedImageError, OSError, ValueError):
        return  # not an image PIL knows: the decoder below says what is wrong with it
    if size is not None:
        raise UserError(f"image {path} is {size}, more than HARD_MAX_PIXELS={limit:,}: shrink it, or raise "
                        "the limit in the environment")


def read_image(path: Path, size: int, canvas: int | None = None) -> Tensor:
    """uint8 3 x size x size (centred on a black canvas x canvas), decoded and resized by torchvision."""
    from torchvision.io import ImageReadMode, decode_image
    from torchvision.transforms.v2 import functional as TF

    check_pixels(path)
    try:
        img = decode_image(str(path), mode=ImageReadMode.RGB)
    except (RuntimeError, OSError, ValueError) as e:
        why = re.sub(r"^\w+, \S+:\d+, ", "", str(e).splitlines()[0]) if str(e) else type(e).__name__  # C++ place
        raise UserError(f"cannot read image {path} as a JPEG, PNG, GIF or WebP file: {why}") from None
    if img.ndim == 4:  # an animated GIF (whatever its file name says): its first frame
        img = img[0]
    if img.dtype != torch.uint8:  # a 16-bit PNG: to the 8 bits every other image has, so a batch stacks
        img = TF.to_dtype(img, torch.uint8, scale=True)
    return pad_to_canvas(TF.resize(img, [size, size], antialias=True), canvas, "folder")


def sample(split: Split | FileSplit, n: int) -> Split:
    """Up to `n` evenly spaced images of `split`, in memory (a streamed set's probe and suite images)."""
    if isinstance(split, Split) and len(split) <= n:
        return split
    idx = torch.linspace(0, len(split) - 1, min(n, len(split))).round().long().unique()
    if isinstance(split, Split):
        return Split(split.x[idx.to(split.x.device)], split.y[idx.to(split.y.device)])
    x = torch.stack([split[i][0] for i in idx.tolist()])
    return Split(x, split.y[idx])


def step_batches(split: Split | FileSplit, batch_size: int, seed: int, start: int, steps: int, device,
                 rank: int = 0, world: int = 1, stream: bool = False, workers: int = 0) -> Iterator[tuple[Tensor, Tensor]]:
    """Float [0, 1] images and labels on `device` for steps start + 1 .. steps: this rank's part of each
    global batch. `stream` (always for a FileSplit) feeds them through a DataLoader with `workers`
    processes and pinned memory on CUDA; otherwise `split` is indexed where it lies (on `device`)."""
    if not (stream or isinstance(split, FileSplit)):
        epochs = EpochSampler(len(split), batch_size, seed, split.x.device)
        for step in range(start + 1, steps + 1):
            yield split.get(shard(epochs.indices(step), rank, world))
        return
    data = split if isinstance(split, FileSplit) else TensorDataset(split.x.cpu(), split.y.cpu())
    cuda = torch.device(device).type == "cuda"
    loader = DataLoader(data, batch_sampler=StepSampler(len(split), batch_size, seed, start, steps, rank, world),
                        num_workers=workers, pin_memory=cuda, persistent_workers=False,
                        prefetch_factor=4 if workers else None)
    for x, y in loader:
        x = x.to(device, non_blocking=cuda)
        yield (x.float().div_(255) if x.dtype == torch.uint8 else x), y.to(device, non_blocking=cuda)


def in_order(split: Split | FileSplit, batch_size: int, workers: int = 2) -> Iterator[tuple[Tensor, Tensor]]:
    """Every image of `split` in order, a batch at a time, where the split lives (evaluation). A FileSplit
    is decoded by a DataLoader's `workers` processes."""
    if not isinstance(split, FileSplit):
        for i in range(0, len(split), batch_size):
            yield split.get(slice(i, i + batch_size))
        return
    for x, y in DataLoader(split, batch_size=batch_size, num_workers=workers):
        yield x.to(split.device).float().div_(255), y.to(split.device)


def should_stream(mode: str, images: int, shape: tuple[int, ...]) -> bool:
    """`--stream`: on, off, or auto (stream when the uint8 training images would pass STREAM_ABOVE)."""
    if mode in ("on", "off"):
        return mode == "on"
    size = images
    for d in shape:
        size *= d
    return size > STREAM_ABOVE
