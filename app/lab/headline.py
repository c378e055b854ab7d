"""The Live page's headline: the story of one run in one view, next to its twin (plain KD, or for a point of
paper 2's figure its twin of the other loss: CE; each named from its own config, `twin_name`).

    teacher | KD student (the twin) | HARD student      invariance maps on one 0..1 accuracy scale,
    OOD accuracy as a big number under each             the world's suite (shift, rotation, ...)
    both students' OOD curves on one small chart        the teacher's level dashed
    "At step 300: HARD student shift 87% (KD twin 21%, teacher 98%)"   the verdict: both students at one step

A CE twin trains without the teacher, so it has no maps: its column is left out and a caption says why.
Everything but `panel` is Streamlit-free (and tested without it); `panel` draws the view from two
`RunView`s (the run and its twin, which may be None or not started yet); the Live page draws the
verdict (`verdict_line`) above it, refreshed more often than its figures.
"""
from __future__ import annotations

from typing import NamedTuple

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hard_core.worlds import WORLDS

from hard_core.probes.live import world_grid

from .figures import AXES, AXIS_TITLES, GRID_NAMES, PALETTE, WAITING_EVAL, layout, axis_names, downsample, latest
from .live import RunView, method
from .teachers import describe

COLOURS = {"teacher": "#555555", "kd": PALETTE[0], "run": PALETTE[1]}
HELD = " · held: newer steps are drawn every few seconds, to leave the CPU to training"


def world_suite(cfg: dict) -> str:
    """The suite that measures the run's world: 'shift', 'rotation', ..., or 'test' (scarce data)."""
    world = WORLDS.get(cfg.get("world") or "shift")
    return world.suite if world is not None else "shift"


def measure(suite: str) -> str:
    """The world's measure in words: 'Out of domain: shift', or 'In domain: test' (the scarce world)."""
    return f"In domain: {suite}" if suite == "test" else f"Out of domain: {suite}"


def grid_for(cfg: dict) -> str:
    """The probe grid of the run's world (`hard_core.probes.live.world_grid`): 'rotation', 'polarity' and
    'thickness' are curves; 'shift' for the shift and scarce worlds (and an unknown world)."""
    world = cfg.get("world") or "shift"
    return world_grid(world) if world in WORLDS else "shift"


def run_label(cfg: dict) -> str:
    """'HARD student' for a HARD run, else the student named by its loss and augmentation (`live.method`): 'KD
    student', 'KD + flip-crop student', 'CE + flip-crop student'."""
    if cfg.get("hard") not in (None, "none"):
        return "HARD student"
    return f"{method({'loss': cfg.get('loss'), 'augment': cfg.get('augment')})} student"


def twin_loss(twin_cfg: dict | None) -> str:
    """'CE' for a twin that trains on labels only, else 'KD' (the plain-KD twin, or no config known yet)."""
    return "CE" if (twin_cfg or {}).get("loss") == "ce" else "KD"


def twin_name(twin_cfg: dict | None) -> str:
    """What the headline calls the twin, from the twin's own config: 'CE twin' or 'KD twin'."""
    return f"{twin_loss(twin_cfg)} twin"


def distilled(cfg: dict | None) -> bool:
    """Whether a run learns from its teacher (and so has probe maps): KD, with a teacher."""
    return bool(cfg) and told(cfg)


def ood(events: list[dict] | None, suite: str, model: str = "student") -> float | None:
    """The latest accuracy of `model` on `suite` in a run's events, or None before the first evaluation
    (or without events: no twin)."""
    e = latest(events or [], "eval", model=model)
    value = (e or {}).get("acc", {}).get(suite)
    return float(value) if isinstance(value, (int, float)) else None


def evaluated(events: list[dict] | None, suite: str) -> dict[int, float]:
    """{step: the student's accuracy on `suite`} over a run's evaluations."""
    return {e["step"]: float(e["acc"][suite]) for e in events or [] if e.get("kind") == "eval"
            and e.get("model") == "student" and isinstance(e.get("step"), int)
            and isinstance((e.get("acc") or {}).get(suite), (int, float))}


class Compared(NamedTuple):
    step: int | None  # the step both numbers are from (None before the run's first evaluation)
    run: float | None  # the run's student at `step`
    twin: float | None  # the KD twin at `step` (None: no twin, or not evaluated at any step the run was)
    ahead: int | None  # the run's latest evaluated step when it is past `step` (its twin lags), else None


def compared(run_events: list[dict], twin_events: list[dict] | None, suite: str) -> Compared:
    """The two students on `suite` at one step: the latest step at which both were evaluated. Before the twin's
    first evaluation (or without a twin), the run's latest. A twin that is ahead is read at the run's step."""
    mine, kd = evaluated(run_events, suite), evaluated(twin_events, suite)
    if not mine:
        return Compared(None, None, None, None)
    both = sorted(set(mine) & set(kd))
    latest_step = max(mine)
    if not both:
        return Compared(latest_step, mine[latest_step], None, None)
    step = both[-1]
    return Compared(step, mine[step], kd[step], latest_step if latest_step > step else None)


def percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def step_text(step: int, cfg: dict) -> str:
    """'step 300', or 'step 600 (final)' at the run's last step."""
    return f"step {step}" + (" (final)" if step == cfg.get("steps") else "")


def verdict(cfg: dict, run_events: list[dict], twin_events: list[dict] | None, twin_cfg: dict | None = None) -> str:
    """One line at one named step: 'At step 300: HARD student shift 87% (KD twin 21%, teacher 98%)'. Both
    students are read at the same step, always; parts not measured yet say so. twin_events None: no twin;
    twin_cfg names it ('CE twin' for a CE one, `twin_name`)."""
    suite, label = world_suite(cfg), run_label(cfg)
    at, teacher = compared(run_events, twin_events, suite), ood(run_events, suite, "teacher")
    if at.step is None:
        return f"{label}: waiting for the first evaluation on {suite}…"
    others = ([] if twin_events is None else [f"{twin_name(twin_cfg)} {percent(at.twin) if at.twin is not None else 'not evaluated yet'}"]) \
        + ([f"teacher {percent(teacher)}"] if teacher is not None else [])
    line = f"At {step_text(at.step, cfg)}: {label} {suite} {percent(at.run)}" + (f" ({', '.join(others)})" if others else "")
    return line + (f"; the run is at step {at.ahead}, its twin catching up" if at.ahead else "")


def _axis(snap: dict, grid: str, name: str) -> list[float] | None:
    key = f"invariance.{grid}.axis.{name}"
    return [round(float(v), 3) for v in snap[key]] if key in snap else None


def maps_title(grid: str, world: str | None = None) -> str:
    """What the headline's maps show, in words; the scarce world says that its measure is elsewhere."""
    if world == "scarce":
        return "Scarce data: its measure is in-domain test accuracy (below); the maps show shifts"
    if grid == "shift":
        return "Accuracy over the shift grid (bright = still right after the move)"
    if grid == "polarity":
        return "Accuracy from the digits (0) to their inversion 1 − x (1); the teacher dashed"
    return f"Accuracy against the {GRID_NAMES.get(grid, grid)}; the teacher dashed"


def maps_figure(run: dict | None, twin: dict | None, grid: str, label: str,
                world: str | None = None, with_twin: bool = True, twin_label: str = "KD student (twin)") -> go.Figure | None:
    """Teacher | KD student | run's student accuracy over `grid`, from probe snapshots (`run` carries the
    teacher's and its student's maps, `twin` the KD student's), on one 0..1 scale: three heatmaps for the
    shift grid (a model without a map yet keeps an empty panel that says so), three lines for a curve
    (a world's nuisance by strength, a 1D run's shift). None without any map. world: for the title.
    with_twin False (a plain-KD run, the twin switched off, a CE twin without maps): teacher and run only, no
    empty twin panel."""
    maps = {}
    if run is not None and f"invariance.{grid}.teacher.acc" in run:
        maps["teacher"] = run[f"invariance.{grid}.teacher.acc"]
    if twin is not None and f"invariance.{grid}.student.acc" in twin:
        maps["kd"] = twin[f"invariance.{grid}.student.acc"]
    if run is not None and f"invariance.{grid}.student.acc" in run:
        maps["run"] = run[f"invariance.{grid}.student.acc"]
    if not maps:  # a run probed before its world had a curve of its own still has the shift grid
        return maps_figure(run, twin, "shift", label, world, with_twin, twin_label) if grid != "shift" else None
    ref = run if run is not None and axis_names(run, grid) else twin
    names = {"teacher": "teacher", "kd": twin_label, "run": label}
    title, order = maps_title(grid, world), ("teacher", "kd", "run") if with_twin else ("teacher", "run")
    if next(iter(maps.values())).dim() == 1:
        return _curves(maps, ref, grid, names, title, order)
    rows, cols = AXES[grid]
    y, x = _axis(ref, grid, rows), _axis(ref, grid, cols)
    fig = make_subplots(rows=1, cols=len(order), subplot_titles=[names[k] for k in order], shared_yaxes=True,
                        horizontal_spacing=0.04)
    for i, k in enumerate(order, start=1):
        if k in maps:
            fig.add_trace(go.Heatmap(z=maps[k].float().tolist(), x=x, y=y, coloraxis="coloraxis", name=names[k],
                                     hovertemplate=f"{names[k]}<br>{cols} %{{x}}<br>{rows} %{{y}}<br>"
                                                   "accuracy %{z:.2f}<extra></extra>"), row=1, col=i)
        fig.update_xaxes(title_text=AXIS_TITLES.get(cols, cols), row=1, col=i)
    for i, k in enumerate(order, start=1):
        if k not in maps:  # paper units, the middle of the empty panel's own domain: no reference to an
            n = "" if i == 1 else i  # axis without a trace, which the browser placed over the teacher's map
            xd, yd = fig.layout[f"xaxis{n}"].domain, fig.layout[f"yaxis{n}"].domain
            fig.add_annotation(text="no map yet", showarrow=False, xref="paper", yref="paper",
                               x=(xd[0] + xd[1]) / 2, y=(yd[0] + yd[1]) / 2, xanchor="center", yanchor="middle")
    fig.update_yaxes(title_text=AXIS_TITLES.get(rows, rows), row=1, col=1)
    fig.update_yaxes(autorange="reversed" if grid == "shift" else True)
    return layout(fig, title, f"headline-{grid}", height=300,
                   coloraxis=dict(cmin=0, cmax=1, colorscale="Viridis",
                                  colorbar=dict(title=dict(text="accuracy"), thickness=12)))


def _curves(maps: dict, ref: dict, grid: str, names: dict, title: str, order: tuple) -> go.Figure:
    """The models' accuracy along one axis: teacher dashed, KD twin, the run's student (those in `order`)."""
    axis_name = (axis_names(ref, grid) or ["cell"])[0]
    x = _axis(ref, grid, axis_name) or list(range(len(next(iter(maps.values())))))
    fig = go.Figure([go.Scatter(x=x, y=m.float().tolist(), name=names[k], mode="lines+markers",
                                line=dict(color=COLOURS[k], width=2 if k == "teacher" else 3,
                                          dash="dash" if k == "teacher" else "solid"))
                     for k, m in maps.items()])
    missing = [names[k] for k in order if k not in maps]
    if missing:
        fig.add_annotation(text=f"no curve yet: {', '.join(missing)}", showarrow=False, xref="paper",
                           yref="paper", x=0, y=0.02, xanchor="left", yanchor="bottom")
    fig.update_xaxes(title_text=AXIS_TITLES.get(axis_name, axis_name))
    fig.update_yaxes(title_text="accuracy", range=[0, 1.02], tickformat=".0%")
    return layout(fig, title, f"headline-{grid}", height=300)


def curves_figure(cfg: dict, run_events: list[dict], twin_events: list[dict] | None,
                  twin_cfg: dict | None = None) -> go.Figure | None:
    """Both students' accuracy on the world's suite vs step (the twin named by `twin_cfg`), and the teacher's as
    a dashed level; None before either has been evaluated."""
    suite = world_suite(cfg)
    fig = go.Figure()
    for name, events, colour in ((twin_name(twin_cfg), twin_events, COLOURS["kd"]), (run_label(cfg), run_events, COLOURS["run"])):
        evals = downsample([e for e in events or [] if e.get("kind") == "eval" and e.get("model") == "student"
                            and suite in e.get("acc", {})])
        if evals:
            fig.add_trace(go.Scatter(x=[e["step"] for e in evals], y=[e["acc"][suite] for e in evals], name=name,
                                     mode="lines+markers", line=dict(color=colour, width=3)))
    teacher = ood(run_events, suite, "teacher")
    if teacher is not None:
        fig.add_hline(y=teacher, line=dict(color=COLOURS["teacher"], dash="dash"), annotation_text="teacher",
                      annotation_position="bottom right")
    if not fig.data:
        return None
    total = int(cfg.get("steps") or 0)
    fig.update_xaxes(title_text="step", range=[0, total] if total else None)
    fig.update_yaxes(title_text=f"accuracy on {suite}", range=[0, 1.02])
    layout(fig, measure(suite), "headline-curves", height=300)
    return fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.25, x=0))


def plain_kd(cfg: dict) -> bool:
    """Whether a run is itself plain KD (no augmentation): it has no twin; it is one."""
    return cfg.get("hard") in (None, "none") and (cfg.get("augment") or "none") == "none"


def probes_at_one_step(view: RunView, twin: RunView | None) -> tuple[dict | None, dict | None]:
    """The run's and the twin's probe snapshots at the latest probe step both have (the run's latest while the
    twin has none)."""
    run = view.latest_probe()
    if run is None or twin is None:
        return run, None
    mine = twin.probe_snapshot(run["_step"])
    if mine is None:
        return run, None
    return (view.probe_snapshot(mine["_step"]) if mine["_step"] < run["_step"] else run), mine


def told(cfg: dict) -> bool:
    """Whether a run has a story to tell: a distillation run (KD, not CE on labels alone), with a teacher."""
    return cfg.get("kind") != "pretrain" and cfg.get("loss") != "ce" and bool(cfg.get("teacher"))


def verdict_line(view: RunView, twin: RunView | None) -> str | None:
    """The verdict for a polled run view and its polled twin view (None: no twin), None without a story."""
    cfg = view.config()
    return verdict(cfg, view.events, twin.events if twin is not None else None,
                   twin.config() if twin is not None else None) if told(cfg) else None


def panel(view: RunView, twin: RunView | None, every: float = 0.0) -> None:
    """Draw the headline's maps, numbers and curves (Streamlit) for a polled run view and its polled twin
    view (None: no twin); the verdict above it is `verdict_line`'s, refreshed more often. every: redraw
    the two figures at most every `every` seconds (`RunView.drawn`); the numbers follow every refresh."""
    import streamlit as st

    cfg = view.config()
    if not told(cfg):
        return  # no teacher, no story to tell
    suite, grid, label = world_suite(cfg), grid_for(cfg), run_label(cfg)
    twin_cfg = twin.config() if twin is not None else None
    twin_events, called = (twin.events if twin is not None else None), twin_name(twin_cfg)
    mapped = twin if distilled(twin_cfg) else None  # a CE twin trains without the teacher: no probes, no maps
    with st.container(border=True, key="headline"):
        run_probe, twin_probe = probes_at_one_step(view, mapped)
        left, right = st.columns([3, 1.3])
        probed = tuple(p["_step"] if p is not None else None for p in (run_probe, twin_probe))
        fig = view.drawn(("headline-maps", mapped is not None), probed,
                         lambda: maps_figure(run_probe, twin_probe, grid, label, cfg.get("world"), mapped is not None,
                                             f"{twin_loss(twin_cfg)} student (twin)"), every)
        if fig is None:
            left.caption("The invariance maps come at the first probe step.")
        else:
            left.plotly_chart(fig, key="headline_maps")
            left.caption(f"Maps at {step_text(probed[0], cfg)}"
                         + ("" if probed[1] in (None, probed[0]) else f" (the twin's at step {probed[1]})")
                         + (HELD if view.held(("headline-maps", mapped is not None)) else "")
                         + ("" if mapped is not None or twin is None else
                            f"; the {called} learns from labels alone, without the teacher: it has no maps"))
        at, teacher = compared(view.events, twin_events, suite), ood(view.events, suite, "teacher")
        cols = left.columns(3 if twin is not None or not plain_kd(cfg) else 2)
        cols[0].metric(f"teacher · {suite}", percent(teacher), help=describe(cfg) or None)
        if twin is not None:
            cols[1].metric(f"{called} · {suite}", percent(at.twin),
                           help=f"run {twin.run_id}: {method(twin_cfg)}, same world, data, seed and steps; read at "
                                "the run's step")
        elif not plain_kd(cfg):
            cols[1].metric(f"KD twin · {suite}", "off", help="Start with the KD twin switched on to compare")
        cols[-1].metric(f"{label} · {suite}", percent(at.run),
                        delta=f"{100 * (at.run - at.twin):+.0f} pts vs {twin_loss(twin_cfg)}" if at.run is not None and at.twin is not None
                        else None)
        if at.step is not None:
            left.caption(f"Students at {step_text(at.step, cfg)}"
                         + (f"; the {called} has no evaluation there yet" if twin is not None and at.twin is None else ""))
        evals = (view.count("eval"), twin.count("eval") if twin is not None else None)
        curves = view.drawn("headline-curves", evals, lambda: curves_figure(cfg, view.events, twin_events, twin_cfg),
                            every)
        if curves is None:
            right.caption(f"{measure(suite)}: {WAITING_EVAL}")
        else:
            right.plotly_chart(curves, key="headline_curves")
