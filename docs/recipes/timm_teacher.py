"""A teacher of your own, as a practitioner makes one: a timm model trained in a plain PyTorch loop with its
own preprocessing (32 x 32 inputs, MNIST's mean and std, random shifts), saved with timm's `save_for_hf`.

    python docs/recipes/timm_teacher.py --out teachers/timm-shift      # ~1 min on 2 CPU cores
    python -m hard_core train --teacher teachers/timm-shift --canvas 40 --student mlp --hard affine --out runs/own

HARD Lab knows nothing of this script: it reads the folder (config.json + model.safetensors) as it would a
model from the Hugging Face Hub. `tests/test_external.py` trains its teacher with `train_teacher`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import timm
import torch
import torch.nn.functional as F

from hard_core.data.builtin import load_mnist5k
from hard_core.data.nuisance import shift

MEAN, STD, SIDE = (0.1307,), (0.3081,), 32  # the teacher's own preprocessing, not the lab's


def preprocess(x: torch.Tensor) -> torch.Tensor:
    """What this teacher was trained on: the 40 x 40 canvas resized to 32 x 32, normalised with MNIST's stats."""
    x = F.interpolate(x, size=(SIDE, SIDE), mode="bilinear", align_corners=False, antialias=True)
    return (x - MEAN[0]) / STD[0]


def train_teacher(out: Path, steps: int = 200, max_shift: int = 6, seed: int = 0, arch: str = "test_resnet") -> float:
    """Train `arch` on mnist5k digits at canvas 40 with random shifts of up to `max_shift` px; save it in the
    Hub layout at `out`; return its accuracy on shifted test digits."""
    torch.manual_seed(seed)
    data = load_mnist5k(40)
    x, y = data.train.get(slice(None))
    model = timm.create_model(arch, num_classes=10, in_chans=1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    model.train()
    for _ in range(steps):
        idx = torch.randint(len(x), (128,))
        moves = torch.randint(-max_shift, max_shift + 1, (2, 128))
        loss = F.cross_entropy(model(preprocess(shift(x[idx], moves[0], moves[1]))), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    tx, ty = data.test.get(slice(None))
    moves = torch.randint(-max_shift, max_shift + 1, (2, len(tx)), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        acc = (model(preprocess(shift(tx, moves[0], moves[1]))).argmax(1) == ty).float().mean().item()
    timm.models.save_for_hf(model, str(out), safe_serialization=True,
                            data_config=dict(input_size=(1, SIDE, SIDE), mean=MEAN, std=STD))
    return acc


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--arch", default="test_resnet")
    args = p.parse_args()
    accuracy = train_teacher(args.out, args.steps, arch=args.arch)
    print(f"saved {args.arch} to {args.out} (config.json + model.safetensors); shifted test digits: {accuracy:.1%}")
