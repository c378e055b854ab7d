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

MAX_POINTS = 500  # per series: long runs are downsampled so the browser stays quick
HEIGHT = 320
PALETTE = ["#1f77b4", "#d9480f", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
AXES = {"shift": ("dy", "dx"), "rotation-scale": ("angle", "scale")}  # rows, columns of a 2D grid
AXIS_TITLES = {"dy": "dy (pixels, + = down)", "dx": "dx (pixels, + = right)", "angle": "rotation (degrees)",
               "scale": "zoom (× size)", "shift": "shift (samples, + = right)"}
METRICS = {"acc": "accuracy", "kl": "KL(clean ‖ moved)"}


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


def _layout(fig: go.Figure, title: str, revision: str, height: int = HEIGHT, **kw) -> go.Figure:
    fig.update_layout(title=dict(text=title, x=0, font=dict(size=15)), height=height, uirevision=revision,
                      margin=dict(l=50, r=20, t=50, b=80),
                      legend=dict(orientation="h", yanchor="top", y=-0.3, x=0), **kw)
    return fig


def _empty(title: str, revision: str, note: str, xtitle: str, ytitle: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=note, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_xaxes(title_text=xtitle)
    fig.update_yaxes(title_text=ytitle)
    return _layout(fig, title, revision)


def loss_figure(events: list[dict]) -> go.Figure:
    """Student loss vs step; for HARD runs also the augmentor's disagreement and the teacher's consistency
    term (from each step event's "extra") on a second y axis."""
    steps = downsample([e for e in events if e.get("kind") == "step"])
    if not steps:
        return _empty("Loss", "loss", "waiting for the first steps…", "step", "loss")
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    x = [e["step"] for e in steps]
    fig.add_trace(go.Scatter(x=x, y=[e["loss"] for e in steps], name="student loss (KD)", mode="lines",
                             line=dict(color=PALETTE[0], width=2.5)), secondary_y=False)
    extras = [k for k in ("disagreement", "consistency") if any(k in (e.get("extra") or {}) for e in steps)]
    for k, colour in zip(extras, (PALETTE[1], PALETTE[2])):
        y = [(e.get("extra") or {}).get(k) for e in steps]
        fig.add_trace(go.Scatter(x=x, y=y, name=f"{k} (augmentor)" if k == "disagreement" else f"{k} (teacher)",
                                 mode="lines", line=dict(color=colour, width=1.5, dash="dot")), secondary_y=True)
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="loss", secondary_y=False)
    if extras:
        fig.update_yaxes(title_text="KL (HARD terms)", secondary_y=True, showgrid=False)
    return _layout(fig, "Loss" + (" and HARD's game" if extras else ""), "loss")


def hardness_figure(events: list[dict]) -> go.Figure | None:
    """HARD's hardness vs step: KL(T || S) on the augmented images over KL(T || S) on the same images clean,
    with the line at 1 (no harder than the data). None for runs without an augmentor."""
    steps = downsample([e for e in events if e.get("kind") == "step" and "hardness" in (e.get("extra") or {})])
    if not steps:
        return None
    fig = go.Figure(go.Scatter(x=[e["step"] for e in steps], y=[e["extra"]["hardness"] for e in steps],
                               name="hardness", mode="lines", line=dict(color=PALETTE[1], width=2)))
    fig.add_hline(y=1.0, line=dict(color="grey", dash="dash"), annotation_text="as hard as the clean images",
                  annotation_position="bottom right")
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="KL on augmented / KL on clean", rangemode="tozero")
    return _layout(fig, "Hardness: how much more the student disagrees on what the augmentor made", "hardness",
                   height=260)


def accuracy_figure(events: list[dict]) -> go.Figure:
    """Student accuracy per test suite vs step ("test" in bold); the teacher's accuracy on each suite as a
    dashed horizontal reference line in the same colour."""
    evals = downsample([e for e in events if e.get("kind") == "eval" and e.get("model") == "student"])
    teacher = latest(events, "eval", model="teacher")
    if not evals:
        return _empty("Accuracy", "accuracy", "waiting for the first evaluation…", "step", "accuracy")
    suites = list(dict.fromkeys(s for e in evals for s in e.get("acc", {})))
    suites.sort(key=lambda s: s != "test")  # "test" first, the rest in the order the run reports them
    x = [e["step"] for e in evals]
    fig = go.Figure()
    for i, suite in enumerate(suites):
        colour = PALETTE[i % len(PALETTE)]
        fig.add_trace(go.Scatter(x=x, y=[e["acc"].get(suite) for e in evals], name=f"student · {suite}",
                                 mode="lines+markers", legendgroup=suite,
                                 line=dict(color=colour, width=3.5 if suite == "test" else 1.8)))
        if teacher is not None and suite in teacher.get("acc", {}):
            level = teacher["acc"][suite]
            fig.add_trace(go.Scatter(x=[0, max(x)], y=[level, level], name=f"teacher · {suite}", mode="lines",
                                     legendgroup=suite, line=dict(color=colour, width=1.2, dash="dash")))
    fig.update_xaxes(title_text="step", rangemode="tozero")
    fig.update_yaxes(title_text="accuracy", range=[0, 1.02])
    return _layout(fig, "Accuracy: student (lines) vs teacher (dashed)", "accuracy")


def _axis(snapshot: dict, grid: str, name: str) -> list[float]:
    return [round(float(v), 3) for v in snapshot[f"invariance.{grid}.axis.{name}"]]


def invariance_figure(snapshot: dict, grid: str = "shift", metric: str = "acc") -> go.Figure | None:
    """Teacher and student invariance maps side by side on one colour scale (0..1 for accuracy), rows
    and columns labelled with the grid's axes; for 1D runs (vector maps) two lines on one plot.
    None when the snapshot has no maps of this grid and metric."""
    keys = {m: f"invariance.{grid}.{m}.{metric}" for m in ("teacher", "student")}
    if not all(k in snapshot for k in keys.values()):
        return None
    maps = {m: snapshot[k].detach().float().cpu() for m, k in keys.items()}
    title = f"Invariance over the {grid} grid: {METRICS.get(metric, metric)}"
    if maps["teacher"].dim() == 1:
        names = [k.rsplit(".", 1)[1] for k in snapshot if k.startswith(f"invariance.{grid}.axis.")]
        axis = _axis(snapshot, grid, names[0]) if names else list(range(len(maps["teacher"])))
        fig = go.Figure()
        for m, colour, dash in (("teacher", PALETTE[1], "dash"), ("student", PALETTE[0], "solid")):
            fig.add_trace(go.Scatter(x=axis, y=maps[m].tolist(), name=m, mode="lines+markers",
                                     line=dict(color=colour, dash=dash)))
        fig.update_xaxes(title_text=AXIS_TITLES.get(names[0], names[0]) if names else "cell")
        fig.update_yaxes(title_text=METRICS.get(metric, metric), **({"range": [0, 1.02]} if metric == "acc" else {}))
        return _layout(fig, title, f"invariance-{grid}-{metric}")
    rows, cols = AXES.get(grid, ("row", "column"))
    y = _axis(snapshot, grid, rows) if f"invariance.{grid}.axis.{rows}" in snapshot else None
    x = _axis(snapshot, grid, cols) if f"invariance.{grid}.axis.{cols}" in snapshot else None
    top = 1.0 if metric == "acc" else max(float(maps["teacher"].max()), float(maps["student"].max()), 1e-6)
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
    return _layout(fig, title, f"invariance-{grid}-{metric}",
                   coloraxis=dict(cmin=0, cmax=top, colorscale=scale,
                                  colorbar=dict(title=dict(text=METRICS.get(metric, metric)))))


def params_figure(snapshot: dict) -> go.Figure | None:
    """What the augmentor chose for each augmented sample: for the affine augmentor a scatter of the
    translation (tx, ty) in pixels plus a histogram per other degree of freedom; for mix and vae a
    histogram per parameter. None when the snapshot has no param.* keys (no HARD augmentor)."""
    params = {k[len("param."):]: v.detach().float().cpu().flatten().tolist()
              for k, v in snapshot.items() if k.startswith("param.")}
    params.pop("partner", None)  # an index into the batch: not a quantity to histogram
    if not params:
        return None
    panels = (["translation"] if "tx" in params and "ty" in params else []) + \
        [k for k in params if not ("tx" in params and "ty" in params and k in ("tx", "ty"))]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=panels, horizontal_spacing=0.08)
    units = {"tx": "tx (pixels)", "ty": "ty (pixels)", "rotate": "rotation (degrees)", "scale": "zoom − 1 (+ = larger)",
             "shear": "shear", "weight": "mixing weight of the partner", "latent_norm": "‖latent edit‖",
             "pixel_change": "mean |pixel change|", "gain": "gain (white − black; −1 = inverted)",
             "bias": "bias (where black goes)"}
    for i, name in enumerate(panels, start=1):
        if name == "translation":
            fig.add_trace(go.Scatter(x=params["tx"], y=params["ty"], mode="markers", name="(tx, ty)",
                                     marker=dict(size=6, opacity=0.6, color=PALETTE[1])), row=1, col=i)
            m = 1.1 * max(max(map(abs, params["tx"])), max(map(abs, params["ty"])), 1e-3)  # 0 in the middle
            fig.update_xaxes(title_text="tx (pixels, + = right)", range=[-m, m], row=1, col=i)
            fig.update_yaxes(title_text="ty (pixels, + = down)", range=[m, -m], row=1, col=i)
            continue
        fig.add_trace(go.Histogram(x=params[name], name=name, nbinsx=20, marker=dict(color=PALETTE[i % 9])),
                      row=1, col=i)
        fig.update_xaxes(title_text=units.get(name, name), row=1, col=i)
        fig.update_yaxes(title_text="samples", row=1, col=i)
    n = len(next(iter(params.values())))
    return _layout(fig, f"What the augmentor chose ({n} samples)", "params", showlegend=False)


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
    return _layout(fig, "What the student sees: clean vs augmented signals", "signals", height=280)


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
    return _layout(fig, "Where teacher and student disagree (per position)", "disagreement-1d", height=280)


def tstddev_figure(ranking: list[tuple[str, float]]) -> go.Figure:
    """Horizontal bars of T. stddev per augmentation, the best (lowest) on top and highlighted."""
    names, scores = [n for n, _ in ranking], [s for _, s in ranking]
    best = min(scores) if scores else None
    fig = go.Figure(go.Bar(x=scores, y=names, orientation="h", name="T. stddev",
                           marker=dict(color=[PALETTE[2] if s == best else "#9aa5b1" for s in scores]),
                           hovertemplate="%{y}: %{x:.4f}<extra></extra>"))
    fig.update_xaxes(title_text="T. stddev of the teacher's mean prediction (lower = better)", rangemode="tozero")
    fig.update_yaxes(title_text="augmentation", autorange="reversed")
    return _layout(fig, "Standard augmentations ranked by T. stddev", "tstddev", height=max(HEIGHT, 40 * len(names)))


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
    fig.update_xaxes(title_text="class")
    fig.update_yaxes(title_text="probability", range=[0, 1])
    return _layout(fig, f"Teacher's softmax at temperature T = {temperature:g}", "temperature", barmode="group")
