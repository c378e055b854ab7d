"""Convergence in-domain on the scarce world (docs/results.md): from the 15 runs of the commands there, the
steps each method needs to reach plain KD's final test accuracy of the same seed, first (as `compare --reach
test`) and for good (from that evaluation on never below it again), and the mean test accuracy at a few steps.

    python docs/sweeps/conv-scarce/reach.py runs/conv-scarce     # also writes curves.json beside this file
"""
import json
import sys
from pathlib import Path

import numpy as np

from hard_core.runs import RunReader

METHODS = {"kd": "KD", "ce": "CE", "kd-flipcrop": "KD + flip-crop", "hard-mix": "HARD-mix", "hard-vae": "HARD-vae"}
SEEDS = (0, 1, 2)
AT = (20, 40, 100, 200, 400, 600, 1200)


def curve(run_dir: Path) -> list[tuple[int, float]]:
    return [(e["step"], e["acc"]["test"]) for e in RunReader(run_dir).poll()
            if e.get("kind") == "eval" and e["model"] == "student"]


def main(root: Path) -> None:
    curves = {f"{m}-s{s}": curve(root / f"{m}-s{s}") for m in METHODS for s in SEEDS}
    (Path(__file__).parent / "curves.json").write_text(json.dumps(
        {"what": "test accuracy of the student at each evaluation, per run (docs/results.md, convergence in-domain)",
         "runs": {name: {"step": [s for s, _ in c], "test": [a for _, a in c]} for name, c in curves.items()}}))
    print("| method | final test acc (per seed) | first reaches KD's final (per seed) | for good from (per seed) | "
          + " | ".join(f"step {t}" for t in AT) + " |")
    print("|---|---|---|---|" + "---|" * len(AT))
    for m, label in METHODS.items():
        firsts, goods, finals, at = [], [], [], []
        for s in SEEDS:
            target, c = curves[f"kd-s{s}"][-1][1], curves[f"{m}-s{s}"]
            firsts.append(next((st for st, a in c if a >= target), None))
            goods.append(next((st for i, (st, _) in enumerate(c) if all(a >= target for _, a in c[i:])), None))
            finals.append(c[-1][1])
            at.append([dict(c)[t] for t in AT])
        show = lambda xs: ", ".join("-" if x is None else str(x) for x in xs)  # noqa: E731
        print(f"| {label} | {100 * np.mean(finals):.1f} ± {100 * np.std(finals, ddof=1):.1f} "
              f"({', '.join(f'{100 * f:.1f}' for f in finals)}) | {show(firsts)} | {show(goods)} | "
              + " | ".join(f"{100 * np.mean([a[i] for a in at]):.1f}" for i in range(len(AT))) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/conv-scarce"))
