"""`assets`: regenerate the shipped teachers and VAE in assets/ deterministically (CPU, fixed seed and threads).

Each teacher is the `cnn` model pretrained with random shifts, so it is shift-robust: the invariance
HARD should pass on to an MLP student. Next to each .safetensors file is a JSON card with the dataset,
canvas, architecture, accuracy per suite and the command that made it.

`vae-mnist5k` is the small diffusers AutoencoderKL behind the `vae` HARD augmentor, trained on shifted
mnist5k train digits (see `hard_core.vae`); its card gives the config and the test reconstruction error.
"""
from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
from pathlib import Path

from ..assets import ASSETS, teacher_name
from ..checkpoint import write_json
from ..config import RunConfig
from ..errors import UserError
from ..runs import RunReader, run_to_dir
from .printer import Printer

# (dataset, canvas, steps): enough steps for ~97% on mnist5k; mnist1d needs more (1D shapes are harder).
TEACHERS = [("mnist5k", 28, 1000), ("mnist5k", 40, 1000), ("mnist1d", None, 2000)]
COMMAND = "python -m hard_core assets"


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="regenerate the shipped teachers and VAE in assets/", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ASSETS), metavar="DIR", help="where to write [default: assets/]")
    p.add_argument("--only", metavar="NAME", help="regenerate one asset, e.g. teacher-mnist5k-c40 or vae-mnist5k")


def teacher_config(dataset: str, canvas: int | None, steps: int) -> RunConfig:
    return RunConfig(kind="pretrain", loss="ce", dataset=dataset, canvas=canvas, student="cnn", augment="shift",
                     steps=steps, lr=3e-3, eval_every=steps, checkpoint_every=steps, seed=0, device="cpu",
                     threads=2)


def run(args) -> int:
    from ..vae import VAE_NAME

    names = [teacher_name(d, c) for d, c, _ in TEACHERS] + [VAE_NAME]
    if args.only and args.only not in names:
        raise UserError(f"--only: unknown asset '{args.only}'; choose from: {', '.join(names)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for dataset, canvas, steps in TEACHERS:
        name = teacher_name(dataset, canvas)
        if args.only and args.only != name:
            continue
        cfg = teacher_config(dataset, canvas, steps)
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = Path(tmp) / name
            printer = Printer(run_dir)
            run_to_dir(cfg, run_dir, on_event=printer)
            acc = [e for e in RunReader(run_dir).poll() if e["kind"] == "eval"][-1]["acc"]
            shutil.copyfile(run_dir / "student.safetensors", out / f"{name}.safetensors")
        write_json(out / f"{name}.json", {
            "name": name, "kind": "teacher", "dataset": dataset, "canvas": canvas, "architecture": "cnn",
            "input_shape": [1, canvas, canvas] if canvas else [1, 40], "test_accuracy": acc["test"],
            "suite_accuracy": acc, "command": f"{COMMAND} --only {name}", "config": cfg.model_dump()})
        print(f"{name}: test {100 * acc['test']:.1f}%  ->  {out / name}.safetensors")
    if args.only in (None, VAE_NAME):
        make_vae(out)
    return 0


def make_vae(out: Path) -> None:
    """Train the VAE (`hard_core.vae.train_vae`, ~3 min on 2 cores) and write its weights and card."""
    import diffusers
    import torch

    from ..vae import VAE_NAME, VAETrainConfig, encode, save_vae, train_vae

    vae, card = train_vae(VAETrainConfig())
    path = out / f"{VAE_NAME}.safetensors"
    save_vae(vae, path, {
        "name": VAE_NAME, "kind": "vae", "dataset": "mnist5k", "canvas": 40,
        "architecture": "diffusers AutoencoderKL", "input_range": "[0, 1] images, fed as x * 2 - 1",
        "latent_shape": list(encode(vae, torch.zeros(1, 1, 40, 40)).shape[1:]), "test_mse_note":
        "per pixel in [0, 1] units, decode(posterior mean) clamped to [0, 1], mnist5k test digits at canvas "
        "40 and 28; training alternated canvas-40 batches (shift <= 6 px) and canvas-28 batches (<= 2 px)",
        **card, "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                             "python": platform.python_version()},
        "command": f"{COMMAND} --only {VAE_NAME}"})
    mse = card["test_mse"]
    print(f"{VAE_NAME}: test mse {mse['40']:.4f} (canvas 40), {mse['28']:.4f} (canvas 28), "
          f"{card['train_seconds']:.0f} s  ->  {path}")
