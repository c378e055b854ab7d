"""What the Invariance inspector shows, Streamlit-free: for one image (a test image or an upload) and a
finished distillation run, the teacher's and student's top-3 predictions, the disagreement map, and
both models' invariance maps over the run's probe grids. Nothing here trains.

>>> run = load(path)                              # LoadedRun: cfg, dataset, teacher, student
>>> x, note = read_upload(png_bytes, run.dataset)  # 1 x C x H x W in [0, 1], or UploadError
>>> predict(run, x)["student"][0]                 # ('7', 0.93)
"""
from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from hard_core.data import Dataset
from hard_core.data.stream import max_pixels
from hard_core.probes import InvarianceProbe, disagreement_map
from hard_core.probes.live import run_grids
from hard_core.runs import CHECKPOINT, LoadedRun, load_run

from .runs import finished

# The one upload limit a user is told (by the uploader's label). server.maxUploadSize (.streamlit/config.toml)
# is only the transport's, larger, and the page hides the widget's own statement of it, so a file between
# the two reaches `read_upload` and gets one line in words instead of the widget's red chip
MAX_UPLOAD_MB = 2
MAX_UPLOAD = MAX_UPLOAD_MB * 2**20  # bytes
FORMATS = ("PNG", "JPEG")
DIGIT_BOX = 20 / 28  # MNIST's rule: the digit fills a 20x20 box of its 28x28 image


class UploadError(ValueError):
    """An upload the inspector cannot use; the message is one line for the user."""


def inspectable_runs() -> dict[str, Path]:
    """Finished distillation runs with a teacher and a saved student: '<id> (student, dataset)' -> dir."""
    found = {}
    for row in finished():
        cfg = row["config"]
        if cfg.get("kind", "train") == "train" and cfg.get("teacher") and cfg.get("loss", "kd") == "kd" \
                and (row["path"] / CHECKPOINT).is_file():
            data = cfg.get("dataset", "?") + (f" · canvas {cfg['canvas']}" if cfg.get("canvas") else "")
            hard = f"HARD-{cfg['hard']}" if cfg.get("hard", "none") != "none" else f"KD + {cfg.get('augment', 'none')}"
            found[f"{row['id']} ({hard}, {cfg.get('student')} student, {data})"] = row["path"]
    return found


@lru_cache(maxsize=4)
def _load(path: str, stamp: float) -> LoadedRun:
    return load_run(path, augmentor=False)


def load(run_dir: Path) -> LoadedRun:
    """The run's config, data, teacher and student in eval mode (cached until the checkpoint changes)."""
    return _load(str(run_dir), (Path(run_dir) / CHECKPOINT).stat().st_mtime)


def test_image(run: LoadedRun, index: int) -> tuple[Tensor, int]:
    """Test image `index` of the run's data set as a 1-image batch, and its label."""
    x, y = run.dataset.test.get(torch.tensor([index]))
    return x, int(y[0])


def read_upload(data: bytes, dataset: Dataset) -> tuple[Tensor, str]:
    """A PNG or JPEG upload as a 1 x C x H x W batch in [0, 1] shaped like the data set's inputs, and a
    note on what was done to it. Greyscale data: a light background is inverted (digits are light on
    black), the ink is cropped and fitted into MNIST's 20/28 box, centred on the canvas. Colour data:
    resized to fit and centred. Raises UploadError with one line for anything else."""
    if dataset.is_1d:
        raise UploadError("this run works on 1D signals; uploads are for image runs (use a test signal)")
    if len(data) > MAX_UPLOAD:
        raise UploadError(f"the file is {len(data) / 2**20:.1f} MB; the limit is {MAX_UPLOAD_MB} MB")
    if not data:
        raise UploadError("the file is empty")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt, size = probe.format, probe.size
            probe.verify()  # checks the file's structure; the image must be opened again to use it
        if fmt not in FORMATS:
            raise UploadError(f"the file is {fmt}, not PNG or JPEG")
        if size[0] * size[1] > max_pixels():  # the engine's decompression-bomb cap ($HARD_MAX_PIXELS)
            raise UploadError(f"the image is {size[0]}×{size[1]} pixels; at most {max_pixels() / 1e6:.1f} megapixels")
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            img = _flatten_alpha(ImageOps.exif_transpose(img))  # phone photos: upright as they were shot
            img.thumbnail((512, 512))  # plenty for a 40x40 canvas, and quick to convert
            channels, h, w = dataset.input_shape
            img = img.convert("L" if channels == 1 else "RGB")
    except UploadError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise UploadError("the file is not a readable PNG or JPEG image") from None
    x = torch.from_numpy(np.asarray(img, dtype=np.float32).reshape(img.size[1], img.size[0], -1))
    x = x.permute(2, 0, 1) / 255  # C x h x w
    notes = []
    if channels == 1:
        if x.mean() > 0.5:
            x, notes = 1 - x, ["inverted (light background)"]
        x = _crop_ink(x)
        native = min(dataset.info.get("native", h), h, w)
        box = max(1, round(native * DIGIT_BOX)) if "native" in dataset.info else min(h, w)
    else:
        box = min(h, w)
    out = _fit_centre(x, box, h, w)
    notes.append(f"fitted into {box}×{box} and centred on the {h}×{w} canvas")
    return out.unsqueeze(0), "; ".join(notes)


def _flatten_alpha(img: Image.Image) -> Image.Image:
    """Transparent parts become white (then inverted like any light background)."""
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba)
    return img


def _crop_ink(x: Tensor, threshold: float = 0.2) -> Tensor:
    """The smallest box around pixels brighter than `threshold` (the whole image if there are none)."""
    mask = x.amax(0) > threshold
    if not mask.any():
        return x
    rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
    return x[:, int(rows[0]):int(rows[-1]) + 1, int(cols[0]):int(cols[-1]) + 1]


def _fit_centre(x: Tensor, box: int, h: int, w: int) -> Tensor:
    """Resize C x h' x w' to fit a box x box square (aspect kept, antialiased), centred on a black h x w."""
    ch, cw = x.shape[1:]
    s = box / max(ch, cw)
    nh, nw = max(1, round(ch * s)), max(1, round(cw * s))
    small = F.interpolate(x.unsqueeze(0), size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)[0]
    out = torch.zeros(x.shape[0], h, w)
    top, left = (h - nh) // 2, (w - nw) // 2
    out[:, top:top + nh, left:left + nw] = small.clamp(0, 1)
    return out


@torch.no_grad()
def predict(run: LoadedRun, x: Tensor, k: int = 3) -> dict[str, list[tuple[str, float]]]:
    """Top-k (class name, probability) of the teacher and the student on a 1-image batch (softmax, T = 1)."""
    out = {}
    for name, model in (("teacher", run.teacher), ("student", run.student)):
        p = F.softmax(model(x).float(), dim=1)[0]
        top = p.topk(min(k, len(p)))
        out[name] = [(run.dataset.classes[int(i)], float(v)) for v, i in zip(top.values, top.indices)]
    return out


def disagreement(run: LoadedRun, x: Tensor) -> Tensor:
    """|∂ KL(teacher ‖ student) / ∂x| at the run's temperature: 1 x H x W (1 x L for 1D signals)."""
    return disagreement_map(run.teacher, run.student, x, run.cfg.temperature)


def invariance(run: LoadedRun, x: Tensor, label: int) -> dict[str, Tensor]:
    """Both models' invariance maps for this one image over the grids the run was probed on (its world's
    own curve first, then shift; `run_grids`), as snapshot keys ("invariance.<grid>.<model>.acc|kl",
    "invariance.<grid>.axis.<name>"). `label` is what "correct" means for the accuracy cells (for an
    upload: the teacher's call on the clean image)."""
    out = {}
    for grid_name, grid in run_grids(run.dataset, run.cfg.world, run.cfg.teacher).items():
        probe = InvarianceProbe(x, torch.tensor([label]), grid, images=1, temperature=1.0)
        for model_name, model in (("teacher", run.teacher), ("student", run.student)):
            maps = probe(model)
            out[f"invariance.{grid_name}.{model_name}.acc"] = maps["acc"]
            out[f"invariance.{grid_name}.{model_name}.kl"] = maps["kl"]
        for axis_name, axis in zip(grid.names, grid.axes):
            out[f"invariance.{grid_name}.axis.{axis_name}"] = axis.float()
    return out
