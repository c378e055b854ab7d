"""What the Matrix page shows, Streamlit-free: the shipped invariance-transfer matrix (written by
`python -m hard_core matrix`), as a plotly heatmap of gap closed whose cells can be clicked, and the run a
cell opens on the Live page (one of the lab's with the cell's config, else a new one trained live).

>>> matrix = load()                              # None while docs/matrix/matrix.json is missing
>>> fig = heatmap(matrix)                        # the page draws it with on_select="rerun"
>>> picked(matrix, event.selection)              # ("shift", "hard-affine"), or None
>>> run_id = open_cell(matrix, "shift", "hard-affine", owner="k3y")
"""
from __future__ import annotations

import os
from pathlib import Path

import plotly.graph_objects as go

from hard_core.config import UNLEARNED, RunConfig
from hard_core.runs.matrix import cell, cell_config, load_matrix
from hard_core.worlds import get_world

from . import runs
from .scheduler import REPO

SHIPPED = REPO / "docs" / "matrix" / "matrix.json"
# the Live page's cadence (lab.form.LAB_DEFAULTS): curves, images and maps while it trains, not only at the end
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
    """Gap closed per world (rows) and method (columns), each cell's number its OOD accuracy (the only
    number on the page); its hover gives the OOD and in-domain accuracies and the gap closed.

    Plotly reports no clicks on a heatmap (streamlit/streamlit#8760), so an invisible marker sits on every
    cell and carries its hover and its click: customdata = [world, method]. With hoverdistance -1 the
    nearest marker answers, so a click anywhere in a cell picks that cell."""
    worlds, methods = matrix["settings"]["worlds"], matrix["settings"]["methods"]
    rows = [f"{w} ({get_world(w).suite})" for w in worlds]
    z, text, where, hover = [], [], [], []
    for w, row in zip(worlds, rows):
        cells = [cell(matrix, w, m) or {"ood": None, "test": None, "gap_closed": None} for m in methods]
        z.append([c["gap_closed"] for c in cells])
        text.append([_pct(c["ood"]) for c in cells])
        for m, c in zip(methods, cells):
            where.append((m, row, [w, m]))
            hover.append(f"<b>{w} · {m}</b><br>OOD ({get_world(w).suite}): {_pct(c['ood'])}<br>in-domain: "
                         f"{_pct(c['test'])}<br>gap closed: {_gap(c['gap_closed'])}<br><i>click: open this run "
                         "on Live training</i>")
    fig = go.Figure(go.Heatmap(z=z, x=methods, y=rows, text=text, texttemplate="%{text}", hoverinfo="skip",
                               zmin=0, zmax=1, colorscale="RdYlGn",
                               colorbar={"title": "gap closed<br>(0 = KD, 1 = oracle)"}))
    invisible = dict(opacity=0, size=30, symbol="square")
    fig.add_trace(go.Scatter(x=[x for x, _, _ in where], y=[y for _, y, _ in where], mode="markers",
                             customdata=[c for _, _, c in where], hovertext=hover, showlegend=False,
                             hovertemplate="%{hovertext}<extra></extra>", marker=invisible,
                             selected=dict(marker=dict(opacity=0)), unselected=dict(marker=dict(opacity=0))))
    fig.update_layout(title="Gap closed = (method − KD) / (oracle − KD) on the OOD suite; numbers: OOD accuracy",
                      xaxis_title="method", yaxis_title="world (OOD suite)", yaxis_autorange="reversed",
                      hovermode="closest", hoverdistance=-1, height=120 + 60 * len(worlds),
                      margin=dict(l=10, r=10, t=50, b=10), uirevision="matrix")
    fig.update_xaxes(fixedrange=True, type="category")  # a click is a pick, never a zoom
    fig.update_yaxes(fixedrange=True, type="category")
    return fig


def picked(matrix: dict, selection) -> tuple[str, str] | None:
    """The (world, method) of the cell a heatmap selection points at (`st.plotly_chart(...,
    on_select="rerun").selection`), or None: nothing selected, or a point that is not one of this matrix's
    cells (what comes back from the browser is checked, not trusted)."""
    points = (selection or {}).get("points") or []
    settings = matrix["settings"]
    for point in points:
        data = point.get("customdata") if isinstance(point, dict) else None
        if isinstance(data, (list, tuple)) and len(data) == 2 and data[0] in settings["worlds"] \
                and data[1] in settings["methods"]:
            return data[0], data[1]
    return None


def open_cell(matrix: dict, world: str, method: str, owner: str) -> str:
    """The id of the run a cell opens on the Live page: the newest lab run with the cell's live config that
    finished or is still training (a second click never trains it twice), else a new one, with its KD
    twin, owned by `owner`. A UserError (one line) if it cannot be queued."""
    cfg = live_config(matrix, world, method)
    return runs.find_twin(cfg) or runs.submit(cfg, owner, twin=True)


def live_config(matrix: dict, world: str, method: str, seed: int = 0) -> RunConfig:
    """The cell's run as the Live page trains it: the same config (data, teacher, student, method, steps,
    seed, suites) with the Live page's evaluation and snapshot cadence, on this machine's device."""
    return watched(cell_config(matrix, world, method, seed))


def watched(cfg: RunConfig) -> RunConfig:
    """A shipped run (a matrix cell, a sweep's point) as the Live page trains it: the same config with the Live
    page's evaluation and snapshot cadence (`LIVE`), on this machine's device and threads."""
    return RunConfig(**{**cfg.model_dump(), **LIVE, **{k: RunConfig.model_fields[k].default for k in UNLEARNED}})
