"""The GPU check, as one prepared script: CIFAR-shaped data, a resnet18-cifar teacher, a smaller student.

    python scripts/gpu_bench.py                      # on a GPU machine: prints a Markdown table, ~5 min on an H100
    python scripts/gpu_bench.py --device cpu --tiny  # a smoke run of the same code on the CPU (~1 min)

For KD, HARD-affine and HARD-vae, at bf16 and fp16, without and with --compile: images/s of the training
steps (from the run's own step events, after a warm-up) and the peak GPU memory. Then the default MNIST
session (HARD-affine, 600 steps) as the lab runs it. The data are random tensors (3 x 32 x 32, 100 classes)
and the teacher has random weights: this measures cost, not accuracy. Everything goes through
`hard_core.distil`, so it is the engine's own loop that is timed.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import hard_core
from hard_core.checkpoint import save_model
from hard_core.models import build_model
from hard_core.vae import build_vae, save_vae

VARIANTS = {"kd": {}, "hard-affine": {"hard": "affine"}, "hard-vae": {"hard": "vae"}}


def setup(folder: Path, images: int) -> tuple[str, str, tuple, tuple]:
    """A random resnet18-cifar teacher file, a random 3-channel VAE file, random CIFAR-shaped data."""
    torch.manual_seed(0)
    teacher = folder / "teacher.safetensors"
    save_model(teacher, build_model("resnet18-cifar", input_shape=(3, 32, 32), num_classes=100))
    vae = folder / "vae.safetensors"
    save_vae(build_vae(in_channels=3, out_channels=3, sample_size=32), vae, {"name": "random-rgb-vae"})
    x, y = torch.rand(images, 3, 32, 32), torch.randint(100, (images,))
    return str(teacher), str(vae), (x, y), (x[:1000], y[:1000])


def measure(teacher, vae, train, test, variant, precision, compile_, args, out: Path) -> dict:
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    rates = []

    def on_event(event):
        if event.kind == "step" and event.step > args.warmup:
            rates.append(event.steps_per_s)

    t0 = time.perf_counter()
    hard_core.distil(teacher, args.student, train=train, test=test, out=out, on_event=on_event, device=args.device,
                     precision=precision, compile=compile_, vae=vae, steps=args.steps, batch_size=args.batch,
                     log_every=10, eval_every=args.steps, probe_every=args.steps, snapshot_every=args.steps,
                     checkpoint_every=args.steps, suites="none", **VARIANTS[variant])
    wall = time.perf_counter() - t0
    rate = sorted(rates)[len(rates) // 2] if rates else float("nan")
    peak = torch.cuda.max_memory_allocated() / 2**20 if args.device.startswith("cuda") else float("nan")
    return {"variant": variant, "precision": precision, "compile": compile_, "images_per_s": rate * args.batch,
            "ms_per_step": 1000 / rate if rate else float("nan"), "peak_mib": peak, "wall_s": wall}


def mnist_session(args, out: Path) -> float:
    """Seconds of the default lab session (HARD-affine, shipped teacher, 600 steps) from the CLI."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hard_core", "train", "--canvas", "40", "--teacher", "default",
                    "--hard", "affine", "--steps", "60" if args.tiny else "600", "--device", args.device,
                    "--out", str(out)], check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--student", default="small-cnn")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--warmup", type=int, default=50, help="steps left out of the rate (compile happens there)")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--tiny", action="store_true", help="a smoke run: 30 steps, batch 32, fp32 only, no compile")
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args()
    if args.tiny:
        args.steps, args.warmup, args.batch = 30, 10, 32
    precisions = ["fp32"] if args.tiny else ["bf16", "fp16"]
    compiles = [False] if args.tiny else [False, True]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        teacher, vae, train, test = setup(tmp, 2000 if args.tiny else 20000)
        for variant in VARIANTS:
            for precision in precisions:
                for compile_ in compiles:
                    out = tmp / f"{variant}-{precision}-{compile_}"
                    rows.append(measure(teacher, vae, train, test, variant, precision, compile_, args, out))
                    print(json.dumps(rows[-1]), flush=True)
        session = mnist_session(args, tmp / "mnist")
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"\n{name}, torch {torch.__version__}, {args.student} student, batch {args.batch}, {args.steps} steps "
          f"(rate after step {args.warmup}), {time.strftime('%Y-%m-%d')}\n")
    print("| variant | precision | compile | images/s | ms/step | peak MiB |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['precision']} | {'yes' if r['compile'] else 'no'} | {r['images_per_s']:.0f} | "
              f"{r['ms_per_step']:.1f} | {r['peak_mib']:.0f} |")
    print(f"\nthe default MNIST session (HARD-affine, {'60' if args.tiny else '600'} steps, CLI): {session:.1f} s")
    if args.json:
        args.json.write_text(json.dumps({"device": name, "rows": rows, "mnist_session_s": session}, indent=2))


if __name__ == "__main__":
    main()
