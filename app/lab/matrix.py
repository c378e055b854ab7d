"""What the Matrix page shows, Streamlit-free: the shipped invariance-transfer matrix (written by
`python -m hard_core matrix`), as a plotly heatmap of gap closed, and the config that trains one of its
cells again, live.

>>> matrix = load()                              # None while docs/matrix/matrix.json is missing
>>> fig = heatmap(matrix)
>>> cfg = live_config(matrix, "shift", "hard-affine")
"""
from __future__ import annotations

import os
from pathlib import Path

import plotly.graph_objects as go

from hard_core.config import RunConfig
from hard_core.runs.matrix import MACHINE, cell, cell_config, cell_text, load_matrix
from hard_core.worlds import get_world

from .scheduler import REPO

SHIPPED = REPO / "docs" / "matrix" / "matrix.json"
# the Live page's cadence (lab.widgets.LAB_DEFAULTS): curves, images and maps while it trains, not only at the end
LIVE = dict(eval_every=50, snapshot_every=25, probe_every=50, log_every=10, checkpoint_every=200)


def path() -> Path:
    """The matrix the page shows: $HARD_LAB_MATRIX if set, else the shipped docs/matrix/matrix.json."""
    return Path(os.environ.get("HARD_LAB_MATRIX") or SHIPPED)


def load(where: Path | None = None) -> dict | None:
    """The matrix, or None if the file does not exist (a corrupt one raises a one-line UserError)."""
    where = where or path()
    return load_matrix(where) if where.is_file() else None


def _pct(acc) -> str:
    return "-" if acc is None else f"{100 * acc:.1f}%"


def _gap(gap) -> str:
    return "n/a" if gap is None else f"{gap:.2f}"


def heatmap(matrix: dict) -> go.Figure:
    """Gap closed per world (rows) and method (columns); each cell's text is its OOD accuracy, its hover
    text the OOD and in-domain accuracies and the gap closed."""
    worlds, methods = matrix["settings"]["worlds"], matrix["settings"]["methods"]
    z, text, hover = [], [], []
    for w in worlds:
        cells = [cell(matrix, w, m) or {"ood": None, "test": None, "gap_closed": None} for m in methods]
        z.append([c["gap_closed"] for c in cells])
        text.append([_pct(c["ood"]) for c in cells])
        hover.append([f"<b>{w} · {m}</b><br>OOD ({get_world(w).suite}): {_pct(c['ood'])}<br>in-domain: "
                      f"{_pct(c['test'])}<br>gap closed: {_gap(c['gap_closed'])}"
                      for m, c in zip(methods, cells)])
    fig = go.Figure(go.Heatmap(z=z, x=methods, y=[f"{w} ({get_world(w).suite})" for w in worlds], text=text,
                               texttemplate="%{text}", customdata=hover, hovertemplate="%{customdata}<extra></extra>",
                               zmin=0, zmax=1, colorscale="RdYlGn", colorbar={"title": "gap closed<br>(0 = KD, 1 = oracle)"}))
    fig.update_layout(title="Gap closed = (method − KD) / (oracle − KD) on the OOD suite (text: OOD accuracy)",
                      xaxis_title="method", yaxis_title="world (OOD suite)", yaxis_autorange="reversed",
                      height=120 + 60 * len(worlds), margin=dict(l=10, r=10, t=50, b=10), uirevision="matrix")
    return fig


def live_config(matrix: dict, world: str, method: str, seed: int = 0) -> RunConfig:
    """The cell's run as the Live page trains it: the same config (data, teacher, student, method, steps,
    seed, suites) with the Live page's evaluation and snapshot cadence, on this machine's device."""
    cfg = cell_config(matrix, world, method, seed)
    return RunConfig(**{**cfg.model_dump(), **LIVE, **{k: RunConfig.model_fields[k].default for k in MACHINE}})


def label(matrix: dict, world: str, method: str) -> str:
    """A cell's button text: 'OOD / in-domain (gap closed)'."""
    return cell_text(cell(matrix, world, method))
