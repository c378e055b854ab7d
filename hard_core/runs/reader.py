"""Reading run directories, including ones another process is still writing."""
from __future__ import annotations

import math
import os
import socket
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import Tensor, nn

from pydantic import TypeAdapter, ValidationError

from ..checkpoint import load_model, read_checkpoint_extra
from ..config import RunConfig
from ..errors import UserError
from ..jsonfile import STATUS, parse_lines, read_dict, read_json, typed  # noqa: F401  (the one reader)


class RunReader:
    """Tails `events.jsonl`: each `poll()` returns the events appended since the last one.

    A half-written last line is left for the next poll; a corrupt complete line (not UTF-8, not JSON, or
    not an event of its kind's shape: `jsonfile.valid_event`) is counted in `skipped` and passed over, so one bad write never hides the rest of a run.
    When a resume rewrites the history (a new file), the reader starts over: `events` is then the new
    history, and `poll()` returns all of it.
    """

    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)
        self.events: list[dict] = []
        self.skipped = 0
        self._offset, self._inode = 0, None

    def poll(self) -> list[dict]:
        try:
            with open(self.dir / "events.jsonl", "rb") as f:
                st = os.fstat(f.fileno())
                if st.st_ino != self._inode or st.st_size < self._offset:  # a new file: start over
                    self.events, self.skipped, self._offset, self._inode = [], 0, 0, st.st_ino
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        lines, skipped = parse_lines(chunk)  # only whole lines
        new = [e for e in lines if e["kind"] != "snapshot" or self._readable(e)]
        self.skipped += skipped + len(lines) - len(new)
        self._offset += chunk.rfind(b"\n") + 1
        self.events.extend(new)
        return new

    def status(self) -> dict:
        """status.json; a run whose writer process is gone without saying so reads as state "died"."""
        return run_status(self.dir)

    def config(self) -> dict:
        return typed_config((read_dict(self.dir / "config.json") or {}).get("config"))

    def _readable(self, event: dict) -> bool:
        """Whether a snapshot event's file is a safetensors file holding the tensors it names (its header
        only is read; RunWriter writes the file before the line, so a good run's are always there)."""
        try:
            with safe_open(str(self.dir / event["file"]), "pt") as f:
                return set(event.get("keys", ())) <= set(f.keys())
        except (OSError, ValueError, SafetensorError):
            return False

    def snapshot(self, event: dict) -> dict[str, Tensor]:
        return load_file(str(self.dir / event["file"]))


@lru_cache(maxsize=None)
def _field_type(name: str) -> TypeAdapter:
    field = RunConfig.model_fields[name]
    return TypeAdapter(Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation)


def _fits(name: str, value) -> bool:
    if isinstance(value, float) and not math.isfinite(value):  # RunConfig refuses NaN and inf (allow_inf_nan)
        return False
    try:
        _field_type(name).validate_python(value, strict=True)
        return True
    except ValidationError:
        return False


def typed_config(config) -> dict:
    """A saved config (config.json's "config", lab.json's) as a dict whose RunConfig fields each hold a value
    of their type and bounds: a field that does not is dropped (reads as its default), so a viewer can use
    any field it gets; unknown fields are kept as they are."""
    if not isinstance(config, dict):
        return {}
    return {k: v for k, v in config.items() if k not in RunConfig.model_fields or _fits(k, v)}


@dataclass
class RunInfo:
    id: str
    path: Path
    state: str
    step: int
    total_steps: int
    updated: float


ALIVE = ("starting", "running", "paused")  # states in which the run's process should be alive
HOST = socket.gethostname()


def pid_alive(pid) -> bool:
    try:
        return isinstance(pid, int) and pid > 0 and os.kill(pid, 0) is None
    except (ProcessLookupError, OverflowError):  # gone, or a pid no process can have
        return False
    except PermissionError:  # alive, but another user's
        return True


def run_status(run_dir: str | Path) -> dict:
    """A run's status.json ({} if unreadable). A run that claims to be alive while its process (on this
    host) is gone, e.g. killed by SIGKILL or a power cut, reads as state "died"."""
    st = typed(read_json(Path(run_dir) / "status.json"), STATUS)  # fields of the wrong type dropped
    if st.get("state") in ALIVE and st.get("host", HOST) == HOST and "pid" in st and not pid_alive(st["pid"]):
        st = {**st, "state": "died", "message": f"the process (pid {st['pid']}) ended without a word; "
              "continue it with --resume"}
    return st


def list_runs(root: str | Path = "runs") -> list[RunInfo]:
    """Every run directory under `root`, newest first."""
    runs = []
    for cfg in Path(root).glob("*/config.json"):
        st = run_status(cfg.parent)
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


CHECKPOINT = "checkpoint.safetensors"  # a run's one checkpoint file (written by `store.RunWriter`)


def checkpoint_path(run_dir: str | Path) -> Path:
    """The checkpoint of a run directory (a model file is its own checkpoint); one line if there is none."""
    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT if run_dir.is_dir() else run_dir
    if run_dir.is_dir() and not path.is_file():
        raise UserError(f"{run_dir} has no checkpoint yet (is the run past its first checkpoint?)")
    return path


def checkpoint_step(run_dir: str | Path) -> int | None:
    """The step of a run's checkpoint (None for a model file)."""
    return read_checkpoint_extra(checkpoint_path(run_dir)).get("step")


def load_student(run_dir: str | Path, device: str = "cpu", model: nn.Module | None = None) -> nn.Module:
    """The trained student of a run (or of a model file), in eval mode, with `.input_shape`; maps [0, 1]
    images to logits. Every registered or library student (`mlp`, `timm:NAME`, ...) is rebuilt from the
    checkpoint's spec; a student that was your own module (`hard_core.distil`) is loaded into `model`.

    >>> student = load_student("runs/R")
    >>> logits = student(torch.rand(8, *student.input_shape))
    """
    return load_model(checkpoint_path(run_dir), device, body=model)
