"""`sweep`: train the product of comma-separated values of any run options, e.g. paper 2's Fig. 1 on the scarce
world (final accuracy against training length, KD and CE, with and without augmentation, 3 seeds):

    python -m hard_core sweep --world scarce --steps 300,1200,4800 --loss ce,kd --augment none,flip-crop \\
        --seed 0,1,2 --out docs/sweeps/paper2

Every option of `train` takes a comma list (';' for --suites, --affine and --log, whose own values hold
commas); each value is validated as `train` validates it. Each combination
is one run directory under --out (named by its swept values), trained with a progress bar; a directory that
already holds the finished run of the same config is reused, so an interrupted sweep continues where it
stopped, and a second sweep or matrix on the same --out waits for the first. It writes sweep.json (settings,
command, every run and each combination's mean ± std over seeds), sweep.md and sweep.png (final accuracy
against the --x option). Unless given, runs evaluate once, at the end, on the world's own suite.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from ..checkpoint import atomic_write, write_json
from ..config import RunConfig, load_config_file
from ..errors import UserError
from ..runs.cells import hold_folder, reusable, run_or_reuse
from ..runs.sweep import expand, markdown, metrics_of, parse_values, separator, summarise, text_table, write_png
from .flags import add_config_flags
from .matrix import show_step

DEFAULTS = {"teacher": "default", "canvas": 40}  # as `matrix`: the world's shipped teacher, on its canvas


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="train the product of comma-separated option values; mean ± std over seeds",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="FILE", help="YAML or JSON file of options (single values); flags override it")
    p.add_argument("--out", metavar="DIR", help="folder of the runs and the reports [default: runs/sweep-<time>]")
    p.add_argument("--x", metavar="OPTION", help="the swept option on the plot's x axis [default: steps if swept, "
                   "else the first swept option]")
    add_config_flags(p, lists=True, defaults=DEFAULTS)


def options(args) -> tuple[dict, dict[str, list[str]]]:
    """(the options with one value, the swept options with their values), flags over --config over DEFAULTS."""
    given = {k: getattr(args, k) for k in RunConfig.model_fields if getattr(args, k, None) is not None}
    base = {**DEFAULTS, **(load_config_file(args.config) if args.config else {})}
    swept = {}
    for name, text in given.items():
        values = parse_values(name, text)
        if len(values) == 1:
            base[name] = values[0]
        else:
            swept[name] = values
    return base, swept


def x_option(args, swept: dict) -> str | None:
    if args.x is not None:
        name = args.x.removeprefix("--").replace("-", "_")
        if name not in swept or name == "seed":
            raise UserError(f"--x {args.x}: not a swept option (swept: {', '.join(swept) or 'none'}; seeds are "
                            "averaged over)")
        return name
    return "steps" if "steps" in swept else next((k for k in swept if k != "seed"), None)


def command_line(args, base: dict, swept: dict, out: Path) -> str:
    """The command that makes this sweep again, every given option spelled out."""
    flags = [f"--{k.replace('_', '-')}" + f"={v}" for k, v in base.items()]
    flags += [f"--{k.replace('_', '-')}=" + separator(k).join(map(str, v)) for k, v in swept.items()]
    flags += [f"--x={args.x}"] if args.x else []
    return shlex.join(["python", "-m", "hard_core", "sweep", *flags, f"--out={out}"])


def run(args) -> int:
    from tqdm import tqdm

    base, swept = options(args)
    x = x_option(args, swept)
    plan = expand(base, swept)  # every value validated before anything trains
    out = Path(args.out or f"runs/sweep-{time.strftime('%Y%m%d-%H%M%S')}")
    results, failed, trained = [], [], 0
    with hold_folder(out):
        for name, _, cfg in plan:
            reusable(out / name, cfg)  # a folder of another config: refused now, not after an hour
        bar = tqdm(plan, desc="sweep", unit="run", file=sys.stderr, dynamic_ncols=True)
        for name, values, cfg in bar:
            bar.set_description(name)
            result = {"dir": name, "values": values, "config": cfg.model_dump(mode="json")}
            try:
                done = run_or_reuse(cfg, out / name, on_event=lambda e, n=cfg.steps: show_step(bar, e, n))
                trained += done
                result.update(reused=not done, metrics=metrics_of(out / name, cfg), error=None)
            except UserError as e:
                result.update(reused=False, metrics=None, error=str(e))
                failed.append(f"{name}: {e}")
                bar.write(f"failed: {failed[-1]}", file=sys.stderr)
            results.append(result)
        bar.close()
        settings = {"base": base, "swept": swept, "x": x}
        sweep = summarise(settings, command_line(args, base, swept, out), results)
        write_json(out / "sweep.json", sweep)
        atomic_write(out / "sweep.md", lambda tmp: Path(tmp).write_text(markdown(sweep)))
        if x is not None:
            write_png(sweep, out / "sweep.png", x)
    print(text_table(sweep))
    print(f"\nwrote {out / 'sweep.md'}, sweep.json" + (", sweep.png" if x else "") +
          f" ({trained} runs trained, {len(plan) - trained} reused)")
    if failed:
        raise UserError(f"{len(failed)} of {len(plan)} runs failed; the first: {failed[0]}")
    return 0
