"""Reading run directories, including ones another process is still writing."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import load_file
from torch import Tensor, nn

from ..checkpoint import load_model
from ..errors import UserError


def read_json(path: Path, default=None):
    """A JSON file, or `default` if it is missing or unreadable (e.g. mid-write by a foreign tool)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return default


class RunReader:
    """Tails `events.jsonl`: each `poll()` returns the events appended since the last one.

    A half-written last line is left for the next poll; a corrupt complete line is counted in
    `skipped` and passed over, so one bad write never hides the rest of a run.
    """

    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)
        self.events: list[dict] = []
        self.skipped = 0
        self._offset = 0

    def poll(self) -> list[dict]:
        try:
            with open(self.dir / "events.jsonl", "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n") + 1  # only whole lines
        new = []
        for line in chunk[:end].splitlines():
            try:
                new.append(json.loads(line))
            except json.JSONDecodeError:
                self.skipped += 1
        self._offset += end
        self.events.extend(new)
        return new

    def status(self) -> dict:
        return read_json(self.dir / "status.json", {})

    def config(self) -> dict:
        return read_json(self.dir / "config.json", {}).get("config", {})

    def snapshot(self, event: dict) -> dict[str, Tensor]:
        return load_file(str(self.dir / event["file"]))


@dataclass
class RunInfo:
    id: str
    path: Path
    state: str
    step: int
    total_steps: int
    updated: float


def list_runs(root: str | Path = "runs") -> list[RunInfo]:
    """Every run directory under `root`, newest first."""
    runs = []
    for cfg in Path(root).glob("*/config.json"):
        st = read_json(cfg.parent / "status.json", {})
        runs.append(RunInfo(cfg.parent.name, cfg.parent, st.get("state", "unknown"), st.get("step", 0),
                            st.get("total_steps", 0), st.get("updated", cfg.stat().st_mtime)))
    return sorted(runs, key=lambda r: r.updated, reverse=True)


def final_metrics(run_dir: str | Path) -> dict:
    """The last evaluation of a run: {"step", "student": {suite: acc}, "teacher": {suite: acc}, "agree"}.

    Empty dicts where the run has not evaluated yet (or has no teacher).
    """
    out = {"step": 0, "student": {}, "teacher": {}, "agree": {}}
    reader = RunReader(run_dir)
    for e in reader.poll():
        if e.get("kind") == "eval":
            out[e["model"]] = e["acc"]
            if e["model"] == "student":
                out["step"], out["agree"] = e["step"], e.get("agree", {})
    return out


def load_student(run_dir: str | Path, device: str = "cpu") -> nn.Module:
    """The trained student of a run, in eval mode, with `.input_shape`; maps [0, 1] images to logits.

    >>> student = load_student("runs/R")
    >>> logits = student(torch.rand(8, *student.input_shape))
    """
    run_dir = Path(run_dir)
    path = run_dir / "student.safetensors" if run_dir.is_dir() else run_dir
    if run_dir.is_dir() and not path.is_file():
        raise UserError(f"{run_dir} has no student.safetensors yet (has the run written a checkpoint?)")
    return load_model(path, device)
