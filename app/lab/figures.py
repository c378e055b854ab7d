"""Plotly figures of a run's events and snapshots (Streamlit-free). Every figure has a title, axis
labels, a compact height and a fixed `uirevision`, so a user's zoom survives the page's refreshes.

>>> loss_figure(reader.events)                      # step events -> loss (+ HARD's two terms)
>>> invariance_figure(snapshot, "shift", "kl")      # teacher | student heatmaps side by side
"""
from __future__ import annotations

import math

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from hard_core.worlds import WORLDS


MAX_POINTS = 500  # per series: long runs are downsampled so the browser stays quick
HEIGHT = 320
# Ten colours a reader tells apart (D3's qualitative set, with its orange swapped for the app's own, which
# marks the story's line: the student on the world's suite)
PALETTE = ["#1f77b4", "#d9480f", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
           "#d62728"]
# what a page says in place of an empty chart (which means nothing, and costs the browser as much to draw)
WAITING_STEPS, WAITING_EVAL = "waiting for the first steps…", "waiting for the first evaluation…"
KL_TOP = 1.0  # nats: the fixed top of every KL colour scale (an output that changed its mind lies above it)
AXES = {"shift": ("dy", "dx"), "rotation-scale": ("angle", "scale")}  # rows, columns of a 2D grid
# the probes' grids in words (the curves: one axis each; see hard_core.probes.live.run_grids)
GRID_NAMES = {"shift": "shift", "rotation": "rotation angle", "polarity": "polarity blend",
              "thickness": "stroke thickness", "rotation-scale": "rotation × scale"}
AXIS_TITLES = {"dy": "dy (pixels, + = down)", "dx": "dx (pixels, + = right)",
               "angle": "rotation (degrees, + = clockwise)", "scale": "zoom (× size)",
               "shift": "shift (samples, + = right)", "blend": "blend toward 1 − x (0 = original, 1 = inverted)",
               "thickness": "stroke thickness (pixels, − thinner)"}
METRICS = {"acc": "accuracy", "kl": "KL(clean ‖ moved)"}
COLOURBARS = {"acc": "accuracy (share correct)", "kl": "KL(clean ‖ moved), nats"}


def latest(events: list[dict], kind: str, **match) -> dict | None:
    """The last event of `kind` whose fields equal `match` (e.g. model="teacher"), or None."""
    for e in reversed(events):
        if e.get("kind") == kind and all(e.get(k) == v for k, v in match.items()):
            return e
    return None


def downsample(items: list, cap: int = MAX_POINTS) -> list:
    """At most `cap` items, evenly spaced, always keeping the first and the last."""
    if len(items) <= cap:
        return list(items)
    idx = sorted({round(i * (len(items) - 1) / (cap - 1)) for i in range(cap)})
    return [items[i] for i in idx]


def world_suite(config: dict) -> str:
    """The OOD suite of a run's world, from its config ("shift" by default; "test" for the scarce world)."""
    world = WORLDS.get(config.get("world") or "shift")
    return world.suite if world is not None else "shift"


def layout(fig: go.Figure, title: str, revision: str, height: int = HEIGHT, **kw) -> go.Figure:
    """Title, height and a legend outside the plot on the right (plotly makes room for it), so it never
    covers a line or an axis title."""
    fig.update_layout(title=dict(text=title, x=0, font=dict(size=15)), height=height, uirevision=revision,
                      margin=dict(l=50, r=20, t=50, b=50),
                      legend=dict(orientation="v", x=1.02, xanchor="left", y=1, yanchor="top"), **kw)
    return fig


def loss_figure(events: list[dict]) -> go.Figure | None:
    """Student loss vs step; for HARD runs also the augmentor's disagreement and the teacher's consistency
    term (from each step event's "extra") on a second y axis. None before the first step event."""
    steps = downsample([e for e in events if e.get("kind") == "step"])
    if not steps:
        return None
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    x = [e["step"] for e in steps]
    fig.add_trace(go.Scatter(x=x, y=[e["loss"] for e in steps], name="student loss (KD)", mode="lines",
                             line=dict(color=PALETTE[0], width=2.5)), secondary_y=False)
    extras = [k for k in ("disagreement", "consistency") if any(k in (e.get("extra") or {}) for e in steps)]
    for k, colour in zip(extras, (PALETTE[1], PALETTE[2])):
        y = [(e.get("extra") or {}).get(k) for e in steps]
        fig.add_trace(go.Scatter(x=x, y=y, name=k,
                                 mode="lines", line=dict(color=colour, width=1.5, dash="dot")), secondary_y=True)
    fig.update_xaxes(title_text="step", rangemode="tozero")
    fig.update_yaxes(title_text="loss", secondary_y=False, **loss_axis([e["loss"] for e in steps]))
    if extras:
        values = [(e.get("extra") or {}).get(k) for e in steps for k in extras]
        # its own ticks (not the left axis' grid rescaled), and the legend above the plot: on the right it
        # would sit on this axis
        fig.update_yaxes(title_text="KL: augmentor's disagreement,<br>teacher's consistency", secondary_y=True,
                         showgrid=False, tickmode="auto",
                         **loss_axis(values))
    fig = layout(fig, "Loss" + (" and HARD's game" if extras else "") + f" to step {x[-1]}", "loss",
                 showlegend=bool(extras))
    return fig.update_layout(legend=dict(orientation="h", x=0, xanchor="left", y=1.02, yanchor="bottom",
                                         font=dict(size=11)), margin=dict(t=80)) if extras else fig


def loss_axis(values: list) -> dict:
    """Axis settings for a loss: a few short ticks (0.5, 1, 2 rather than 0.5000001), and a log axis
    when the values span more than two decades (a loss that starts at 40 and ends at 0.1)."""
    v = [x for x in values if x is not None and math.isfinite(x) and x > 0]
    spread = max(v) / min(v) if v else 1.0
    if spread > 100:
        return dict(type="log", tickformat=".2~g", nticks=6)
    return dict(type="linear", tickformat=".3~g", nticks=6, rangemode="tozero", exponentformat="none")


def accuracy_figure(events: list[dict], focus: str = "shift", show: list[str] | None = None) -> go.Figure | None:
    """Student accuracy per test suite vs step, the teacher's as a dashed level in the same colour.

    Shown: `show` (default: "test" and the world's suite `focus`); the other suites sit in the legend, one
    click away. The student on `focus` is the thick orange line the story is about, and every shown line
    ends in its latest number (the final numbers once the run is over). One legend entry per suite toggles
    the student's line and the teacher's level together. None before the first evaluation."""
    evals = downsample([e for e in events if e.get("kind") == "eval" and e.get("model") == "student"])
    teacher = latest(events, "eval", model="teacher")
    if not evals:
        return None
    suites = list(dict.fromkeys(s for e in evals for s in e.get("acc", {})))
    suites.sort(key=lambda s: (s != focus, s != "test"))  # the story's suite, then test, then the others
    shown = set(show if show is not None else ("test", focus))
    others = iter([c for c in PALETTE if c not in (PALETTE[0], PALETTE[1])])
    colours = {s: PALETTE[1] if s == focus else PALETTE[0] if s == "test" else next(others, "#555") for s in suites}
    x = [e["step"] for e in evals]
    end = max(x)
    fig = go.Figure()
    for suite in suites:
        y = [e["acc"].get(suite) for e in evals]
        visible = True if suite in shown else "legendonly"
        bold = suite == focus
        label = [""] * (len(y) - 1) + [f"{y[-1]:.0%}" if y[-1] is not None else ""]
        fig.add_trace(go.Scatter(x=x, y=y, name=suite, legendgroup=suite, visible=visible,
                                 mode="lines+markers+text", text=label, textposition="middle right",
                                 textfont=dict(color=colours[suite], size=13 if bold else 11),
                                 hovertemplate=f"student · {suite}<br>step %{{x}}: %{{y:.1%}}<extra></extra>",
                                 marker=dict(size=7 if bold else 4),
                                 line=dict(color=colours[suite], width=4 if bold else 1.8)))
        if teacher is not None and suite in teacher.get("acc", {}):
            level = teacher["acc"][suite]
            fig.add_trace(go.Scatter(x=[0, end], y=[level, level], name=f"teacher · {suite}", legendgroup=suite,
                                     showlegend=False, visible=visible, mode="lines+text",
                                     text=["", f"teacher {level:.0%}" if bold else ""], textposition="top left",
                                     textfont=dict(color=colours[suite], size=10),
                                     hovertemplate=f"teacher · {suite}: {level:.1%}<extra></extra>",
                                     line=dict(color=colours[suite], width=1.2, dash="dash")))
    fig.update_xaxes(title_text="step", range=[0, end * 1.18 + 1])  # room for the end labels
    fig.update_yaxes(title_text="accuracy", range=[0, 1.05], tickformat=".0%")
    final = latest(events, "status")
    over = final is not None and final.get("state") in ("finished", "stopped")
    last = evals[-1]["acc"]
    numbers = ", ".join(f"{s} {last[s]:.0%}" for s in suites if s in shown and last.get(s) is not None)
    title = (f"Final accuracy at step {end}: {numbers}" if over
             else f"Accuracy at step {end}: student (lines) vs teacher (dashed)")
    fig.update_layout(legend_title_text="suite (click)")
    return layout(fig, title, "accuracy")


def _axis(snapshot: dict, grid: str, name: str) -> list[float]:
    return [round(float(v), 3) for v in snapshot[f"invariance.{grid}.axis.{name}"]]


def axis_names(snapshot: dict, grid: str) -> list[str]:
    """The names of a grid's axes in a snapshot ("invariance.<grid>.axis.<name>"), in the snapshot's order."""
    prefix = f"invariance.{grid}.axis."
    return [k[len(prefix):] for k in snapshot if k.startswith(prefix)]


def invariance_figure(snapshot: dict, grid: str = "shift", metric: str = "acc") -> go.Figure | None:
    """Teacher and student invariance maps side by side on one colour scale (0..1 for accuracy), rows
    and columns labelled with the grid's axes; for a curve (a 1D run's shift; the rotation, polarity and
    thickness grids) two lines on one plot.
    None when the snapshot has no maps of this grid and metric."""
    keys = {m: f"invariance.{grid}.{m}.{metric}" for m in ("teacher", "student")}
    if not all(k in snapshot for k in keys.values()):
        return None
    maps = {m: snapshot[k].detach().float().cpu() for m, k in keys.items()}
    what, measure = GRID_NAMES.get(grid, grid), METRICS.get(metric, metric)
    title = f"{measure[:1].upper() + measure[1:]} against the {what}" if maps["teacher"].dim() == 1 \
        else f"Invariance over the {what} grid: {measure}"
    if maps["teacher"].dim() == 1:  # a curve: the 1D shift of signals, or one nuisance's strength
        names = axis_names(snapshot, grid)
        axis = _axis(snapshot, grid, names[0]) if names else list(range(len(maps["teacher"])))
        fig = go.Figure()
        for m, colour, dash in (("teacher", PALETTE[1], "dash"), ("student", PALETTE[0], "solid")):
            fig.add_trace(go.Scatter(x=axis, y=maps[m].tolist(), name=m, mode="lines+markers",
                                     line=dict(color=colour, dash=dash)))
        fig.update_xaxes(title_text=AXIS_TITLES.get(names[0], names[0]) if names else "cell")
        fig.update_yaxes(title_text=METRICS.get(metric, metric), **({"range": [0, 1.02]} if metric == "acc" else {}))
        return layout(fig, title, f"invariance-{grid}-{metric}")
    rows, cols = AXES.get(grid, ("row", "column"))
    y = _axis(snapshot, grid, rows) if f"invariance.{grid}.axis.{rows}" in snapshot else None
    x = _axis(snapshot, grid, cols) if f"invariance.{grid}.axis.{cols}" in snapshot else None
    # fixed scales, the same for teacher and student: accuracy 0..1, KL 0..KL_TOP nats (more is saturated),
    # so a KL of 0.01 looks like the near-invariance it is instead of filling the colour range
    top = 1.0 if metric == "acc" else KL_TOP
    fig = make_subplots(rows=1, cols=2, subplot_titles=("teacher", "student"), shared_yaxes=True,
                        horizontal_spacing=0.06)
    for i, m in enumerate(("teacher", "student"), start=1):
        fig.add_trace(go.Heatmap(z=maps[m].tolist(), x=x, y=y, coloraxis="coloraxis", name=m,
                                 hovertemplate=f"{m}<br>{cols} %{{x}}<br>{rows} %{{y}}<br>%{{z:.3f}}<extra></extra>"),
                      row=1, col=i)
        fig.update_xaxes(title_text=AXIS_TITLES.get(cols, cols), row=1, col=i)
    fig.update_yaxes(title_text=AXIS_TITLES.get(rows, rows), row=1, col=1)
    fig.update_yaxes(autorange="reversed" if grid == "shift" else True)  # dy: + = down, as on screen
    scale = "Viridis" if metric == "acc" else "Viridis_r"  # bright = good in both: accurate / invariant
    ticks = [0, 0.25, 0.5, 0.75, 1.0]
    bar = dict(title=dict(text=COLOURBARS.get(metric, metric), side="right"), tickvals=[t * top for t in ticks],
               ticktext=([f"{t:.0%}" for t in ticks] if metric == "acc"
                         else [f"{t * top:g}" for t in ticks[:-1]] + [f"≥ {top:g}"]))
    return layout(fig, title, f"invariance-{grid}-{metric}",
                   coloraxis=dict(cmin=0, cmax=top, colorscale=scale, colorbar=bar))


def _signal(x) -> list[float]:
    """One sample as a list of floats in [0, 1] (snapshots store uint8)."""
    x = x.detach().cpu()
    return (x.float() / 255 if x.dtype == torch.uint8 else x.float()).flatten().tolist()


def signals_figure(snapshot: dict, n: int = 4) -> go.Figure:
    """1D runs: clean vs augmented signal of the first `n` samples, one small plot per sample."""
    clean, augmented = snapshot["clean"], snapshot["augmented"]
    n = max(1, min(n, len(clean), len(augmented)))
    labels = snapshot.get("label")
    titles = [f"sample {i}" + (f" · label {int(labels[i])}" if labels is not None else "") for i in range(n)]
    fig = make_subplots(rows=1, cols=n, subplot_titles=titles, shared_yaxes=True, horizontal_spacing=0.03)
    for i in range(n):
        fig.add_trace(go.Scatter(y=_signal(clean[i]), name="clean", mode="lines", legendgroup="clean",
                                 showlegend=i == 0, line=dict(color="#555", width=1.5)), row=1, col=i + 1)
        fig.add_trace(go.Scatter(y=_signal(augmented[i]), name="augmented", mode="lines", legendgroup="aug",
                                 showlegend=i == 0, line=dict(color=PALETTE[1], width=2)), row=1, col=i + 1)
        fig.update_xaxes(title_text="position", row=1, col=i + 1)
    fig.update_yaxes(title_text="value", range=[0, 1], row=1, col=1)
    return layout(fig, "What the student sees: clean vs augmented signals", "signals", height=280)


def disagreement_1d_figure(snapshot: dict, n: int = 4) -> go.Figure:
    """1D runs: where teacher and student disagree along each of the first `n` signals the student saw
    (|∂KL/∂x| normalised per sample, shaded), over the signal itself (grey)."""
    heat, seen = snapshot["disagreement"].detach().float().cpu(), snapshot["augmented"]
    n = max(1, min(n, len(heat)))
    fig = make_subplots(rows=1, cols=n, subplot_titles=[f"sample {i}" for i in range(n)], shared_yaxes=True,
                        horizontal_spacing=0.03)
    for i in range(n):
        h = heat[i].abs()
        h = (h / h.max()).tolist() if float(h.max()) > 0 else h.tolist()
        fig.add_trace(go.Scatter(y=_signal(seen[i]), name="signal", mode="lines", legendgroup="s",
                                 showlegend=i == 0, line=dict(color="#888", width=1)), row=1, col=i + 1)
        fig.add_trace(go.Scatter(y=h, name="disagreement", mode="lines", fill="tozeroy", legendgroup="d",
                                 showlegend=i == 0, line=dict(color=PALETTE[1], width=1.5)), row=1, col=i + 1)
        fig.update_xaxes(title_text="position", row=1, col=i + 1)
    fig.update_yaxes(title_text="relative |∂KL/∂x|", range=[0, 1.05], row=1, col=1)
    return layout(fig, "Where teacher and student disagree (per position)", "disagreement-1d", height=280)


def tstddev_figure(ranking: list) -> go.Figure:
    """Horizontal bars of T. stddev per augmentation in the ranking's order (best first), each with its 95%
    interval and the teacher's accuracy on its views; the rank-1 ones (ties included) highlighted, the
    ones the teacher cannot read in red and marked. `ranking`: `probes.tstddev.Score`s, or (name, score)."""
    names, scores = [r[0] for r in ranking], [r[1] for r in ranking]
    low, high = [getattr(r, "low", r[1]) for r in ranking], [getattr(r, "high", r[1]) for r in ranking]
    collapsed = [bool(getattr(r, "collapsed", False)) for r in ranking]
    best = [getattr(r, "rank", 1 if r[1] == min(scores) else 2) == 1 for r in ranking]
    text = [("cannot read: " if c else "teacher ") + f"{100 * r.accuracy:.0f}%" if hasattr(r, "accuracy") else ""
            for r, c in zip(ranking, collapsed)]
    colours = ["#d62728" if c else PALETTE[2] if b else "#9aa5b1" for c, b in zip(collapsed, best)]
    fig = go.Figure(go.Bar(x=scores, y=names, orientation="h", name="T. stddev", marker=dict(color=colours),
                           error_x=dict(type="data", symmetric=False, array=[h - s for h, s in zip(high, scores)],
                                        arrayminus=[s - lo for s, lo in zip(scores, low)], color="#444"),
                           text=text, textposition="inside", insidetextanchor="start",
                           customdata=[[lo, h] for lo, h in zip(low, high)],
                           hovertemplate="%{y}: %{x:.4f} (95%: %{customdata[0]:.4f}-%{customdata[1]:.4f}) · %{text}"
                                         "<extra></extra>"))
    fig.update_xaxes(title_text="T. stddev of the teacher's mean prediction, 95% interval (lower = better, per "
                     "paper 2)", rangemode="tozero")
    fig.update_yaxes(title_text="augmentation", autorange="reversed")
    return layout(fig, "Standard augmentations by T. stddev (red: the teacher cannot read them)", "tstddev",
                  height=max(HEIGHT, 40 * len(names)))


def softmax(logits: list[float], temperature: float = 1.0) -> list[float]:
    """softmax(logits / T) in plain Python (stable: the maximum is subtracted first)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = [v / temperature for v in logits]
    top = max(z)
    e = [math.exp(v - top) for v in z]
    return [v / sum(e) for v in e]


def temperature_figure(logits: list[float], temperature: float) -> go.Figure:
    """Bars of softmax(logits / T) per class, next to the plain softmax (T = 1) in grey."""
    classes = [str(i) for i in range(len(logits))]
    fig = go.Figure([go.Bar(x=classes, y=softmax(logits, 1.0), name="T = 1", marker=dict(color="#c8c8c8")),
                     go.Bar(x=classes, y=softmax(logits, temperature), name=f"T = {temperature:g}",
                            marker=dict(color=PALETTE[1]))])
    fig.update_xaxes(title_text="class", type="category", tickmode="array", tickvals=classes)  # every class
    fig.update_yaxes(title_text="probability", range=[0, 1])
    return layout(fig, f"Teacher's softmax at temperature T = {temperature:g}", "temperature", barmode="group")
