"""What the Compare page shows, Streamlit-free: run labels, the student's curves read from events.jsonl,
plotly figures with one trace per run, the final-metrics table, and PNG export.

>>> rows = comparable(runs.list_all())
>>> fig = accuracy_figure({r["id"]: curves(r["path"]) for r in rows}, "test")
>>> table = metrics_table(rows)              # one line per run and suite
"""
from __future__ import annotations

import functools
import os
import threading
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from hard_core.errors import UserError
from hard_core.runs import RunReader, final_metrics

from . import runs
from .figures import loss_axis
from .scheduler import ACTIVE

MAX_POINTS = 400  # per trace: long runs are thinned so the browser stays quick
COLUMNS = ["run", "suite", "student acc", "teacher acc", "agreement", "step", "state", "kind", "student", "hard",
           "augment"]
if not os.environ.get("BROWSER_PATH") and Path("/usr/bin/chromium").is_file():
    os.environ["BROWSER_PATH"] = "/usr/bin/chromium"  # kaleido's Chrome for PNG export


def comparable(rows: list[dict]) -> list[dict]:
    """The runs that have curves to show: started (finished, running, stopped, ...), not queued."""
    return [r for r in rows if (Path(r["path"]) / "events.jsonl").is_file()]


def any_active(run_ids: list[str]) -> bool:
    """Whether any of these runs is still training (missing or unreadable runs count as ended)."""
    def active(run_id):
        try:
            return runs.state(run_id) in ACTIVE
        except UserError:
            return False
    return any(active(run_id) for run_id in run_ids)


def label(row: dict) -> str:
    """'20261123-081500-ab12 · mlp ← HARD-affine · mnist5k · finished'."""
    what = row.get("student") or "?"
    if row.get("kind") == "pretrain":
        what = f"teacher {what}"
    elif row.get("hard") not in (None, "none"):
        what += f" ← HARD-{row['hard']}"
    elif row.get("augment") not in (None, "none"):
        what += f" ← {row['augment']}"
    return f"{row['id']} · {what} · {row.get('dataset') or '?'} · {row['state']}"


def curves(path: str | Path) -> dict:
    """{"loss": (steps, losses), "acc": {suite: (steps, accuracies)}} of the run's student."""
    path = Path(path)
    try:
        stat = (path / "events.jsonl").stat()
    except FileNotFoundError:
        return {"loss": ([], []), "acc": {}}
    return _curves(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _curves(path: str, mtime_ns: int, size: int) -> dict:  # cached until the file changes
    loss: tuple[list, list] = ([], [])
    acc: dict[str, tuple[list, list]] = {}
    for e in RunReader(path).poll():
        if e.get("kind") == "step" and isinstance(e.get("loss"), (int, float)):
            loss[0].append(e["step"])
            loss[1].append(e["loss"])
        elif e.get("kind") == "eval" and e.get("model") == "student":
            for suite, value in e.get("acc", {}).items():
                xs, ys = acc.setdefault(suite, ([], []))
                xs.append(e["step"])
                ys.append(value)
    return {"loss": loss, "acc": acc}


def suites(all_curves: dict[str, dict]) -> list[str]:
    """The OOD suites any of the runs evaluated ("test", the in-domain split, left out)."""
    return sorted({s for c in all_curves.values() for s in c["acc"]} - {"test"})


def _thin(xs: list, ys: list) -> tuple[list, list]:
    if len(xs) <= MAX_POINTS:
        return xs, ys
    keep = list(range(0, len(xs), -(-len(xs) // MAX_POINTS))) + [len(xs) - 1]
    return [xs[i] for i in keep], [ys[i] for i in keep]


def _figure(series: dict[str, tuple[list, list]], title: str, y_title: str, percent: bool) -> go.Figure:
    fig = go.Figure()
    for name, (xs, ys) in series.items():
        xs, ys = _thin(xs, ys)
        fig.add_trace(go.Scatter(x=xs, y=ys, name=name, mode="lines+markers" if len(xs) < 40 else "lines"))
    fig.update_layout(title=title, xaxis_title="step", yaxis_title=y_title, height=380,
                      margin=dict(l=10, r=10, t=50, b=10),
                      legend=dict(x=1.02, xanchor="left", y=1, yanchor="top"))  # beside the plot, never over it
    if percent:
        fig.update_yaxes(tickformat=".0%", range=[0, 1.02])
    else:
        fig.update_yaxes(**loss_axis([y for _, ys in series.values() for y in ys]))
    return fig


def accuracy_figure(all_curves: dict[str, dict], suite: str) -> go.Figure:
    """Student accuracy on `suite` vs step, one trace per run (runs without that suite are left out)."""
    series = {name: c["acc"][suite] for name, c in all_curves.items() if suite in c["acc"]}
    title = "Test accuracy (in-domain)" if suite == "test" else f"Accuracy on the '{suite}' suite"
    return _figure(series, title, "student accuracy", percent=True)


def loss_figure(all_curves: dict[str, dict]) -> go.Figure:
    return _figure({name: c["loss"] for name, c in all_curves.items()}, "Training loss", "loss", percent=False)


def metrics_table(rows: list[dict]) -> pd.DataFrame:
    """The last evaluation of each run: one line per run and suite ("test" first)."""
    lines = []
    for row in rows:
        m = final_metrics(row["path"])
        for suite in sorted(set(m["student"]) | set(m["teacher"]), key=lambda s: (s != "test", s)):
            lines.append({"run": row["id"], "suite": suite, "student acc": m["student"].get(suite),
                          "teacher acc": m["teacher"].get(suite), "agreement": m["agree"].get(suite),
                          "step": m["step"], **{k: row.get(k) for k in COLUMNS[6:]}})
    return pd.DataFrame(lines, columns=COLUMNS)


def to_png(fig: go.Figure) -> bytes:
    """The figure as a PNG (kaleido drives a headless Chrome)."""
    return fig.to_image(format="png", width=1000, height=450)


@functools.lru_cache(maxsize=1)
def png_error(timeout: float = 60.0) -> str | None:
    """None if PNG export works here, else why not (one line). Tried once per process, ~3 s."""
    result: list = []

    def probe():
        try:
            to_png(go.Figure(go.Scatter(x=[0, 1], y=[0, 1])))
            result.append(None)
        except Exception as e:  # noqa: BLE001 - any failure means "no PNG", never a crash
            result.append(f"{type(e).__name__}: {e}".splitlines()[0][:200])

    thread = threading.Thread(target=probe, daemon=True)  # a hung browser must not hang the page
    thread.start()
    thread.join(timeout)
    return result[0] if result else f"the PNG renderer did not answer within {timeout:.0f} s"
