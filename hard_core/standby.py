"""A warm engine process: it imports everything a run needs, then waits for one run's command line.

    python -m hard_core.standby      # then one JSON line on stdin: {"argv": ["train", ...], "log": "<file>"}

The lab keeps one ready, so pressing Start does not wait for torch and torchvision to import and the
digits to load: on 2 cores the first images come 1-2 s after Start instead of ~5 s. With the request it sends its output to `log` and runs
`python -m hard_core <argv>` in this process. End of input (the lab went away) ends it quietly.
"""
from __future__ import annotations

import json
import os
import sys


def main() -> int:
    from hard_core.cli import main as cli_main
    from hard_core.data import load_dataset

    load_dataset("mnist5k", canvas=40)  # parses the built-in digits once: the lab's default data
    line = sys.stdin.readline()
    if not line.strip():
        return 0
    request = json.loads(line)
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.stdin = open(os.devnull)
    return cli_main(request["argv"])


if __name__ == "__main__":
    sys.exit(main())
