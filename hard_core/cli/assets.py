"""`assets`: regenerate the shipped teachers and VAE in assets/ deterministically (CPU, fixed seed and threads).

Each teacher is the `cnn` model pretrained with its world's nuisance (random shifts for the plain
teachers; rotations, polarity, stroke thickness for the worlds' own, see `hard_core.worlds`), so it
holds the invariance HARD should pass on to an MLP student. Next to each .safetensors file is a JSON
card with the dataset, canvas, world, architecture, accuracy per suite and the command that made it.

`vae-mnist5k` is the small diffusers AutoencoderKL behind the `vae` HARD augmentor, trained on shifted
mnist5k train digits (see `hard_core.vae`); `vae-mnist5k-<world>` is the same trained on that world's
teacher distribution. Their cards give the config and the test reconstruction error.

`references` writes each shipped teacher's reference for its world's default suites and probe set to
assets/cache/ (see `hard_core.train.reference`): a fresh clone's first run of the lab evaluates
its teacher in milliseconds instead of ~13 s of CPU. Regenerate them after a teacher changes.
"""
from __future__ import annotations

import argparse
import platform
import shutil
from pathlib import Path

from ..assets import ASSETS, VAE_NAME, teacher_name
from ..checkpoint import save_model, write_json
from ..config import RunConfig
from ..errors import UserError
from ..runs import RunReader, Stopped, load_student, run_to_dir
from ..runs.cells import hold_folder
from ..worlds import WORLDS
from .printer import Printer

# (dataset, canvas, world, steps): enough steps for ~97% on mnist5k; mnist1d needs more (1D is harder).
TEACHERS = [("mnist5k", 28, "shift", 1000), ("mnist5k", 40, "shift", 1000), ("mnist1d", None, "shift", 2000)] + [
    ("mnist5k", 40, w.name, 1000) for w in WORLDS.values() if w.teacher]
COMMAND = "python -m hard_core assets"
WORK = ".training"  # <out>/.training/: the teachers' runs while they train, removed after (and at the next start)


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="regenerate the shipped teachers and VAE in assets/", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ASSETS), metavar="DIR", help="where to write [default: assets/]")
    p.add_argument("--only", metavar="NAME", help="regenerate one asset, e.g. teacher-mnist5k-c40 or vae-mnist5k")


def teacher_config(dataset: str, canvas: int | None, world: str, steps: int) -> RunConfig:
    return RunConfig(kind="pretrain", loss="ce", world=world, dataset=dataset, canvas=canvas, student="cnn",
                     augment=WORLDS[world].teacher_augment, steps=steps, lr=3e-3, eval_every=steps,
                     checkpoint_every=steps, seed=0, device="cpu", threads=2)


def vae_names() -> dict[str, str]:
    """Shipped VAE name -> the augmentation its training digits get beyond shifts ("" for the plain one)."""
    return {VAE_NAME: "", **{w.vae: w.teacher_augment for w in WORLDS.values() if w.vae}}


def run(args) -> int:
    vaes = vae_names()
    names = [teacher_name(d, c, WORLDS[w].teacher) for d, c, w, _ in TEACHERS] + list(vaes) + ["references"]
    if args.only and args.only not in names:
        raise UserError(f"--only: unknown asset '{args.only}'; choose from: {', '.join(names)}")
    out = Path(args.out)
    with hold_folder(out):  # one `assets` per folder at a time
        work = out / WORK
        shutil.rmtree(work, ignore_errors=True)  # what a killed `assets` left
        try:
            make_assets(args.only, out, work, vaes)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def make_assets(only: str | None, out: Path, work: Path, vaes: dict[str, str]) -> None:
    for dataset, canvas, world, steps in TEACHERS:
        name = teacher_name(dataset, canvas, WORLDS[world].teacher)
        if only and only != name:
            continue
        cfg, run_dir = teacher_config(dataset, canvas, world, steps), work / name
        try:
            run_to_dir(cfg, run_dir, on_event=Printer(run_dir))
        except Stopped:  # its checkpoint is in the work folder, deleted on the way out: say so
            raise Stopped(f"stopped by SIGTERM while training {name}; nothing of it was kept: run "
                          f"`{COMMAND} --only {name}` again") from None
        acc = [e for e in RunReader(run_dir).poll() if e["kind"] == "eval"][-1]["acc"]
        save_model(out / f"{name}.safetensors", load_student(run_dir))
        write_json(out / f"{name}.json", {
            "name": name, "kind": "teacher", "dataset": dataset, "canvas": canvas, "world": world,
            "nuisance": WORLDS[world].nuisance, "architecture": "cnn",
            "input_shape": [1, canvas, canvas] if canvas else [1, 40], "test_accuracy": acc["test"],
            "suite_accuracy": acc, "command": f"{COMMAND} --only {name}", "config": cfg.model_dump()})
        print(f"{name}: test {100 * acc['test']:.1f}%  ->  {out / name}.safetensors")
    for name, augment in vaes.items():
        if only in (None, name):
            make_vae(out, name, augment)
    if only in (None, "references"):
        make_references(out / "cache")


def make_references(folder: Path) -> None:
    """The teacher's reference of every world's default run with the shipped teacher (~15 s each)."""
    from ..train.reference import first_evaluation
    from ..train.setup import build_session

    for dataset, canvas in sorted({(d, c) for d, c, _, _ in TEACHERS}, key=str):
        for world in WORLDS.values() if dataset == "mnist5k" and canvas == 40 else [WORLDS["shift"]]:
            cfg = RunConfig(dataset=dataset, canvas=canvas, world=world.name, teacher="default", device="cpu")
            acc = first_evaluation(build_session(cfg), keep=folder).accuracy
            print(f"reference of {teacher_name(dataset, canvas, world.teacher)} ({world.name} world): "
                  f"test {100 * acc['test']:.1f}%  ->  {folder}")


def make_vae(out: Path, name: str, augment: str = "") -> None:
    """Train a VAE (`hard_core.vae.train_vae`, ~3 min on 2 cores) and write its weights and card."""
    import diffusers
    import torch

    from ..vae import VAETrainConfig, encode, save_vae, train_vae

    vae, card = train_vae(VAETrainConfig(augment=augment))
    path = out / f"{name}.safetensors"
    save_vae(vae, path, {
        "name": name, "kind": "vae", "dataset": "mnist5k", "canvas": 40,
        "architecture": "diffusers AutoencoderKL", "input_range": "[0, 1] images, fed as x * 2 - 1",
        "latent_shape": list(encode(vae, torch.zeros(1, 1, 40, 40)).shape[1:]), "test_mse_note":
        "per pixel in [0, 1] units, decode(posterior mean) clamped to [0, 1], mnist5k test digits at canvas "
        "40 and 28; training alternated canvas-40 batches (shift <= 6 px) and canvas-28 batches (<= 2 px)",
        **card, "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                             "python": platform.python_version()},
        "command": f"{COMMAND} --only {name}"})
    mse = card["test_mse"]
    print(f"{name}: test mse {mse['40']:.4f} (canvas 40), {mse['28']:.4f} (canvas 28), "
          f"{card['train_seconds']:.0f} s  ->  {path}")
