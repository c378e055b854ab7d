"""The lab's warm engine process: it loads what a run needs ahead, then runs one run's command line.

    python -m app.lab.standby --preload mnist5k:40    # from the repo root; then one JSON line on stdin:
                                                      # {"argv": ["train", ...], "log": "<file>"}

The lab's scheduler keeps one ready, so pressing Start does not wait for torch and torchvision to import
and the digits to load: on 2 cores the first images come 1-2 s after Start instead of ~5 s. With the
request it sends its output to `log` and runs `python -m hard_core <argv>` in this process, recording that
command (not this module) in the run's config.json. The loading happens in a background thread while this
one waits on stdin, so end of input (the lab went away) ends the process at once, even mid-load.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path


def preload_spec(text: str) -> tuple[str, int | None]:
    """'mnist5k:40' -> ('mnist5k', 40); 'mnist1d' -> ('mnist1d', None)."""
    name, _, canvas = text.partition(":")
    try:
        return name.strip(), int(canvas) if canvas.strip() else None
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected DATASET[:CANVAS], e.g. mnist5k:40, got {text!r}") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m app.lab.standby", description=__doc__.splitlines()[0])
    p.add_argument("--preload", type=preload_spec, action="append", default=[], metavar="DATASET[:CANVAS]",
                   help="a data set to load ahead (repeatable), e.g. mnist5k:40")
    return p


def _warm_up(datasets: list[tuple[str, int | None]]) -> None:
    """Import the engine and load the data sets (their parsed files stay cached in this process)."""
    import hard_core.cli  # noqa: F401 - torch, torchvision and every command
    from hard_core.data import load_dataset

    for name, canvas in datasets:
        try:
            load_dataset(name, canvas=canvas, download=False)
        except Exception:  # noqa: BLE001 - only a head start: the run loads it again and reports any error
            pass


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    loader = threading.Thread(target=_warm_up, args=(args.preload,), name="preload", daemon=True)
    loader.start()
    line = sys.stdin.readline()
    if not line.strip():  # end of input: the lab went away; do not wait for the loading to finish
        os._exit(0)
    loader.join()
    request = json.loads(line)
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.stdin = open(os.devnull)
    import hard_core
    from hard_core.cli import main as cli_main

    # what `python -m hard_core <argv>` has in sys.argv: the run directory records it as the command
    sys.argv = [str(Path(hard_core.__file__).with_name("__main__.py")), *request["argv"]]
    return cli_main(request["argv"])


if __name__ == "__main__":
    sys.exit(main())
