"""control.json: how a dashboard (or a person with an editor) steers a running run.

    {"lr": 0.0005, "temperature": 2.0, "alpha": 1.0, "state": "run" | "pause" | "stop"}

`request()` merges changes atomically; `ControlFile` is the cheap poll the trainer calls every step
(it re-reads the file only when its modification time changes).
"""
from __future__ import annotations

import json
from pathlib import Path

from ..checkpoint import write_json

STATES = ("run", "pause", "stop")


def read_control(run_dir: str | Path) -> dict:
    try:
        data = json.loads((Path(run_dir) / "control.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def request(run_dir: str | Path, **changes) -> dict:
    """Merge knob changes / a state request into control.json; returns the new content."""
    if "state" in changes and changes["state"] not in STATES:
        raise ValueError(f"state must be one of {STATES}, got {changes['state']!r}")
    data = {**read_control(run_dir), **{k: v for k, v in changes.items() if v is not None}}
    write_json(Path(run_dir) / "control.json", data)
    return data


class ControlFile:
    """Callable for `train(control=...)`: the current requests, re-read only when the file changes."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / "control.json"
        self._mtime, self._data = None, {}

    def __call__(self) -> dict:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return self._data
        if mtime != self._mtime:
            self._mtime, self._data = mtime, read_control(self.path.parent)
        return self._data
