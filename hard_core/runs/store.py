"""Writing a run directory: the on-disk form of the trainer's event stream.

    runs/<id>/config.json     resolved config + versions
              status.json     state, step, message (atomic: temp file, then os.replace)
              events.jsonl    one JSON object per event, appended and flushed
              snapshots/      <step>.safetensors per snapshot event
              control.json    knob changes and pause/stop requests (see control.py)
              student.safetensors, optimizer.safetensors   resumable checkpoint
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..checkpoint import atomic_write, save_model, save_optimizer, write_json
from ..config import RunConfig
from ..errors import UserError
from ..train.events import Checkpoint, Event, Snapshot, Status, StepMetrics


def versions() -> dict:
    import torchvision

    from .. import __version__

    return {"hard_core": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version()}


class RunWriter:
    """Consumes events and keeps the run directory current. `resume=True` appends to an existing run."""

    def __init__(self, run_dir: str | Path, cfg: RunConfig, resume: bool = False):
        self.dir = Path(run_dir)
        events = self.dir / "events.jsonl"
        if events.exists() and not resume:
            raise UserError(f"{self.dir} already holds a run: pass --resume to continue it, or choose another --out")
        if resume and not events.exists():
            raise UserError(f"cannot resume: {self.dir} holds no run")
        (self.dir / "snapshots").mkdir(parents=True, exist_ok=True)
        if not resume:
            write_json(self.dir / "config.json", {"config": cfg.model_dump(), "versions": versions(),
                                                  "command": sys.argv, "created": time.time()})
        self.cfg = cfg
        self.status = {"state": "starting", "step": 0, "total_steps": cfg.steps, "message": "",
                       "pid": os.getpid(), "steps_per_s": None, "updated": time.time()}
        self._events = open(events, "a", encoding="utf-8")

    def write(self, event: Event) -> None:
        record = event.to_json()
        if isinstance(event, Snapshot):
            name = f"snapshots/{event.step:06d}.safetensors"
            tensors = {k: v.contiguous() for k, v in event.tensors.items()}
            atomic_write(self.dir / name, lambda tmp: save_file(tensors, tmp))
            record["file"] = name
        elif isinstance(event, Checkpoint):
            extra = {"step": event.step, "knobs": event.knobs}
            save_model(self.dir / "student.safetensors", event.student, extra)
            save_optimizer(self.dir / "optimizer.safetensors", event.optimizer, extra)
            if event.augmentor is not None:
                save_model(self.dir / "augmentor.safetensors", event.augmentor, extra)
                save_optimizer(self.dir / "augmentor_optimizer.safetensors", event.augmentor_optimizer, extra)
        self._events.write(json.dumps(record) + "\n")
        self._events.flush()
        if isinstance(event, Status):
            self._set_status(state=event.state, step=event.step, message=event.message)
        elif isinstance(event, StepMetrics):
            self._set_status(step=event.step, steps_per_s=event.steps_per_s)

    def fail(self, message: str) -> None:
        """Record a failure (an event and the status) without touching checkpoints."""
        self.write(Status(self.status["step"], "failed", message, total_steps=self.cfg.steps))

    def close(self) -> None:
        self._events.close()

    def _set_status(self, **changes) -> None:
        self.status.update(changes, updated=time.time())
        write_json(self.dir / "status.json", self.status)
