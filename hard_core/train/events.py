"""The typed events the trainer yields. Every consumer (CLI printer, run-store writer, dashboard)
reads this one stream, or its on-disk form in `events.jsonl`.

Events are plain dataclasses; `to_json()` gives the JSON line (tensors in snapshots are written to
files by the run store and replaced by the file name).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import ClassVar

from torch import Tensor


@dataclass
class Event:
    kind: ClassVar[str] = "event"
    step: int

    def to_json(self) -> dict:
        return {"kind": self.kind, **asdict(self)}


@dataclass
class Status(Event):
    """Run state: starting | running | paused | finished | stopped | failed."""

    kind: ClassVar[str] = "status"
    state: str
    message: str = ""
    total_steps: int = 0
    identity: dict = field(default_factory=dict)  # at the start: content hashes of the teacher (and VAE)

    def to_json(self) -> dict:
        record = super().to_json()
        if not self.identity:
            record.pop("identity")
        return record


@dataclass
class StepMetrics(Event):
    """Training losses and knob values, every `log_every` steps."""

    kind: ClassVar[str] = "step"
    loss: float
    lr: float
    temperature: float
    alpha: float
    steps_per_s: float
    elapsed_s: float
    extra: dict = field(default_factory=dict)  # e.g. the augmentor's loss


@dataclass
class EvalMetrics(Event):
    """Accuracy per suite ("test" is in-domain) for `model` = student or teacher.

    `agree` is top-1 agreement with the teacher on the same inputs (student only).
    """

    kind: ClassVar[str] = "eval"
    model: str
    acc: dict[str, float]
    agree: dict[str, float] = field(default_factory=dict)


@dataclass
class Snapshot(Event):
    """What the student saw at this step: named image batches plus small per-sample arrays."""

    kind: ClassVar[str] = "snapshot"
    tensors: dict[str, Tensor] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"kind": self.kind, "step": self.step, "keys": sorted(self.tensors)}


@dataclass
class Checkpoint(Event):
    """A resumable state: the run store saves it atomically as safetensors plus JSON."""

    kind: ClassVar[str] = "checkpoint"
    student: object = None  # nn.Module
    optimizer: object = None  # torch.optim.Optimizer
    knobs: dict = field(default_factory=dict)  # knob values in force, restored on resume
    augmentor: object = None  # HARD's augmentor (nn.Module) and its optimizer, if any
    augmentor_optimizer: object = None
    elapsed_s: float = 0.0  # training time so far, continued on resume
    identity: dict = field(default_factory=dict)  # content hashes of the teacher (and VAE): checked on resume

    def to_json(self) -> dict:
        return {"kind": self.kind, "step": self.step}
