"""T. stddev (paper 2): a teacher-only score of how good an augmentation is for KD; lower is better.

As the paper's public code computes it: the student frozen (here: no student at all), the training images
go by in seeded shuffled passes (epochs), in batches; `chunk_batches` consecutive batches form a chunk
(paper: 10 batches of 64). Per chunk, average the teacher's softmax over every view of the chunk -> one
mean probability vector (K). Over `chunks` chunks (paper: 10 epochs' worth), take the standard deviation
per class (Bessel-corrected) and average over classes. With one batch per chunk this is the older
per-batch estimate.

Uncertainty: a percentile bootstrap over the chunks (resample the chunk means with replacement, recompute
the score) gives a 95% interval. Ranks count only clear differences: an augmentation's rank is 1 + the
number of others whose interval lies wholly below its own, so overlapping ones share a rank (a tie).

The blind spot: an augmentation that destroys the images (e.g. inverted digits for a teacher that never
saw them) can leave the teacher's mean prediction flat, i.e. score low. So each score comes with the
teacher's accuracy on the views the augmentation changed; below `COLLAPSE` of its clean accuracy the
teacher cannot read them, the score says nothing, and the augmentation gets no rank (listed last).

`views`: "augmented" (a chunk's mean over its augmented views) or "original+augmented" (over its
originals followed by their augmented views: what the student sees under KD+DA in paper 2).

>>> s = estimate(teacher, x_train, build_augment("shift", num_classes=10), y=y_train)  # a Score
>>> s.t_stddev, (s.low, s.high), s.accuracy, s.collapsed
>>> rank_augmentations(teacher, x_train, ["none", "shift", "mixup"], num_classes=10, y=y_train)[0]  # best
"""
from __future__ import annotations

from typing import Literal, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..augment import AUGMENTATIONS, Augment, build_augment
from ..models import eval_mode

VIEWS = ("augmented", "original+augmented")
Views = Literal["augmented", "original+augmented"]
PAPER_CHUNK_BATCHES, PAPER_BATCH, PAPER_EPOCHS = 10, 64, 10  # paper 2's code: chunks of 10 batches of 64, 10 epochs
# The teacher "cannot read" an augmentation's views when its accuracy on the views it changed falls below
# half its accuracy on the clean images (for the shipped shift teacher: inverted digits, 15% against 99.8%).
COLLAPSE = 0.5
BOOTSTRAP, LEVEL = 1000, 0.95  # bootstrap resamples of the chunks; the interval's coverage


class Score(NamedTuple):
    """One augmentation's T. stddev, its 95% bootstrap interval, and the teacher's accuracy (in [0, 1]) on
    the views the augmentation changed next to its clean accuracy. `rank` is set by `rank_augmentations`."""

    name: str
    t_stddev: float
    low: float
    high: float
    accuracy: float
    clean_accuracy: float
    chunks: int
    rank: int | None = None

    @property
    def collapsed(self) -> bool:
        """The teacher cannot read these views (accuracy below COLLAPSE x its clean accuracy)."""
        return self.accuracy < COLLAPSE * self.clean_accuracy

    @property
    def interval(self) -> str:
        return f"{self.low:.4f}-{self.high:.4f}"


def batch_indices(n: int, batches: int, batch_size: int, seed: int) -> Tensor:
    """batches x batch_size indices into n images from consecutive seeded permutations (CPU, int64): like a
    DataLoader with shuffle=True, drop_last=True, epoch after epoch (no image repeats within a pass)."""
    g = torch.Generator().manual_seed(seed)
    per_pass = n // batch_size
    passes = -(-batches // per_pass)
    idx = torch.cat([torch.randperm(n, generator=g)[: per_pass * batch_size] for _ in range(passes)])
    return idx[: batches * batch_size].view(batches, batch_size)


def chunks_for(n: int, chunk_batches: int = PAPER_CHUNK_BATCHES, batch_size: int = PAPER_BATCH,
               epochs: int = PAPER_EPOCHS) -> int:
    """How many chunks `epochs` passes over n images make (at least 2): the paper's default count."""
    return max(2, epochs * (n // min(batch_size, n)) // chunk_batches)


def spread(means: Tensor) -> Tensor:
    """T. stddev of chunk means (... x chunks x K): std over chunks (ddof 1) per class, mean over classes."""
    return means.std(-2, unbiased=True).mean(-1)


def bootstrap(means: Tensor, seed: int = 0, resamples: int = BOOTSTRAP, level: float = LEVEL) -> tuple[float, float]:
    """A percentile bootstrap interval of `spread(means)`, resampling the chunks (rows) with replacement.

    Resampling with repeats shrinks a spread (by about sqrt((n - 1) / n) for n chunks), so the resampled
    scores are first scaled to have the estimate as their median: a spread is a scale, so the bias is a factor.
    """
    means = means.double().cpu()
    g = torch.Generator().manual_seed(seed)
    rows = torch.randint(len(means), (resamples, len(means)), generator=g)
    scores = spread(means[rows])
    scores = scores * (spread(means) / scores.median().clamp_min(1e-30))
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    low, high = torch.quantile(scores, q).tolist()
    return low, high


def _labels(y: Tensor) -> Tensor:
    return y.argmax(1) if y.dim() == 2 else y


def estimate(teacher: nn.Module, x: Tensor, augment: Augment, *, chunks: int = 20,
             chunk_batches: int = PAPER_CHUNK_BATCHES, batch_size: int = PAPER_BATCH, temperature: float = 1.0,
             seed: int = 0, y: Tensor | None = None, student: nn.Module | None = None,
             views: Views = "augmented", clean: Tensor | None = None, name: str | None = None) -> Score:
    """T. stddev of `augment` for `teacher` on images `x` (float in [0, 1], on the teacher's device).

    `batch_size` is capped at len(x). `y`: N integer labels or N x K soft labels; without them the teacher's
    own clean predictions stand in (accuracy then means agreement with itself). Label-mixing augmentations
    mix them; a view counts as read when the teacher's top class is one of its label's classes (for a mix:
    either source). CutMixPick is scored with the `student` if given, else only its "teacher-entropy"
    criterion runs. `clean`: the teacher's softmax at `temperature` on all of x, if already computed
    (`rank_augmentations` shares it: the originals' outputs never change).
    """
    if views not in VIEWS:
        raise ValueError(f"views must be one of {VIEWS}, got {views!r}")
    if chunks < 2:
        raise ValueError(f"chunks must be >= 2 to take a standard deviation, got {chunks}")
    if chunk_batches < 1 or batch_size < 1 or len(x) < 1:
        raise ValueError(f"need chunk_batches >= 1, batch_size >= 1 and an image, got {chunk_batches}, "
                         f"{batch_size} and {len(x)}")
    idx = batch_indices(len(x), chunks * chunk_batches, min(batch_size, len(x)), seed)
    devices = [x.device.index or 0] if x.is_cuda else []
    sums, counts = None, torch.zeros(chunks, 1, dtype=torch.float64)
    read = changed = read_changed = correct = seen = 0
    with torch.random.fork_rng(devices=devices), torch.no_grad(), eval_mode(teacher, student):
        torch.manual_seed(seed)
        for i, rows in enumerate(idx):
            rows = rows.to(x.device)
            xb = x[rows]
            pc = clean[rows] if clean is not None else F.softmax(teacher(xb).float() / temperature, dim=1)
            yb = y[rows.to(y.device)].to(x.device) if y is not None else pc.argmax(1)
            xa, ya = augment(xb, yb, teacher=teacher, student=student)
            pa = F.softmax(teacher(xa).float() / temperature, dim=1)
            both = views == "original+augmented"
            total = pa.sum(0) + (pc.sum(0) if both else 0)
            if sums is None:
                sums = torch.zeros(chunks, len(total), dtype=torch.float64, device=x.device)
            sums[i // chunk_batches] += total.double()
            counts[i // chunk_batches] += len(pa) + (len(pc) if both else 0)
            hit = ya[torch.arange(len(ya)), pa.argmax(1)] > 0  # the top class is one the view's label holds
            # which views the augmentation changed (a mix's rows are new images, not the batch's rows)
            moved = torch.ones_like(hit) if augment.mixes_labels else (xa.flatten(1) != xb.flatten(1)).any(1)
            correct += int((pc.argmax(1) == _labels(yb)).sum())
            read, seen = read + int(hit.sum()), seen + len(hit)
            changed, read_changed = changed + int(moved.sum()), read_changed + int((hit & moved).sum())
    means = sums.cpu() / counts
    low, high = bootstrap(means, seed)
    accuracy = read_changed / changed if changed else read / seen  # nothing changed: the clean views
    return Score(name or augment.name, float(spread(means)), low, high, accuracy, correct / seen, chunks)


def t_stddev(teacher: nn.Module, x: Tensor, augment: Augment, **options) -> float:
    """Just the T. stddev of `estimate` (same options)."""
    return estimate(teacher, x, augment, **options).t_stddev


def ranked(scores: Sequence[Score]) -> list[Score]:
    """Readable augmentations by T. stddev with ranks that count only clear differences (rank = 1 + the
    number of readable others whose interval lies wholly below), then the collapsed ones, unranked."""
    ok = sorted((s for s in scores if not s.collapsed), key=lambda s: s.t_stddev)
    out = [s._replace(rank=1 + sum(o.high < s.low for o in ok)) for s in ok]
    return out + sorted((s._replace(rank=None) for s in scores if s.collapsed), key=lambda s: s.t_stddev)


def tied(scores: Sequence[Score], score: Score) -> list[str]:
    """The other ranked augmentations sharing `score`'s rank (a tie within the intervals)."""
    return [s.name for s in scores if s.rank is not None and s.rank == score.rank and s.name != score.name]


def rank_augmentations(teacher: nn.Module, x: Tensor, names: Sequence[str] | None = None, *, num_classes: int,
                       max_shift: int = 4, chunks: int = 20, chunk_batches: int = PAPER_CHUNK_BATCHES,
                       batch_size: int = PAPER_BATCH, seed: int = 0, y: Tensor | None = None,
                       temperature: float = 1.0, views: Views = "augmented") -> list[Score]:
    """Every augmentation's `Score`, `ranked` (best first, collapsed last); all augmentations by default.

    Image-only augmentations are skipped on 1D data; "cutmixpick" uses its teacher-entropy criterion (at
    T = 1). Every augmentation sees the same chunks of images (common random numbers).
    """
    with torch.no_grad(), eval_mode(teacher):
        clean = torch.cat([F.softmax(teacher(x[i:i + 512]).float() / temperature, dim=1)
                           for i in range(0, len(x), 512)])
    results = []
    for name in AUGMENTATIONS if names is None else names:
        crit = "teacher-entropy" if name == "cutmixpick" else "kl"
        aug = build_augment(name, num_classes=num_classes, max_shift=max_shift, criterion=crit)
        if aug.images_only and x.dim() == 3:
            continue
        results.append(estimate(teacher, x, aug, chunks=chunks, chunk_batches=chunk_batches, batch_size=batch_size,
                                temperature=temperature, seed=seed, y=y, views=views, clean=clean, name=name))
    return ranked(results)
