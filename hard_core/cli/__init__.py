"""`python -m hard_core`: train | pretrain | eval | tstddev | probe | compare | matrix | sweep | assets | bench.

User errors (bad flags, missing or corrupt files, shape mismatches, a diverged loss, offline
downloads) print one line and exit with code 2; SIGTERM stops the run in progress with a checkpoint and
ends the command with 143 (128 + SIGTERM); anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import signal
import sys

from ..errors import UserError
from ..runs import Stopped
from . import assets, bench, compare, evaluate, matrix, probe, sweep, train, tstddev

COMMANDS = {"train": train, "pretrain": train, "eval": evaluate, "tstddev": tstddev, "probe": probe, "compare": compare,
            "assets": assets, "bench": bench, "matrix": matrix,
            "sweep": sweep}


class Parser(argparse.ArgumentParser):
    """argparse, with a bad flag reported in one line (plus where to look) instead of usage + error."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m hard_core", description=__doc__.splitlines()[0] + " "
                                "HARD Lab's engine: knowledge distillation with hard augmentations.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        module.add_parser(sub, name)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)  # argparse itself exits 2 on bad flags
    try:
        return COMMANDS[args.command].run(args) or 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Stopped as e:
        print(e, file=sys.stderr)
        return 128 + signal.SIGTERM
