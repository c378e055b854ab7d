"""What the Compare page shows, Streamlit-free: runs named by world, method and seed, one colour per run in
every chart, the student's curves read from events.jsonl, the training loss one panel per objective, the
metrics of finished runs apart from those still going, and PNG export.

>>> rows = comparable(runs.list_all())
>>> look = looks(rows)                        # {id: name, colour and dash}, the same in every chart
>>> fig = accuracy_figure({r["id"]: curves(r["path"]) for r in rows}, "test", look)
>>> table = metrics_table(rows, look)         # one line per run and suite, with its state
"""
from __future__ import annotations

import functools
import os
import threading
from collections import Counter
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hard_core.errors import UserError
from hard_core.runs import RunReader, final_metrics

from . import runs
from .figures import loss_axis
from .live import method
from .scheduler import ACTIVE, status

MAX_POINTS = 400  # per trace: long runs are thinned so the browser stays quick
# Okabe-Ito's colour-blind-safe qualitative palette, most distinct first (its yellow is too pale on white);
# past these, colours come round again with another dash, so no two runs look alike
COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#000000", "#E69F00", "#56B4E9"]
DASHES = ["solid", "dash", "dot", "dashdot"]
COLUMNS = ["run", "state", "suite", "student acc", "teacher acc", "agreement", "step", "world", "method", "seed",
           "student", "id"]
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


def refresh(row: dict) -> dict:
    """The row with its state and step read again (a running run moves on while the page polls)."""
    try:
        state = runs.state(row["id"])
    except UserError:  # its folder went away: keep what was known
        return row
    st = status(Path(row["path"]))
    return {**row, "state": state, "step": st.get("step") or row.get("step") or 0,
            "total_steps": st.get("total_steps") or row.get("total_steps") or 0}


def _config(row: dict) -> dict:
    cfg = row.get("config")
    return cfg if isinstance(cfg, dict) else {}


def name(row: dict) -> str:
    """'shift · HARD-affine · seed 0' (a teacher's pretraining names its data set instead of a world); the
    run's id when its config cannot be read."""
    cfg = _config(row)
    if not cfg:
        return row["id"]
    where = cfg.get("dataset") if cfg.get("kind") == "pretrain" else cfg.get("world")
    return f"{where or '?'} · {method(cfg)} · seed {cfg.get('seed', '?')}"


def names(rows: list[dict]) -> dict[str, str]:
    """{id: name}, unique: runs that share a name get their id's random suffix ('· 270f'), or the whole id."""
    base = {r["id"]: name(r) for r in rows}
    taken = Counter(base.values())
    out = {i: f"{n} · {i.rsplit('-', 1)[-1]}" if taken[n] > 1 and n != i else n for i, n in base.items()}
    taken = Counter(out.values())
    return {i: f"{base[i]} · {i}" if taken[n] > 1 and base[i] != i else n for i, n in out.items()}


def progress(row: dict) -> str:
    """'finished', 'running, step 140/600', 'stopped at step 300/600', ..."""
    state, step, total = row.get("state") or "unknown", row.get("step") or 0, row.get("total_steps") or 0
    if state == "finished":
        return state
    at = f"step {step}/{total}" if total else f"step {step}"
    return f"{state}, {at}" if state in ACTIVE else f"{state} at {at}"


def option(row: dict, label: str) -> str:
    """The run picker's line: its name, where it stands, and its id (which the run folder is called)."""
    return f"{label} · {progress(row)} · {row['id']}"


def looks(rows: list[dict]) -> dict[str, dict]:
    """{id: {"name", "color", "dash"}} in the order of `rows`: one look per run, the same in every chart of the
    page; a run that has not finished says so in its name ('… (running, step 140/600)')."""
    label = names(rows)
    out = {}
    for i, row in enumerate(rows):
        shown = label[row["id"]] + ("" if row.get("state") == "finished" else f" ({progress(row)})")
        out[row["id"]] = {"name": shown, "color": COLOURS[i % len(COLOURS)],
                          "dash": DASHES[i // len(COLOURS) % len(DASHES)], "label": label[row["id"]]}
    return out


def objective(cfg: dict) -> str:
    """What a run's logged loss is: its student's objective. Different objectives are different quantities
    (T^2 KL at T=4 is not cross-entropy), so each gets its own panel. HARD's is apart from KD's: its loss is
    KD on images its augmentor picks to raise it, so it climbs where plain KD's falls."""
    if not cfg:
        return "loss (objective unknown: the run's config is unreadable)"
    if cfg.get("kind") == "pretrain" or cfg.get("loss") == "ce":
        return "CE loss (labels)"
    t, alpha = cfg.get("temperature", 4.0), cfg.get("alpha", 1.0)
    kd = f"KD loss (T²·KL, T={t:g})" if alpha >= 1 else f"KD loss (T={t:g}, {alpha:g}·KD + {1 - alpha:g}·CE)"
    return f"HARD: {kd} on clean + augmentor's images" if cfg.get("hard") not in (None, "none") else kd


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


def _trace(xs: list, ys: list, look: dict, **more) -> go.Scatter:
    xs, ys = _thin(xs, ys)
    return go.Scatter(x=xs, y=ys, name=look["name"], legendgroup=look["name"],
                      mode="lines+markers" if len(xs) < 40 else "lines",
                      line=dict(color=look["color"], dash=look["dash"], width=2), marker=dict(color=look["color"]),
                      **more)


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=50, b=10),
                      legend=dict(x=1.02, xanchor="left", y=1, yanchor="top"))  # beside the plot, never over it
    return fig


def accuracy_figure(all_curves: dict[str, dict], suite: str, look: dict[str, dict]) -> go.Figure:
    """Student accuracy on `suite` vs step, one trace per run (runs without that suite are left out)."""
    fig = go.Figure([_trace(*c["acc"][suite], look[i]) for i, c in all_curves.items() if suite in c["acc"]])
    title = "Test accuracy (in-domain)" if suite == "test" else f"Accuracy on the '{suite}' suite"
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="student accuracy", tickformat=".0%", range=[0, 1.02])
    return _layout(fig, title, 380)


def loss_figure(all_curves: dict[str, dict], rows: list[dict], look: dict[str, dict]) -> go.Figure:
    """The training loss, one panel (own y axis, titled by the objective) per objective among `rows`."""
    by_objective: dict[str, list[str]] = {}
    for row in rows:
        if row["id"] in all_curves:
            by_objective.setdefault(objective(_config(row)), []).append(row["id"])
    panels = list(by_objective) or ["loss"]
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, subplot_titles=panels,
                        vertical_spacing=0.3 / len(panels))
    for n, (what, ids) in enumerate(by_objective.items(), start=1):
        for i in ids:
            fig.add_trace(_trace(*all_curves[i]["loss"], look[i]), row=n, col=1)
        fig.update_yaxes(title_text="loss", row=n, col=1,
                         **loss_axis([y for i in ids for y in all_curves[i]["loss"][1]]))
    fig.update_xaxes(title_text="step", row=len(panels), col=1)
    title = "Training loss" + (", one panel per objective" if len(panels) > 1 else f": {panels[0]}")
    _layout(fig, title, 120 + 260 * len(panels))
    return fig.update_layout(margin=dict(t=80))  # room for the first panel's title under the figure's


def metrics_table(rows: list[dict], look: dict[str, dict] | None = None) -> pd.DataFrame:
    """The last evaluation of each run, one line per run and suite ("test" first), with the run's state:
    a finished run's numbers are final, a running or stopped run's are only the latest so far."""
    look = look or looks(rows)
    lines = []
    for row in rows:
        m, cfg = final_metrics(row["path"]), _config(row)
        for suite in sorted(set(m["student"]) | set(m["teacher"]), key=lambda s: (s != "test", s)):
            lines.append({"run": look[row["id"]]["label"], "state": progress(row), "suite": suite,
                          "student acc": m["student"].get(suite), "teacher acc": m["teacher"].get(suite),
                          "agreement": m["agree"].get(suite), "step": m["step"], "world": cfg.get("world"),
                          "method": method(cfg) if cfg else None, "seed": cfg.get("seed"),
                          "student": cfg.get("student"), "id": row["id"]})
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
