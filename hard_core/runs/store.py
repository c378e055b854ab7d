"""Writing a run directory: the on-disk form of the trainer's event stream.

    runs/<id>/config.json              resolved config + versions + command (+ each resume's knob overrides)
              status.json              state, step, message, pid (atomic: temp file, then os.replace)
              events.jsonl             one JSON object per event, appended and flushed
              snapshots/               <step>.safetensors per snapshot event
              control.json             knob changes and pause/stop requests (see control.py)
              checkpoint.safetensors   the resumable state: student, optimizer, augmentor (+ its optimizer),
                                       step, knobs, elapsed time, in one file replaced atomically
              lock                     held (flock) by the one process writing the run, for its whole life

Under torchrun only rank 0 writes: on the other ranks a RunWriter does nothing (they run the same loop,
and rank 0 records it); config.json records the world size and backend. A second writer is refused while
the first lives; the OS drops the lock when the process dies, even
under SIGKILL. A resume writes nothing until the checkpoint is restored and training is under way; then
it drops the events logged after the checkpoint's step (and a half-written last line), so the history
reads like one uninterrupted run.
"""
from __future__ import annotations

import fcntl
import json
import os
import platform
import socket
import sys
import time
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import save_file

from ..checkpoint import atomic_write, save_checkpoint, write_json
from ..config import RunConfig
from ..errors import UserError
from ..train.distributed import backend_for, env_world
from ..train.events import Checkpoint, Event, Snapshot, Status, StepMetrics
from ..train.loop import Diverged, nonfinite_part
from ..train.setup import pick_device, resolve_precision
from ..jsonfile import parse_lines, read_dict
from .reader import CHECKPOINT


def versions() -> dict:
    import torchvision

    from .. import __version__

    return {"hard_core": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version()}


class RunWriter:
    """Consumes events and keeps the run directory current. `resume=True` continues an existing run;
    `overrides` are the knob values the resume changes, recorded in config.json."""

    def __init__(self, run_dir: str | Path, cfg: RunConfig, resume: bool = False, overrides: dict | None = None):
        self.dir = Path(run_dir)
        self.cfg, self.overrides = cfg, dict(overrides or {})
        self.checkpoint_step: int | None = None
        rank, self.world, _ = env_world()
        self.lead = rank == 0
        if not self.lead:
            return
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._lock = hold_lock(self.dir)
        except OSError as e:
            raise UserError(f"cannot write the run directory {self.dir}: {e.strerror or e}") from None
        events, checkpoint = self.dir / "events.jsonl", self.dir / CHECKPOINT
        remove_temp_files(self.dir)  # a killed process's half-written files; we hold the lock: none is live
        if resume and not checkpoint.is_file():
            self._lock.close()
            raise UserError(f"cannot resume: {self.dir} holds no checkpoint")
        if not resume and events.exists():
            self._lock.close()
            hint = (f"continue it with `train --out {self.dir} --resume`" if checkpoint.is_file() else
                    "it never reached a checkpoint; delete it")
            raise UserError(f"{self.dir} already holds a run: {hint}, or choose another --out")
        self.status = {"state": "starting", "step": 0, "total_steps": cfg.steps, "message": "",
                       "pid": os.getpid(), "host": socket.gethostname(), "steps_per_s": None, "updated": time.time()}
        self._pending: list[Event] | None = [] if resume else None  # held back until the resume is under way
        self._events = None
        if not resume:
            self._guard(self._create)

    def write(self, event: Event) -> None:
        if not self.lead:
            return
        if self._pending is not None:
            self._pending.append(event)
            if isinstance(event, Status) and event.state == "running":  # restored: commit to the directory
                pending, self._pending = self._pending, None
                self._guard(lambda: self._continue(event.step))
                for e in pending:
                    self.write(e)
            return
        self._guard(lambda: self._write(event))

    def fail(self, message: str, step: int | None = None) -> None:
        """Record a failure (an event and the status) without touching the checkpoint. A resume that
        failed before training was under way leaves the directory exactly as it was."""
        if not self.lead or self._pending is not None:
            return
        try:
            self._write(Status(self.status["step"] if step is None else step, "failed", message,
                               total_steps=self.cfg.steps))
        except OSError:  # e.g. the disk is full: the message still reaches the terminal
            pass

    def close(self) -> None:
        if not self.lead:
            return
        if self._events is not None:
            self._events.close()
        self._lock.close()  # releases the flock

    # ---- internals ----

    def _create(self) -> None:
        (self.dir / "snapshots").mkdir(exist_ok=True)
        device = pick_device(self.cfg.device)
        backend = backend_for(device) if self.world > 1 else None
        write_json(self.dir / "config.json", {"config": self.cfg.model_dump(), "versions": versions(),
                                              "command": sys.argv, "created": time.time(),
                                              "precision": resolve_precision(self.cfg.precision, device),
                                              "distributed": {"world_size": self.world, "backend": backend}})
        self._events = open(self.dir / "events.jsonl", "a", encoding="utf-8")

    def _continue(self, step: int) -> None:
        """Drop history past the restored `step`, reset stale requests, record the resume."""
        path = self.dir / "events.jsonl"
        kept = [line for line in _lines(path) if line.get("step", 0) <= step]
        atomic_write(path, lambda tmp: Path(tmp).write_text("".join(json.dumps(e) + "\n" for e in kept)))
        write_json(self.dir / "control.json", {})  # knobs in force come from the checkpoint and the overrides
        saved = read_dict(self.dir / "config.json") or {}  # the resume has read its config from it already
        resumes = saved.get("resumes") if isinstance(saved.get("resumes"), list) else []
        saved["resumes"] = [*resumes, {"step": step, "time": time.time(), "command": sys.argv,
                                       "overrides": self.overrides, "world_size": self.world}]
        write_json(self.dir / "config.json", saved)
        self.checkpoint_step = step
        (self.dir / "snapshots").mkdir(exist_ok=True)
        self._events = open(path, "a", encoding="utf-8")

    def _write(self, event: Event) -> None:
        record = event.to_json()
        if isinstance(event, Snapshot):
            name = f"snapshots/{event.step:06d}.safetensors"
            tensors = {k: v.contiguous() for k, v in event.tensors.items()}
            atomic_write(self.dir / name, lambda tmp: save_file(tensors, tmp))
            record["file"] = name
        elif isinstance(event, Checkpoint):
            self._checkpoint(event)
        self._events.write(json.dumps(record) + "\n")
        self._events.flush()
        if isinstance(event, Status):
            self._set_status(state=event.state, step=event.step, message=event.message)
            if event.identity:  # config.json says which teacher (and VAE) weights the run trains with
                saved = read_dict(self.dir / "config.json") or {}
                write_json(self.dir / "config.json", {**saved, "identity": event.identity})
        elif isinstance(event, StepMetrics):
            self._set_status(step=event.step, steps_per_s=event.steps_per_s)

    def _checkpoint(self, event: Checkpoint) -> None:
        parts = {"student": event.student, "optimizer": event.optimizer}
        if event.augmentor is not None:
            parts.update(augmentor=event.augmentor, augmentor_optimizer=event.augmentor_optimizer)
        extra = {"step": event.step, "knobs": event.knobs, "elapsed_s": event.elapsed_s, "identity": event.identity}
        kept = (f"the last good checkpoint at step {self.checkpoint_step} is kept"
                if self.checkpoint_step is not None else "no earlier checkpoint exists")
        bad = nonfinite_part(parts)  # the loop checks first; this guards the file against any other writer
        if bad is not None:
            raise Diverged(f"refused to write the checkpoint at step {event.step}: its {bad} holds NaN or infinite "
                           f"values (the run diverged; lower --lr); {kept}", event.step)
        try:
            save_checkpoint(self.dir / CHECKPOINT, parts, extra)
        except (OSError, SafetensorError) as e:
            raise UserError(f"cannot write the checkpoint at step {event.step}: {_reason(e)}; {kept}") from None
        self.checkpoint_step = event.step

    def _guard(self, write) -> None:
        try:
            write()
        except OSError as e:
            raise UserError(f"cannot write the run directory {self.dir}: {_reason(e)}") from None

    def _set_status(self, **changes) -> None:
        self.status.update(changes, updated=time.time())
        write_json(self.dir / "status.json", self.status)


def hold_lock(run_dir: Path):
    """Take the run directory's exclusive lock (the open file holds it), or refuse in one line."""
    f = open(run_dir / "lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip()
        f.close()
        raise UserError(f"{run_dir} is being written by another process{f' (pid {holder})' if holder else ''}: "
                        "wait for it to end, or stop it first") from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


def remove_temp_files(run_dir: Path) -> list[Path]:
    """Delete the temporary files `atomic_write` leaves when its process is killed mid-write (13 MB per
    checkpoint): `.<name>.<random>.tmp` in the run folder and its snapshots/. Only the lock holder calls this."""
    gone = []
    for tmp in [*run_dir.glob(".*.tmp"), *run_dir.glob("snapshots/.*.tmp")]:
        try:
            tmp.unlink()
            gone.append(tmp)
        except OSError:
            pass
    return gone


def _lines(path: Path) -> list[dict]:
    """The complete, well-formed event lines of `path` (a half-written last line, bytes that are not UTF-8
    and lines of the wrong shape are dropped: `jsonfile.parse_lines`)."""
    try:
        return parse_lines(path.read_bytes())[0]
    except FileNotFoundError:
        return []


def _reason(e: Exception) -> str:
    text = str(e)
    if getattr(e, "errno", None) == 28 or "No space left" in text or "StorageFull" in text:
        return "no space left on device"
    return getattr(e, "strerror", None) or (text.splitlines()[0] if text else type(e).__name__)
