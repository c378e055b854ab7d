"""The one training loop, written as a generator of typed events.

    for event in train(RunConfig(dataset="mnist5k", canvas=40, teacher="default")):
        print(event.to_json())

The same loop pretrains teachers (`kind="pretrain"`: cross-entropy, no teacher) and distils students
(KD on exactly what the student sees). `control()` is polled every step for knob changes (lr,
temperature, alpha) and pause/stop requests; the run store reads them from `control.json`.

Under torchrun every rank runs this loop on its shard of each global batch (`distributed.py`): rank 0's
requests are shared with all ranks, the logged loss is their mean, and rank 0 alone snapshots,
evaluates and checkpoints; the other ranks yield only status and step events, which nothing records.
"""
from __future__ import annotations

import math
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from ..checkpoint import load_checkpoint
from ..config import KNOBS, RunConfig
from ..errors import UserError
from .evaluate import accuracy
from .events import Checkpoint, EvalMetrics, Event, Snapshot, Status, StepMetrics
from .setup import Given, Session, build_session
from .reference import first_evaluation
from .step import StepResult, distil_step

SNAPSHOT_SIZE = 16  # images per snapshot: enough for a gallery, small on disk
MAX_LOSS = 1e6  # a finite loss this large has diverged as surely as NaN (lr 1e6 reached 3e20, "finished")


class Diverged(UserError):
    """The loss became NaN, infinite or above MAX_LOSS at `step`; the last checkpoint is kept."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


def train(cfg: RunConfig, control: Callable[[], dict] | None = None, resume: Path | None = None,
          overrides: dict | None = None, given: Given | None = None) -> Iterator[Event]:
    """Train (or pretrain) as `cfg` says, yielding events. `resume` is a run checkpoint file to continue
    from; `overrides` are knob values that replace the checkpoint's on resume; `given` holds a Python
    caller's own data set, teacher or student (`hard_core.distil`)."""
    yield Status(0, "starting", "loading data and models", total_steps=cfg.steps)
    s = build_session(cfg, given)
    try:
        yield from _loop(s, control, resume, overrides)
    finally:
        s.dist.close()


def _loop(s: Session, control: Callable[[], dict] | None, resume: Path | None, overrides: dict | None):
    cfg, lead = s.cfg, s.dist.lead
    knobs = {k: getattr(cfg, k) for k in KNOBS}
    start, elapsed, saved = 0, 0.0, None  # saved: the step of the last checkpoint written or restored
    if resume is not None:
        start, elapsed, knobs = _restore(s, Path(resume), knobs)
        knobs.update(overrides or {})
        saved = start
    ahead = None  # the teacher's reference and the probe, built in a thread from the second step on
    evaluated = False  # the teacher's accuracy is logged once, at the first evaluation
    batches = s.batches(start)  # this rank's part of each step's global batch, from step start + 1 on
    how = f"resumed from step {start}" + "".join(f", {k}={v:g}" for k, v in (overrides or {}).items()) \
        if resume is not None else "training"
    where = s.device.type + (f", {s.dist.world} ranks ({s.dist.backend})" if s.dist.enabled else "")
    yield Status(start, "running", f"{how} on {where}", total_steps=cfg.steps)
    t0, last = time.perf_counter() - elapsed, (time.perf_counter(), start)
    for step in range(start + 1, cfg.steps + 1):
        if control is not None or s.dist.enabled:
            request = s.dist.agree(control() if control is not None else {})
            changed = {k: float(request[k]) for k in KNOBS if k in request and request[k] != knobs[k]}
            if changed:
                knobs.update(changed)
                yield Status(step - 1, "running", "set " + ", ".join(f"{k}={v:g}" for k, v in changed.items()),
                             total_steps=cfg.steps)
            if request.get("state") == "pause":
                yield Status(step - 1, "paused", "paused from the dashboard", total_steps=cfg.steps)
                while request.get("state") == "pause":
                    time.sleep(0.2)
                    request = s.dist.agree(control() if control is not None else {})
                yield Status(step - 1, "running", "resumed", total_steps=cfg.steps)
            if request.get("state") == "stop":
                if lead:
                    yield _checkpoint(step - 1, s, knobs, time.perf_counter() - t0)
                s.dist.barrier()  # every rank ends after the checkpoint is on disk
                yield Status(step - 1, "stopped", request.get("reason", "stopped on request"), total_steps=cfg.steps)
                return

        # ---- one step: sample, augment, distil (teacher on exactly what the student sees) ----
        torch.manual_seed(s.dist.seed(cfg.seed * 1_000_003 + step))  # augmentation randomness, replayable
        x, y = next(batches)
        for group in s.optimizer.param_groups:
            group["lr"] = s.lr_at(knobs["lr"], step)
        final = step == cfg.steps
        logging = step % cfg.log_every == 0 or final or step % cfg.checkpoint_every == 0
        out = distil_step(s, x, F.one_hot(y, s.dataset.num_classes).float(), knobs, step, measure=logging)

        # ---- events ----
        if logging:
            value = s.dist.mean(out.loss).item()  # over the ranks: a NaN anywhere stops every rank
            if not math.isfinite(value) or value > MAX_LOSS:
                kept = f"the checkpoint at step {saved} is kept" if saved is not None else "no checkpoint was written"
                raise Diverged(f"the loss became {value:.3g} at step {step}: the run diverged; lower --lr, the learning "
                               f"rate (or --temperature); {kept}", step)
            now = time.perf_counter()
            rate = (step - last[1]) / max(now - last[0], 1e-9)
            last = (now, step)
            yield StepMetrics(step, value, s.optimizer.param_groups[0]["lr"], knobs["temperature"],
                              knobs["alpha"], rate, now - t0, {k: s.dist.mean(v).item() for k, v in out.extra.items()})
        if lead and ahead is None and (step > 1 or final):  # after the first snapshot: the first images come first
            ahead = _teacher_ahead(s)
        probing = lead and s.teacher is not None and (step % cfg.probe_every == 0 or final)
        if lead and (step % cfg.snapshot_every == 0 or step == 1 or final or probing):
            snapshot = _snapshot(step, out)
            if probing:
                probe = ahead.result().probe
                with s.autocast:
                    snapshot.tensors.update(probe(s.student, out.x_seen[:SNAPSHOT_SIZE], knobs["temperature"]))
            yield snapshot
        if lead and (step % cfg.eval_every == 0 or final):  # the other ranks wait at the next collective
            first = ahead.result()
            if not evaluated and first.accuracy is not None:
                yield EvalMetrics(step, "teacher", first.accuracy)
            evaluated = True
            with s.autocast:
                acc, agree, _ = accuracy(s.student, s.suites, first.predictions)
            yield EvalMetrics(step, "student", acc, agree)
        if lead and (step % cfg.checkpoint_every == 0 or final):
            yield _checkpoint(step, s, knobs, time.perf_counter() - t0)
            saved = step
    s.dist.barrier()
    yield Status(cfg.steps, "finished", f"done in {time.perf_counter() - t0:.1f} s", total_steps=cfg.steps)


def _teacher_ahead(s: Session) -> Future:
    """The session's `first_evaluation` (the suites, the probe set, the teacher's reference: kept on disk,
    else computed), built in a thread while the next steps train, so that it does not stall training."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="teacher-ahead")
    try:
        return pool.submit(first_evaluation, s)
    finally:
        pool.shutdown(wait=False)  # the thread ends when the work is done


def _snapshot(step: int, out: StepResult) -> Snapshot:
    n = SNAPSHOT_SIZE

    def img(t):
        return (t[:n].detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()

    tensors = {"clean": img(out.x), "augmented": img(out.x_seen), "label": out.y[:n].argmax(1).cpu(),
               "student_pred": out.student_logits[:n].argmax(1).cpu()}
    if out.teacher_logits is not None:
        tensors["teacher_pred"] = out.teacher_logits[:n].argmax(1).cpu()
    for name, value in out.params.items():  # the augmentor's choices for every augmented sample
        tensors[f"param.{name}"] = value.float().cpu()
    return Snapshot(step, tensors)


def _checkpoint(step: int, s: Session, knobs: dict, elapsed: float) -> Checkpoint:
    return Checkpoint(step, s.student, s.optimizer, dict(knobs), s.augmentor, s.augmentor_optimizer, elapsed)


def _restore(s: Session, path: Path, knobs: dict) -> tuple[int, float, dict]:
    """Load every part of the session from one checkpoint file; returns its step, elapsed time, knobs."""
    parts = {"student": s.student, "optimizer": s.optimizer}
    if s.augmentor is not None:
        parts.update(augmentor=s.augmentor, augmentor_optimizer=s.augmentor_optimizer)
    extra = load_checkpoint(path, parts)
    saved = extra.get("knobs") if isinstance(extra.get("knobs"), dict) else {}
    return extra["step"], float(extra.get("elapsed_s", 0.0)), {**knobs, **{k: saved[k] for k in KNOBS if k in saved}}
