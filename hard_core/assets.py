"""The teachers and VAEs shipped in `assets/`, each with a JSON card.

A teacher for dataset D at canvas K is `assets/teacher-D-cK.safetensors` (1D datasets: `teacher-D`);
a world with a teacher of its own adds its name (`teacher-mnist5k-c40-rotation`). Beside each is a
`.json` card: dataset, canvas, world, architecture, accuracy per suite and the command that made it.
`ASSETS` is the repository's assets/ in a checkout, and its installed copy (hard_core/_assets) in a wheel.
`assets/cache/` holds what the engine computes once and ships precomputed (the teachers' references,
see `hard_core.train.reference`); `cache_dir()` is where it keeps what it computes for anything else.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError


def _assets_folder() -> Path:
    """The installed package's copy (`pip install .` ships the repository's assets/ as hard_core/_assets),
    else the checkout's assets/ (a clone, an editable install)."""
    package = Path(__file__).resolve().parent
    installed = package / "_assets"
    return installed if installed.is_dir() else package.parent / "assets"


ASSETS = _assets_folder()
VAE_NAME = "vae-mnist5k"  # the shipped VAE behind `--hard vae` (hard_core.vae loads it)
VAE_EDIT = 3.0  # HARD-vae's default bound on each latent element, in latent stds of its VAE


def latent_scale(vae_config) -> float:
    """Typical std of one latent element of a diffusers AutoencoderKL with this config (a mapping, e.g.
    `vae.config` or a shipped VAE's card): the mean of `latents_std` if it has it, else 1 / `scaling_factor`
    (diffusers' definition of that factor). Here, not in `hard_core.vae`, so the lab reads it without diffusers."""
    std = vae_config.get("latents_std")
    return float(sum(std) / len(std)) if std else 1.0 / float(vae_config["scaling_factor"])


def vae_edit_bound(vae_config) -> float:
    """HARD-vae's default eps for this VAE: `VAE_EDIT` latent stds."""
    return VAE_EDIT * latent_scale(vae_config)


def teacher_name(dataset: str, canvas: int | None, world: str = "") -> str:
    """Asset name of a shipped teacher; `world` is the world's teacher suffix ("" for the plain one)."""
    return f"teacher-{dataset}" + (f"-c{canvas}" if canvas else "") + (f"-{world}" if world else "")


def shipped_teacher(dataset: str, canvas: int | None, world: str = "") -> Path:
    """Path of the shipped teacher for this dataset, canvas and world suffix, or a UserError saying what exists."""
    path = ASSETS / (teacher_name(dataset, canvas, world) + ".safetensors")
    if path.is_file():
        return path
    have = sorted(p.stem for p in ASSETS.glob("teacher-*.safetensors"))
    raise UserError(f"--teacher default: no shipped teacher for {dataset}"
                    + (f" at canvas {canvas}" if canvas else "") + (f" in the {world} world" if world else "")
                    + f" (shipped: {', '.join(have) or 'none'}); pretrain one and pass its run directory")


def cache_dir() -> Path:
    """Where the engine keeps what it computed once and reuses (e.g. a teacher's reference): $HARD_CACHE,
    else $XDG_CACHE_HOME/hard_core, else ~/.cache/hard_core. Created by whoever writes to it."""
    if os.environ.get("HARD_CACHE"):
        return Path(os.environ["HARD_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hard_core"


def kept(name: str) -> list[Path]:
    """Where a computed file `name` is looked for, in order: shipped (`assets/cache/`, so a fresh clone
    has it at once), then `cache_dir()`, where it is written when computed."""
    return [ASSETS / "cache" / name, cache_dir() / name]
