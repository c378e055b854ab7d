"""The invariance-transfer matrix: rows are worlds (a nuisance the teacher learned and the student's data
lacks), columns are methods (KD, the KD oracle told the nuisance, the HARD families), and each cell is
the student's OOD accuracy on the world's suite, its in-domain accuracy, and the gap closed

    gap closed = (method - KD) / (oracle - KD)      on the OOD accuracy,

so 0 is plain KD and 1 is as good as knowing the nuisance. The `matrix` command trains the cells and
writes matrix.json; the lab reads it back here (no training, no Streamlit).

>>> cfg = build_config("rotation", "hard-affine", seed=0, steps=600)   # what the cell trains
>>> matrix = load_matrix("docs/matrix/matrix.json")
>>> cell_text(cell(matrix, "shift", "hard-affine"))                    # '85.2 / 96.1 (0.93)'
>>> cell_config(matrix, "shift", "hard-affine", seed=0)                # the RunConfig that made it
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from ..config import RunConfig, validate
from ..errors import UserError
from ..worlds import get_world, method_config
from .reader import final_metrics

BOOKKEEPING = ("eval_every", "probe_every", "snapshot_every", "checkpoint_every")  # once, at the end
LEGEND = ("Cells: OOD accuracy / in-domain accuracy (gap closed), in %, mean over {seeds} seed(s) of {steps} "
          "steps. Gap closed = (method - KD) / (oracle - KD) on the OOD accuracy: 0 is plain KD, 1 the oracle "
          "(KD with the nuisance as augmentation); n/a where KD or the oracle is missing or they are equal.")


def build_config(world: str, method: str, seed: int, steps: int, dataset: str = "mnist5k", canvas: int | None = 40,
                 teacher: str = "default", student: str = "mlp", device: str = "auto",
                 threads: int | None = None) -> RunConfig:
    """The run of one cell and seed. It is evaluated (and probed, snapshotted, checkpointed) once, at the
    end, on in-domain test and the world's own suite only: the matrix reports nothing else."""
    w = get_world(world)
    data = dict(dataset=dataset, canvas=canvas, teacher=teacher, student=student, steps=steps, seed=seed,
                device=device, threads=threads, log_every=max(1, steps // 20), **{k: steps for k in BOOKKEEPING},
                **method_config(w, method))
    return validate(RunConfig, {**data, "suites": world_suites(validate(RunConfig, data))})


def world_suites(cfg: RunConfig) -> str:
    """The `--suites` text of the run's world: its suite at the world's strength ("none" when the world is
    about in-domain accuracy, which every run measures on "test")."""
    w = get_world(cfg.world)
    if w.suite == "test":
        return "none"
    from ..train.setup import dataset_for, suite_spec  # the trainer's own defaults (loads the data, cached)

    return f"{w.suite}:{suite_spec(cfg, dataset_for(cfg))[w.suite]:g}"


def cell_dir(world: str, method: str, seed: int) -> str:
    return f"{world}-{method}-s{seed}"


def accuracies(run_dir: str | Path, world: str) -> dict:
    """{"ood", "test"}: the student's final accuracy on the world's suite and in-domain (None if missing)."""
    acc = final_metrics(run_dir)["student"]
    return {"ood": acc.get(get_world(world).suite), "test": acc.get("test")}


def gap_closed(value: float | None, kd: float | None, oracle: float | None) -> float | None:
    """(value - KD) / (oracle - KD); None where a number is missing or the oracle equals KD."""
    if value is None or kd is None or oracle is None or math.isclose(oracle, kd, abs_tol=1e-12):
        return None
    return (value - kd) / (oracle - kd) + 0.0  # + 0.0: KD's own cell reads 0.00, never -0.00


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def summarise(settings: dict, command: str, runs: dict[tuple[str, str, int], dict]) -> dict:
    """The matrix.json object from the per-run results {(world, method, seed): {"dir", "config", "ood",
    "test", "error"}}. A cell's gap closed is taken from its seed-mean accuracies (a ratio of means, steadier
    than a mean of ratios); each seed also has its own, against KD and the oracle of the same seed."""
    cells = []
    for world in settings["worlds"]:
        for method in settings["methods"]:
            per_seed = []
            for seed in range(settings["seeds"]):
                r = dict(runs.get((world, method, seed)) or {"ood": None, "test": None, "error": "not run"})
                kd, oracle = (runs.get((world, m, seed)) or {} for m in ("kd", "oracle"))
                r["gap_closed"] = gap_closed(r.get("ood"), kd.get("ood"), oracle.get("ood"))
                per_seed.append({"seed": seed, **r})
            cells.append({"world": world, "method": method, "suite": get_world(world).suite,
                          "ood": _mean(r["ood"] for r in per_seed), "test": _mean(r["test"] for r in per_seed),
                          "errors": [r["error"] for r in per_seed if r.get("error")], "seeds": per_seed})
    for c in cells:
        kd, oracle = (cell({"cells": cells}, c["world"], m) or {} for m in ("kd", "oracle"))
        c["gap_closed"] = gap_closed(c["ood"], kd.get("ood"), oracle.get("ood"))
    return {"settings": settings, "command": command, "legend": LEGEND.format(**settings), "cells": cells}


def load_matrix(path: str | Path) -> dict:
    """A written matrix.json; a UserError (one line) if it is missing or not a matrix."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError:
        raise UserError(f"no matrix at {path} (make one: python -m hard_core matrix --out {path.parent})") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON: {e}") from None
    if not (isinstance(data, dict) and isinstance(data.get("cells"), list) and isinstance(data.get("settings"), dict)):
        raise UserError(f"{path} is not a matrix.json (no settings and cells)")
    return data


def cell(matrix: dict, world: str, method: str) -> dict | None:
    return next((c for c in matrix["cells"] if c["world"] == world and c["method"] == method), None)


def cell_config(matrix: dict, world: str, method: str, seed: int = 0) -> RunConfig:
    """The exact RunConfig of one cell's run (so the lab can train it again, live)."""
    found = cell(matrix, world, method)
    run = next((s for s in (found or {}).get("seeds", []) if s.get("seed") == seed), None)
    if run is None or not isinstance(run.get("config"), dict):
        raise UserError(f"the matrix has no run for world {world!r}, method {method!r}, seed {seed}")
    return validate(RunConfig, run["config"])


def rows(matrix: dict) -> list[dict]:
    """One row per world: {"world", "suite", method: cell text, ...}, for a table."""
    worlds, methods = matrix["settings"]["worlds"], matrix["settings"]["methods"]
    return [{"world": w, "suite": get_world(w).suite, **{m: cell_text(cell(matrix, w, m)) for m in methods}}
            for w in worlds]


def _pct(acc: float | None) -> str:
    return "-" if acc is None else f"{100 * acc:.1f}"


def cell_text(c: dict | None) -> str:
    """'85.2 / 96.1 (0.93)': OOD / in-domain accuracy in % (gap closed); 'failed' if no seed finished."""
    if c is None or (c["ood"] is None and c["test"] is None):
        return "failed" if c and c.get("errors") else "-"
    gap = "n/a" if c["gap_closed"] is None else f"{c['gap_closed']:.2f}"
    return f"{_pct(c['ood'])} / {_pct(c['test'])} ({gap})"


def markdown_table(matrix: dict) -> str:
    """The Markdown table: rows worlds (with their OOD suite), columns methods, cells as `cell_text`."""
    methods = matrix["settings"]["methods"]
    lines = ["| world (OOD suite) | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for r in rows(matrix):
        lines.append(f"| {r['world']} ({r['suite']}) | " + " | ".join(r[m] for m in methods) + " |")
    return "\n".join(lines)


def markdown(matrix: dict) -> str:
    """matrix.md: a title, the legend, the table and the command that made it."""
    return "\n".join(["# Invariance-transfer matrix", "", matrix["legend"], "", markdown_table(matrix), "",
                      f"Made with: `{matrix['command']}`", ""])


def write_png(matrix: dict, path: str | Path) -> None:
    """matrix.png: a heatmap of gap closed (worlds x methods), each cell annotated with its OOD accuracy."""
    import matplotlib

    matplotlib.use("Agg")  # no display: a file only
    import matplotlib.pyplot as plt
    import numpy as np

    from ..checkpoint import atomic_write

    worlds, methods = matrix["settings"]["worlds"], matrix["settings"]["methods"]
    gaps = np.full((len(worlds), len(methods)), np.nan)
    fig, ax = plt.subplots(figsize=(1.4 * len(methods) + 2.5, 0.8 * len(worlds) + 1.8))
    for i, w in enumerate(worlds):
        for j, m in enumerate(methods):
            c = cell(matrix, w, m) or {"ood": None, "gap_closed": None}
            if c["gap_closed"] is not None:
                gaps[i, j] = c["gap_closed"]
            gap = "n/a" if c["gap_closed"] is None else f"{c['gap_closed']:.2f}"
            ax.text(j, i, f"{_pct(c['ood'])}%\n({gap})", ha="center", va="center", fontsize=9)
    image = ax.imshow(gaps, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right")
    ax.set_yticks(range(len(worlds)), [f"{w} ({get_world(w).suite})" for w in worlds])
    ax.set_title("Gap closed = (method - KD) / (oracle - KD); text: OOD accuracy", fontsize=10)
    fig.colorbar(image, ax=ax, label="gap closed")
    fig.tight_layout()
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
