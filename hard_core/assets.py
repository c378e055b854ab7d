"""The teachers (and, from issue 3, the small VAE) shipped in `assets/`, each with a JSON card.

A teacher for dataset D at canvas K is `assets/teacher-D-cK.safetensors` (1D datasets: `teacher-D`),
with `teacher-D-cK.json` beside it: dataset, canvas, architecture, test accuracy and the command
that made it.
"""
from __future__ import annotations

from pathlib import Path

from .errors import UserError

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def teacher_name(dataset: str, canvas: int | None) -> str:
    return f"teacher-{dataset}" + (f"-c{canvas}" if canvas else "")


def shipped_teacher(dataset: str, canvas: int | None) -> Path:
    """Path of the shipped teacher for this dataset and canvas, or a UserError saying what exists."""
    path = ASSETS / (teacher_name(dataset, canvas) + ".safetensors")
    if path.is_file():
        return path
    have = sorted(p.stem for p in ASSETS.glob("teacher-*.safetensors"))
    raise UserError(f"--teacher default: no shipped teacher for {dataset}"
                    + (f" at canvas {canvas}" if canvas else "")
                    + f" (shipped: {', '.join(have) or 'none'}); pretrain one and pass its run directory")
