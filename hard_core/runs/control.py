"""control.json: how a dashboard (or a person with an editor) steers a running run.

    {"lr": 0.0005, "temperature": 2.0, "alpha": 1.0, "state": "run" | "pause" | "stop"}

`request()` merges changes atomically; `ControlFile` is the cheap poll the trainer calls every step
(it re-reads the file only when its modification time changes). Knob values are checked by the one
validator, `hard_core.config.check_knobs`: `request()` refuses a bad one; the trainer ignores one that
reaches control.json anyway (and a file that is not a JSON object), keeps its current values and says so.
"""
from __future__ import annotations

from pathlib import Path

from ..checkpoint import write_json
from ..config import check_knobs
from ..errors import UserError
from ..jsonfile import load

STATES = ("run", "pause", "stop")


UNREADABLE = "unreadable"  # the key under which ControlFile reports a control.json it could not use


def read_control(run_dir: str | Path) -> dict:
    """control.json's requests; {} when it is missing or is not a JSON object."""
    data = _parse(Path(run_dir) / "control.json")
    return data if isinstance(data, dict) else {}


def _parse(path: Path):
    """The JSON value in `path`; None when missing; a str saying why when it cannot be read as JSON."""
    value, why = load(path)
    return why or value


def request(run_dir: str | Path, **changes) -> dict:
    """Merge knob changes / a state request into control.json; returns the new content."""
    if "state" in changes and changes["state"] not in STATES:
        raise ValueError(f"state must be one of {STATES}, got {changes['state']!r}")
    changes = {k: v for k, v in changes.items() if v is not None}
    refused = check_knobs(changes)[1]
    if refused:
        raise UserError("invalid knob value: " + "; ".join(refused))
    data = {**read_control(run_dir), **changes}
    write_json(Path(run_dir) / "control.json", data)
    return data


class ControlFile:
    """Callable for `train(control=...)`: the current requests, re-read only when the file changes. A file
    that is not a JSON object leaves the last good requests in force, with a line saying why under the
    key UNREADABLE (which the trainer reports once)."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / "control.json"
        self._mtime, self._data, self._good = None, {}, {}

    def __call__(self) -> dict:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return self._data
        if mtime != self._mtime:
            self._mtime, data = mtime, _parse(self.path)
            if isinstance(data, dict) or data is None:
                self._good = self._data = data or {}
            else:
                why = data if isinstance(data, str) else f"control.json holds a {type(data).__name__}, not an object"
                self._data = {**self._good, UNREADABLE: why}
        return self._data
