"""Time the explorer's T. stddev ranking (the "Rank the standard augmentations" button) the first time for
a teacher (computed, then kept in the cache folder) and every time after (read back), in one process.

    python docs/bench/explorer_ranking.py [--label "mnist5k · canvas 40"] [--threads 2] [--ship]

Prints the seconds of each and their ratio. Uses a fresh temporary cache folder and ignores any ranking
shipped next to the teacher, so the first call is cold. --ship then writes the ranking next to the shipped
teacher (assets/tstddev-<teacher>.json), where the explorer finds it on a fresh clone.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "app"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", default="mnist5k · canvas 40", help="an explorer data set label")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the lab's server uses its default)")
    ap.add_argument("--ship", action="store_true", help="keep the ranking next to the shipped default teacher")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HARD_LAB_RUNS"] = os.environ["HARD_CACHE"] = tmp
        from hard_core.checkpoint import write_json
        from lab import explore

        kept = explore.kept_rankings
        explore.kept_rankings = lambda *a: kept(*a)[-1:]  # only the (empty) cache: a cold first call
        t0 = time.perf_counter()
        explore.teacher(args.label)  # data and teacher: loaded once per server process either way
        loaded = time.perf_counter() - t0
        t0 = time.perf_counter()
        first = explore.rank(args.label)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = explore.rank(args.label)
        warm = time.perf_counter() - t0
        assert again == first, "the kept ranking differs from the computed one"
        if args.ship:
            model = explore.teacher(args.label)
            key = explore.ranking_key(model, args.label, 20, 128, 0)
            cache, shipped = kept(args.label, "default", key)[-1], kept(args.label, "default", key)[0]
            write_json(shipped, json.loads(cache.read_text()))
            print(f"kept next to the shipped teacher: {shipped}")
            explore.kept_rankings = kept
            os.environ["HARD_LAB_RUNS"] = str(Path(tmp) / "fresh")  # a fresh clone: no runs, no cache
            t0 = time.perf_counter()
            assert explore.rank(args.label) == first
            print(f"ranking on a fresh clone, from the shipped file: {time.perf_counter() - t0:.3f} s")
    print(f"data + teacher load: {loaded:.2f} s")
    print(f"ranking, first time for this teacher (computed and kept): {cold:.2f} s")
    print(f"ranking, any time after (read back): {warm:.3f} s")
    print(f"first / after: {cold / warm:.0f}x; best: {first[0][0]} ({first[0][1]:.4f})")


if __name__ == "__main__":
    main()
