"""A sweep: the product of several values of run options, each combination (and seed) one run directory, and
the final accuracy of every combination as mean ± std over its seeds (paper 2's Fig. 1 is such a sweep:
steps x loss x augmentation x seed). The `sweep` command trains it (`cells.run_or_reuse`) and writes
sweep.json, sweep.md and sweep.png; nothing here trains.

>>> plan = expand({"world": "scarce", "canvas": 40}, {"steps": [300, 1200], "loss": ["ce", "kd"], "seed": [0, 1]})
>>> [name for name, values, cfg in plan][:2]       # ['steps=300-loss=ce-seed=0', 'steps=300-loss=ce-seed=1']
"""
from __future__ import annotations

import hashlib
import itertools
import re
import statistics
from pathlib import Path
from typing import NamedTuple

from ..config import RunConfig, validate
from ..errors import UserError
from ..worlds import get_world
from .matrix import BOOKKEEPING, world_suites
from .reader import final_metrics

LEGEND = ("Final accuracy of the student in %, mean ± std over {n} seed(s) (sample std; n = 1: no std), at the "
          "last step of each run (no best-epoch picking).")


OWN_COMMAS = ("suites", "affine", "log")  # options whose one value holds commas: their values part at ';'


def separator(name: str) -> str:
    return ";" if name in OWN_COMMAS else ","


def parse_values(name: str, text: str) -> list[str]:
    """The values of option `name` (comma-separated; ';' for OWN_COMMAS), in order, without repeats; each is
    validated later, as the field validates it."""
    values = [v.strip() for v in str(text).split(separator(name))]
    if any(not v for v in values):
        raise UserError(f"--{name.replace('_', '-')}: an empty value in {text!r}")
    return list(dict.fromkeys(values))


def expand(base: dict, swept: dict[str, list]) -> list[tuple[str, dict, RunConfig]]:
    """(directory name, swept values, config) per combination, in the order the options were given. Each config
    is validated as `train` validates it (one line for a bad value). Unless the base sets them, a run evaluates
    (and probes, snapshots, checkpoints) once, at its end, on the world's own suite: a sweep reports nothing
    else, and every evaluation would cost time."""
    plan = []
    for combo in itertools.product(*swept.values()):
        values = dict(zip(swept, combo))
        data = {**base, **values}
        cfg = validate(RunConfig, data)
        extra = {k: cfg.steps for k in BOOKKEEPING if k not in data}
        if "log_every" not in data:
            extra["log_every"] = max(1, cfg.steps // 20)
        if "suites" not in data:
            extra["suites"] = world_suites(cfg)
        plan.append((run_name(values), values, validate(RunConfig, {**data, **extra})))
    return plan


def run_name(values: dict) -> str:
    """'steps=300-loss=kd-seed=0': readable, and safe as a folder name (a hash is added where characters had to
    be replaced, so two different values never share a folder)."""
    text = "-".join(f"{k}={v}" for k, v in values.items()) or "run"
    safe = re.sub(r"[^A-Za-z0-9._=+-]", "_", text)
    return safe if safe == text else f"{safe[:80]}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def metrics_of(run_dir: Path, cfg: RunConfig) -> dict:
    """{"test": acc, <world suite>: acc}: the student's final accuracies that a sweep reports."""
    acc = final_metrics(run_dir)["student"]
    return {suite: acc.get(suite) for suite in dict.fromkeys(["test", get_world(cfg.world).suite])}


def summarise(settings: dict, command: str, runs: list[dict]) -> dict:
    """sweep.json: the settings, the command, every run ({"dir", "values", "metrics", "reused", "error"}) and one
    group per combination of the swept options other than the seed, with mean, std and n per metric."""
    swept = [k for k in settings["swept"] if k != "seed"]
    groups: dict[tuple, dict] = {}
    for r in runs:
        key = tuple(r["values"][k] for k in swept)
        g = groups.setdefault(key, {"values": {k: r["values"][k] for k in swept}, "runs": []})
        g["runs"].append(r["dir"])
        for metric, value in (r.get("metrics") or {}).items():
            g.setdefault("acc", {}).setdefault(metric, []).append(value)
    for g in groups.values():
        g["metrics"] = {m: stats(v) for m, v in g.pop("acc", {}).items()}
    seeds = len(settings["swept"].get("seed", [0]))
    return {"settings": settings, "command": command, "legend": LEGEND.format(n=seeds), "runs": runs,
            "groups": list(groups.values())}


def stats(values: list) -> dict:
    """{"mean", "std", "n"} of the runs that have a number; std is the sample std (None for n < 2)."""
    got = [v for v in values if v is not None]
    return {"mean": statistics.fmean(got) if got else None,
            "std": statistics.stdev(got) if len(got) > 1 else None, "n": len(got)}


def cell_text(s: dict) -> str:
    if s["mean"] is None:
        return "failed"
    return f"{100 * s['mean']:.1f}" + ("" if s["std"] is None else f" ± {100 * s['std']:.1f}")


def rows(sweep: dict) -> list[list[str]]:
    """A header and one row per group: the swept values, then each metric as 'mean ± std' in %."""
    swept = [k for k in sweep["settings"]["swept"] if k != "seed"]
    metrics = list(dict.fromkeys(m for g in sweep["groups"] for m in g["metrics"]))
    out = [[*swept, *(f"{m} acc %" for m in metrics), "seeds"]]
    for g in sweep["groups"]:
        n = max((s["n"] for s in g["metrics"].values()), default=0)
        out.append([str(g["values"][k]) for k in swept] +
                   [cell_text(g["metrics"].get(m, stats([]))) for m in metrics] + [str(n)])
    return out


def markdown(sweep: dict) -> str:
    table = rows(sweep)
    lines = ["| " + " | ".join(table[0]) + " |", "|---" * len(table[0]) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in table[1:]]
    return "\n".join(["# Sweep", "", sweep["legend"], "", *lines, "", f"Made with: `{sweep['command']}`", ""])


def text_table(sweep: dict) -> str:
    table = rows(sweep)
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return "\n".join([sweep["legend"], "", *("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in table)])


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class Series(NamedTuple):
    """What a sweep's figure draws: the x values in order, whether they are numbers (then drawn to scale, on a
    log scale over a factor of 10 or more), each x value's position, and one line per combination of the other
    swept options: {label: [(position, mean %, std %, n), ...]} sorted by position (std 0 for one seed), and
    each line's values of those options ({label: {option: value}})."""
    xs: list[str]
    numeric: bool
    log: bool
    position: dict
    lines: dict[str, list[tuple[float, float, float, int]]]
    values: dict[str, dict]


def series(sweep: dict, x: str, metric: str = "test") -> Series:
    """`metric`'s final accuracy against option `x` (the groups' mean ± std over seeds, `summarise`), one line
    per combination of the other swept options, as sweep.png and the lab's Learn page draw it."""
    xs = list(dict.fromkeys(str(g["values"][x]) for g in sweep["groups"]))
    numbers = [_number(v) for v in xs]
    numeric = all(n is not None for n in numbers)
    position = dict(zip(xs, numbers)) if numeric else {v: i for i, v in enumerate(xs)}
    others = [k for k in sweep["settings"]["swept"] if k not in ("seed", x)]
    lines: dict[str, list] = {}
    values: dict[str, dict] = {}
    for g in sweep["groups"]:
        label = ", ".join(f"{k}={g['values'][k]}" for k in others) or metric
        s = g["metrics"].get(metric, stats([]))
        if s["mean"] is not None:
            lines.setdefault(label, []).append((position[str(g["values"][x])], 100 * s["mean"],
                                                100 * (s["std"] or 0), s["n"]))
            values[label] = {k: g["values"][k] for k in others}
    log = bool(numeric and numbers and min(numbers) > 0 and max(numbers) >= 10 * min(numbers))
    return Series(xs, numeric, log, position, {label: sorted(points) for label, points in lines.items()}, values)


def write_png(sweep: dict, path: str | Path, x: str, metric: str = "test") -> None:
    """sweep.png: `series(sweep, x, metric)`: one line (mean, error bars ± std over seeds) per combination of the
    other swept options; a numeric x to scale (log scale over a factor of 10 or more), other values side by side."""
    import matplotlib

    matplotlib.use("Agg")  # no display: a file only
    import matplotlib.pyplot as plt

    from ..checkpoint import atomic_write

    drawn = series(sweep, x, metric)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, points in drawn.lines.items():
        ax.errorbar(*list(zip(*points))[:3], label=label, marker="o", capsize=3)
    if drawn.log:
        ax.set_xscale("log")
    ax.set_xticks(list(drawn.position.values()), drawn.xs)
    ax.minorticks_off()
    ax.set_xlabel(x)
    ax.set_ylabel(f"final {metric} accuracy (%)")
    seeds = len(sweep["settings"]["swept"].get("seed", [0]))
    ax.set_title(f"mean ± std over {seeds} seed(s)" if seeds > 1 else "one seed", fontsize=10)
    ax.grid(alpha=0.3)
    if len(drawn.lines) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
