"""Time the explorer's T. stddev ranking (the "Rank the standard augmentations" button) the first time for
a teacher (computed by the engine's `score_augmentations`, then kept in the cache folder) and every time
after (read back), in one process; --ship keeps it in assets/ for the shipped teacher.

    python docs/bench/explorer_ranking.py [--label "mnist5k · canvas 40" | --all] [--threads 2] [--ship]

Prints the seconds of each. Uses a fresh temporary cache folder and ignores any ranking shipped in assets/,
so the first call is cold. --ship then copies the ranking to assets/tstddev-<key>.json (removing the one
it replaces for the same teacher and data set), where the explorer and `tstddev` find it on a fresh clone.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "app"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", default="mnist5k · canvas 40", help="an explorer data set label")
    ap.add_argument("--all", action="store_true", help="every explorer data set, one after the other")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the lab's server uses its default)")
    ap.add_argument("--ship", action="store_true", help="keep the ranking in assets/ for the shipped teacher")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HARD_LAB_RUNS"] = os.environ["HARD_CACHE"] = tmp
        from hard_core.assets import ASSETS
        from hard_core.runs import validate
        from lab import explore

        kept = validate.kept_rankings
        validate.kept_rankings = lambda key: kept(key)[-1:]  # only the (empty) cache: a cold first call
        for label in explore.DATASETS if args.all else [args.label]:
            t0 = time.perf_counter()
            explore.teacher(label)  # data and teacher: loaded once per server process either way
            loaded = time.perf_counter() - t0
            t0 = time.perf_counter()
            first, how = explore.rank(label)
            cold = time.perf_counter() - t0
            t0 = time.perf_counter()
            again, how_again = explore.rank(label)
            warm = time.perf_counter() - t0
            assert again == first and how_again["read"], "the kept ranking differs from the computed one"
            print(f"{label}: data + teacher load {loaded:.2f} s; ranking computed and kept {cold:.1f} s "
                  f"({how['chunks']} chunks of {how['chunk_batches']} x {how['batch_size']}); read back {warm:.3f} s")
            print("  " + " · ".join(f"{s.name} {s.t_stddev:.4f}" + (" (collapsed)" if s.collapsed else "")
                                    for s in first))
            if args.ship:
                cache = Path(how_again["kept"])
                for old in ASSETS.glob("tstddev-*.json"):  # the ranking this one replaces
                    setting = json.loads(old.read_text()).get("setting", {})
                    if all(setting.get(k) == how[k] for k in ("dataset", "canvas", "world", "teacher", "seed")):
                        old.unlink()
                shutil.copyfile(cache, ASSETS / cache.name)
                print(f"  kept next to the shipped teachers: {ASSETS / cache.name}")


if __name__ == "__main__":
    main()
