"""`compare`: one table of the final accuracies of several runs, per suite (in-domain "test" first).

Rows are runs, labelled by their directory name; `--markdown` prints a Markdown table (the README's
results table is made this way), `--json` one JSON object. `--reach SUITE` measures convergence instead:
the first evaluated step at which each run's student reaches the FIRST run's final accuracy on SUITE
(HARD's claim: fewer steps than plain KD needs; evaluate often, e.g. `--eval-every 10`).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import UserError
from ..runs import RunReader, final_metrics


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="final accuracy per suite of several runs, as one table", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="example:\n  python -m hard_core compare runs/kd runs/hard --markdown")
    p.add_argument("runs", nargs="+", help="run directories")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true", help="print a Markdown table")
    fmt.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--reach", metavar="SUITE", help="steps each run needs to reach the first run's final "
                   "accuracy on SUITE (e.g. shift)")


def labels(run_dirs: list[Path]) -> list[str]:
    """Each run's folder name, or its path as given where two share a name (a/R and b/R are two rows)."""
    names = [d.name for d in run_dirs]
    return [d.name if names.count(d.name) == 1 else str(d) for d in run_dirs]


def run(args) -> int:
    rows = {}
    run_dirs = list(map(Path, args.runs))
    for label, run_dir in zip(labels(run_dirs), run_dirs):
        if not (run_dir / "events.jsonl").is_file():
            raise UserError(f"{run_dir} is not a run directory (no events.jsonl)")
        metrics = final_metrics(run_dir)
        if not metrics["student"]:
            raise UserError(f"{run_dir} has not been evaluated yet")
        rows[label] = metrics
    if args.reach:
        return _reach(run_dirs, rows, args.reach)
    if args.json:
        print(json.dumps({name: {"step": m["step"], "acc": m["student"]} for name, m in rows.items()}))
        return 0
    suites = list(dict.fromkeys(s for m in rows.values() for s in m["student"]))
    cells = [["run", "step", *suites]] + [[name, str(m["step"]), *(_pct(m["student"].get(s)) for s in suites)]
                                          for name, m in rows.items()]
    if args.markdown:
        lines = ["| " + " | ".join(r) + " |" for r in cells]
        lines.insert(1, "|" + "---|" * len(cells[0]))
    else:
        widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
        lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    print("\n".join(lines))
    return 0


def _pct(acc: float | None) -> str:
    return "-" if acc is None else f"{100 * acc:.1f}"


def _reach(run_dirs: list[Path], rows: dict, suite: str) -> int:
    first = rows[labels(run_dirs)[0]]
    if suite not in first["student"]:
        raise UserError(f"{run_dirs[0]} was not evaluated on suite '{suite}'")
    target = first["student"][suite]
    print(f"steps to reach {_pct(target)}% on {suite} (the final accuracy of {labels(run_dirs)[0]}, step {first['step']}):")
    for name, run_dir in zip(labels(run_dirs), run_dirs):
        evals = [e for e in RunReader(run_dir).poll() if e.get("kind") == "eval" and e["model"] == "student"]
        step = next((e["step"] for e in evals if e["acc"].get(suite, -1.0) >= target), None)
        last = evals[-1]["step"] if evals else 0
        print(f"  {name}: " + (f"step {step}" if step is not None else f"not reached in {last} steps"))
    return 0
