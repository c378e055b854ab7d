"""Paper 2's headline, "Knowledge distillation thrives on data augmentation" (its Fig. 1), on the Learn page,
Streamlit-free: the shipped sweep (docs/sweeps/paper2-scarce/sweep.json, made by `python -m hard_core sweep`)
as an interactive figure, final test accuracy against steps, one line per loss x augmentation, mean ± std over
seeds; and one of its points trained live with its twin of the other loss (KD + flip-crop with CE + flip-crop).

The numbers are grouped by the engine's own `hard_core.runs.sweep` (`summarise`: mean ± std over seeds;
`series`: the lines sweep.png draws), from the per-seed numbers in the file, which is read by the one JSON
reader (`hard_core.jsonfile`): a missing, corrupt or foreign file is one line (`Loaded.problem`), never an error.

>>> got = load()                                  # Loaded(sweep, None), or Loaded(None, "one line")
>>> fig = figure(got.sweep)                       # the Learn page draws it
>>> run_id = open_point(got.sweep, "flip-crop", 1200, seed=0, owner="k3y")   # the run; its CE twin beside it
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import plotly.graph_objects as go

from hard_core.config import RunConfig, same_run, twin_config
from hard_core.errors import UserError
from hard_core.jsonfile import is_num, is_str
from hard_core.jsonfile import load as load_json
from hard_core.runs.sweep import series, summarise

from . import runs
from .figures import PALETTE, layout
from .form import LAB_LIMITS
from .live import method, saved_config
from .matrix import watched
from .scheduler import REPO

SHIPPED = REPO / "docs" / "sweeps" / "paper2-scarce" / "sweep.json"
X = "steps"  # the figure's x axis: training length
CAPTION = ("What it shows: on this toy (the scarce world: 50 training digits per class, an MLP student, the shipped "
           "teacher), KD with flip-crop keeps gaining from longer training, while CE gains little and with "
           "flip-crop stays below plain CE at every length. What it does not show: where each method's best "
           "length lies (no line turns down by 4800 steps, so CE's overfitting is not seen), nor other worlds, "
           "augmentations or students. With all 400 digits per class the same sweep shows the same gap (KD + "
           "flip-crop 91.7 to 97.6, CE 95.1 to 94.8; docs/results.md). Accuracy at each run's last step, no "
           "best-step picking.")


class Loaded(NamedTuple):
    sweep: dict | None  # the sweep with its groups recomputed from its runs, or None
    problem: str | None  # one line when there is nothing to draw


def path() -> Path:
    """The sweep the Learn page shows: $HARD_LAB_SWEEP if set, else the shipped paper-2 sweep."""
    return Path(os.environ.get("HARD_LAB_SWEEP") or SHIPPED)


def _run(r) -> dict | None:
    """A run entry of sweep.json with the types the figure needs ({"dir", "values", "metrics", "config"}), or None."""
    if not isinstance(r, dict) or not isinstance(r.get("values"), dict) or not isinstance(r.get("metrics"), dict):
        return None
    values = {k: str(v) for k, v in r["values"].items() if is_str(k) and (is_str(v) or is_num(v))}
    metrics = {k: float(v) for k, v in r["metrics"].items() if is_str(k) and is_num(v)}
    return {"dir": str(r.get("dir")), "values": values, "metrics": metrics,
            "config": r.get("config") if isinstance(r.get("config"), dict) else None}


def load(where: Path | None = None) -> Loaded:
    """The sweep at `where` (default `path()`), its mean ± std per group recomputed from its runs' own numbers
    (`sweep.summarise`), or a one-line problem: missing, unreadable, or not a sweep over steps."""
    where = where or path()
    data, why = load_json(where)
    if data is None:
        return Loaded(None, f"The paper-2 figure is not drawn: {why or f'there is no {where.name} at {where}'}.")
    settings = data.get("settings") if isinstance(data, dict) else None
    swept = settings.get("swept") if isinstance(settings, dict) else None
    if not isinstance(swept, dict) or X not in swept or not all(is_str(k) and isinstance(v, list)
                                                                 for k, v in swept.items()):
        return Loaded(None, f"The paper-2 figure is not drawn: {where.name} is not a sweep over {X}.")
    good = [r for r in map(_run, data.get("runs") if isinstance(data.get("runs"), list) else [])
            if r is not None and set(swept) <= set(r["values"])]
    if not any(r["metrics"].get("test") is not None for r in good):
        return Loaded(None, f"The paper-2 figure is not drawn: {where.name} holds no run with a test accuracy.")
    command = data.get("command") if is_str(data.get("command")) else "?"
    return Loaded(summarise({"swept": swept, "x": X}, command, good), None)


def name(values: dict) -> str:
    """A line's name as the lab names methods (`live.method`): 'KD + flip-crop', 'CE'; other options after it."""
    rest = [f"{k}={v}" for k, v in values.items() if k not in ("loss", "augment")]
    return ", ".join([method({"loss": values.get("loss", "kd"), "augment": values.get("augment")}), *rest])


def figure(sweep: dict) -> go.Figure:
    """Final test accuracy (%) against steps: one line per loss x augmentation (colour: the loss; dashed: no
    augmentation), error bars ± std over seeds; steps on a log scale, ticks at the swept lengths."""
    drawn = series(sweep, X, "test")
    losses = list(dict.fromkeys(v.get("loss") for v in drawn.values.values()))
    fig = go.Figure()
    for label, points in drawn.lines.items():
        values = drawn.values[label]
        x, mean, std, n = zip(*points)
        plain = values.get("augment") in (None, "none")
        fig.add_trace(go.Scatter(
            x=list(x), y=[round(m, 2) for m in mean], name=name(values), mode="lines+markers",
            error_y=dict(type="data", array=[round(s, 2) for s in std], visible=True, thickness=1.5, width=4),
            line=dict(color=PALETTE[losses.index(values.get("loss")) % len(PALETTE)], width=3,
                      dash="dash" if plain else "solid"),
            customdata=[[round(s, 1), k] for s, k in zip(std, n)],
            hovertemplate=f"<b>{name(values)}</b><br>%{{x}} steps<br>test accuracy %{{y:.1f}} ± %{{customdata[0]}}"
                          " %<br>%{customdata[1]} seed(s)<extra></extra>"))
    seeds = max((k for points in drawn.lines.values() for *_, k in points), default=0)
    fig.update_xaxes(title_text="training steps (log scale)" if drawn.log else "training steps",
                     type="log" if drawn.log else None, tickvals=list(drawn.position.values()), ticktext=drawn.xs)
    fig.update_yaxes(title_text="final test accuracy (%)")
    return layout(fig, f"KD keeps gaining from longer training with augmentation, CE does not (mean ± std, "
                       f"{seeds} seeds)", "paper2-sweep", height=380)


def gains(sweep: dict) -> str:
    """Each line's change from the shortest to the longest training, in points: 'From 300 to 4800 steps: KD +
    flip-crop +5.8 points, ...'."""
    drawn = series(sweep, X, "test")
    parts = [f"{name(drawn.values[label])} {points[-1][1] - points[0][1]:+.1f}"
             for label, points in drawn.lines.items() if len(points) > 1]
    return f"From {drawn.xs[0]} to {drawn.xs[-1]} steps (points of test accuracy): {', '.join(parts)}." if parts else ""


def points(sweep: dict) -> dict[tuple[str, int, int], dict]:
    """The sweep's KD runs that the Learn page can train live: (augment, steps, seed) -> the run's config (as
    written in sweep.json, checked when it is opened)."""
    out = {}
    for r in sweep["runs"]:
        v = r["values"]
        if v.get("loss", "kd") == "kd" and r["config"] is not None and str(v.get(X, "")).isdigit() \
                and str(v.get("seed", "0")).isdigit():
            out[(v.get("augment", "none"), int(v[X]), int(v.get("seed", 0)))] = r["config"]
    return dict(sorted(out.items(), key=lambda kv: (kv[0][0] == "none", kv[0][1:])))


def point_name(augment: str, steps: int) -> str:
    """'KD + flip-crop, 1200 steps': a point of the figure's KD lines, in the figure's words."""
    return f"{method({'loss': 'kd', 'augment': augment})}, {steps} steps"


def point_config(sweep: dict, augment: str, steps: int, seed: int = 0) -> RunConfig:
    """The point's run as the Live page trains it (`matrix.watched`: its config, the Live page's cadence). A
    UserError (one line) for a point the sweep does not hold, a config that does not validate, or one the lab
    does not train (beyond its limits, a teacher other than the world's shipped one)."""
    raw = points(sweep).get((augment, steps, seed))
    if raw is None:
        raise UserError(f"the sweep has no KD run with augment {augment}, {steps} steps, seed {seed}")
    try:
        cfg = watched(RunConfig(**raw))
    except (TypeError, ValueError) as e:  # pydantic's ValidationError is a ValueError
        raise UserError(f"that run's config in the sweep is not valid: {str(e).splitlines()[0][:200]}") from None
    if cfg.teacher != "default" or cfg.steps > LAB_LIMITS["steps"] or cfg.lr > LAB_LIMITS["lr"]:
        raise UserError("the lab trains a sweep's points with the shipped teacher and within its limits only")
    return cfg


def open_point(sweep: dict, augment: str, steps: int, seed: int, owner: str) -> str:
    """The id of the run that trains the point live with its twin of the other loss (`twin_config(cfg, "loss")`:
    CE with the same augmentation, steps, seed and data): the newest lab run of the point that finished or is
    still going and has that twin (a second click trains nothing twice), else a new one, its twin beside it (the
    existing one if the lab has it) as a background run. A UserError (one line) if it cannot be queued."""
    cfg = point_config(sweep, augment, steps, seed)
    found, other = runs.find_twin(cfg), twin_config(cfg, "loss")
    twin = runs.twin_of(found) if found else None
    if twin and other is not None and same_run(saved_config(runs.run_path(twin)), other):
        return found
    return runs.submit(cfg, owner, twin="loss")
