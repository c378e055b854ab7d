"""What the Live page needs of a run directory, Streamlit-free: incremental events, snapshots, ETA.

>>> view = RunView("20261123-081500-ab12", Path("runs/20261123-081500-ab12"))
>>> view.poll(); view.snapshot(view.snapshot_events()[-1]["step"])["augmented"].shape
"""
from __future__ import annotations

import io
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable, TypeVar

from PIL import Image

from hard_core.runs import RunReader
from hard_core.runs.reader import read_dict, typed_config

CACHE = 24  # snapshots, and figures or pictures, kept in memory per view (a snapshot is ~60 kB)
T = TypeVar("T")


class RunView:
    """A run directory being watched: call `poll()` each refresh; it reads only what was appended."""

    def __init__(self, run_id: str, path: Path):
        self.run_id, self.path = run_id, Path(path)
        self.reader = RunReader(path)
        self._snaps: OrderedDict[int, dict] = OrderedDict()
        self._drawn: OrderedDict[tuple, object] = OrderedDict()
        self._shown: dict = {}  # name -> (monotonic time, version) of its latest drawing
        self._held: dict = {}  # name -> whether the drawing last returned is older than what was asked for
        self._config: dict = {}

    @property
    def events(self) -> list[dict]:
        return self.reader.events

    def poll(self) -> None:
        self.reader.poll()

    def status(self) -> dict:
        return self.reader.status()

    def config(self) -> dict:
        """The run's config: config.json once the engine has started, before that what the lab queued."""
        if not self._config:
            self._config = saved_config(self.path, self.reader)
        return self._config

    @property
    def one_d(self) -> bool:
        return self.config().get("dataset") == "mnist1d"

    def snapshot_events(self) -> list[dict]:
        return [e for e in self.events if e.get("kind") == "snapshot"]

    def snapshot(self, step: int) -> dict:
        """The snapshot tensors at `step` (plus "_step"), cached."""
        if step not in self._snaps:
            event = next(e for e in self.snapshot_events() if e["step"] == step)
            self._snaps[step] = {**self.reader.snapshot(event), "_step": step}
            while len(self._snaps) > CACHE:
                self._snaps.popitem(last=False)
        return self._snaps[step]

    def probe_snapshot(self, step: int) -> dict | None:
        """The latest snapshot at or before `step` that carries disagreement and invariance maps."""
        probes = [e["step"] for e in self.snapshot_events() if "disagreement" in e.get("keys", ()) and e["step"] <= step]
        return self.snapshot(probes[-1]) if probes else None

    def drawn(self, name, version, draw: Callable[[], T], every: float = 0.0) -> T:
        """`draw()` once per (name, version), then kept: the page refreshes every few seconds, but a figure changes
        only when what it shows does (version: e.g. the number of evaluations, a snapshot's step), and
        drawing a plotly figure costs ~50 ms of the CPU that trains the run. every > 0: a drawing younger
        than `every` seconds is kept even if the version moved on, since the browser pays for each changed
        plotly chart too (~0.15-0.3 s of CPU on 2 cores)."""
        shown, wanted = self._shown.get(name), version
        if every > 0 and shown is not None and time.monotonic() - shown[0] < every:
            version = shown[1]
        if (name, version) not in self._drawn:
            self._drawn[(name, version)] = drawing = draw()
            if drawing is not None:  # nothing to show yet ("waiting for ..."): the first figure comes at once
                self._shown[name] = (time.monotonic(), version)
            while len(self._drawn) > CACHE:
                self._drawn.popitem(last=False)
        self._held[name] = version != wanted
        return self._drawn[(name, version)]

    def held(self, name) -> bool:
        """Whether `drawn(name, ...)` last returned an older drawing than the version it was asked for."""
        return self._held.get(name, False)

    def picture(self, name: str, step: int, draw: Callable[[], Image.Image]) -> bytes:
        """PNG bytes of a composed image of this run (e.g. "gallery" at `step`), drawn and encoded once."""
        def png() -> bytes:
            buffer = io.BytesIO()
            draw().save(buffer, format="PNG")
            return buffer.getvalue()

        return self.drawn(name, step, png)

    def count(self, kind: str) -> int:
        """How many events of `kind` ("step", "eval", "snapshot") have been read: a figure's version."""
        return sum(e.get("kind") == kind for e in self.events)

    def latest_probe(self) -> dict | None:
        """The newest snapshot with disagreement and invariance maps, or None before the first."""
        return self.probe_snapshot(float("inf"))


def saved_config(path: Path, reader: RunReader | None = None) -> dict:
    """A run's config: config.json once the engine has started, before that what the lab queued (lab.json)."""
    path = Path(path)
    return (reader or RunReader(path)).config() or typed_config((read_dict(path / "lab.json") or {}).get("config"))


def world_text(path: Path) -> str:
    """"world size N (backend)" for a run that torchrun trained on N ranks (config.json), else ""."""
    world = (read_dict(Path(path) / "config.json") or {}).get("distributed") or {}
    size = world.get("world_size") if isinstance(world, dict) else None
    return f"world size {size} ({world.get('backend')})" if isinstance(size, int) and size > 1 else ""


def method(cfg: dict) -> str:
    """What trained the student, as the Matrix names it: 'KD', 'HARD-affine', 'KD + shift', 'CE', 'pretrain'."""
    if cfg.get("kind") == "pretrain":
        base = "pretrain"
    elif cfg.get("loss") == "ce":
        base = "CE"
    elif cfg.get("hard") not in (None, "none"):
        base = f"HARD-{cfg['hard']}"
    else:
        base = "KD"
    augment = cfg.get("augment")
    return base if augment in (None, "none") else f"{base} + {augment}"


def run_text(cfg: dict) -> str:
    """A run's config in words: 'polarity world · HARD-colour · mlp student · 600 steps · seed 0'."""
    if not cfg:
        return "its config is not written yet"
    how = method(cfg) + (f" ({cfg.get('affine')})" if cfg.get("hard") == "affine" else "")
    return " · ".join([f"{cfg.get('world', 'shift')} world", how, f"{cfg.get('student')} student",
                       f"{cfg.get('steps')} steps", f"seed {cfg.get('seed')}"])


def eta_text(status: dict) -> str:
    """'12.3 steps/s · ETA 0:41' from a status dict (empty parts left out); no ETA once the run has ended."""
    rate, step, total = status.get("steps_per_s"), status.get("step", 0), status.get("total_steps", 0)
    if status.get("state") in ("finished", "stopped", "failed", "died", "crashed"):
        return f"{rate:.1f} steps/s" if rate else "ended"
    if not rate:  # no ETA until the first steps have been timed
        return "starting…" if status.get("state") in (None, "queued", "starting") else "timing the first steps…"
    left = max(total - step, 0) / rate
    return f"{rate:.1f} steps/s · ETA {int(left // 60)}:{int(left % 60):02d}"

