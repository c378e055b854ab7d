"""The one training loop, written as a generator of typed events.

    for event in train(RunConfig(dataset="mnist5k", canvas=40, teacher="default")):
        print(event.to_json())

The same loop pretrains teachers (`kind="pretrain"`: cross-entropy, no teacher) and distils students
(KD on exactly what the student sees). `control()` is polled every step for knob changes (lr,
temperature, alpha) and pause/stop requests; the run store reads them from `control.json`. Every knob
value goes through the one validator (`config.check_knobs`), in a single process and under torchrun
alike: a bad one is ignored with one status line, and the run keeps its current value. A checkpoint is
never written with NaN or infinite weights or optimizer state: the run stops (`Diverged`) and the last
checkpoint, which is finite, is kept.

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
from torch import nn

from ..checkpoint import load_checkpoint
from ..config import KNOBS, RunConfig, check_knobs
from ..errors import UserError
from ..weights import content_hash
from .evaluate import accuracy
from .events import Checkpoint, EvalMetrics, Event, Snapshot, Status, StepMetrics
from .setup import Given, Session, build_session
from .reference import first_evaluation
from .step import StepResult, distil_step

SNAPSHOT_SIZE = 16  # images per snapshot: enough for a gallery, small on disk
MAX_LOSS = 1e6  # a finite loss this large has diverged as surely as NaN (lr 1e6 reached 3e20, "finished")


class Diverged(UserError):
    """The loss (or the weights) became NaN, infinite or above MAX_LOSS at `step`; the last checkpoint is kept."""

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
    s.identity = identity(s.teacher, s.augmentor)  # recorded in every checkpoint, checked by a resume
    knobs = {k: getattr(cfg, k) for k in KNOBS}
    start, elapsed, saved = 0, 0.0, None  # saved: the step of the last checkpoint written or restored
    if overrides:
        good, refused = check_knobs(overrides)
        if refused or set(overrides) - set(KNOBS):
            bad = refused or [f"{k} is not a knob" for k in set(overrides) - set(KNOBS)]
            raise UserError("invalid knob override: " + "; ".join(bad))
        overrides = good
    if resume is not None:
        start, elapsed, knobs = _restore(s, Path(resume), knobs)
        knobs.update(overrides or {})
        saved = start
        if s.targets is not None:  # the teacher's kept outputs, exactly as the steps before `start` kept them
            s.targets.replay(start)
    ahead = None  # the teacher's reference and the probe, built in a thread from the second step on
    evaluated = False  # the teacher's accuracy is logged once, at the first evaluation
    batches = s.batches(start)  # this rank's part of each step's global batch, from step start + 1 on
    how = f"resumed from step {start}" + "".join(f", {k}={v:g}" for k, v in (overrides or {}).items()) \
        if resume is not None else "training"
    where = s.device.type + (f", {s.dist.world} ranks ({s.dist.backend})" if s.dist.enabled else "")
    yield Status(start, "running", f"{how} on {where}", total_steps=cfg.steps, identity=s.identity)
    t0, last = time.perf_counter() - elapsed, (time.perf_counter(), start)
    reported: list[str] = []  # the refused requests last reported (each is said once, not every step)

    def ask() -> tuple[dict, list[str]]:
        """The request every rank acts on (valid knobs only) and what this rank refused."""
        raw = control() if control is not None else {}
        raw = raw if isinstance(raw, dict) else {"unreadable": "the control request is not an object"}
        good, refused = check_knobs(raw)
        if raw.get("unreadable"):  # ControlFile: control.json is not a JSON object (the last good one holds)
            refused = [str(raw["unreadable"])] + refused
        clean = {k: v for k, v in raw.items() if k not in KNOBS and k != "unreadable"}
        return s.dist.agree({**clean, **good}), refused

    for step in range(start + 1, cfg.steps + 1):
        if control is not None or s.dist.enabled:
            request, refused = ask()
            if refused != reported:
                reported = refused
                if refused:
                    kept = ", ".join(f"{k}={knobs[k]:g}" for k in KNOBS)
                    yield Status(step - 1, "running", f"ignored {'; '.join(refused)}; kept {kept}"[:500],
                                 total_steps=cfg.steps)
            changed = {k: float(request[k]) for k in KNOBS if k in request and request[k] != knobs[k]}
            if changed:
                knobs.update(changed)
                yield Status(step - 1, "running", "set " + ", ".join(f"{k}={v:g}" for k, v in changed.items()),
                             total_steps=cfg.steps)
            if request.get("state") == "pause":
                yield Status(step - 1, "paused", "paused from the dashboard", total_steps=cfg.steps)
                while request.get("state") == "pause":
                    time.sleep(0.2)
                    request = ask()[0]
                yield Status(step - 1, "running", "resumed", total_steps=cfg.steps)
            if request.get("state") == "stop":
                _check_finite(s, step - 1, saved, knobs)
                if lead:
                    yield _checkpoint(step - 1, s, knobs, time.perf_counter() - t0)
                s.dist.barrier()  # every rank ends after the checkpoint is on disk
                reason = str(request.get("reason", "stopped on request")).splitlines() or ["stopped on request"]
                yield Status(step - 1, "stopped", reason[0][:200], total_steps=cfg.steps)
                return

        # ---- one step: sample, augment, distil (teacher on exactly what the student sees) ----
        torch.manual_seed(s.dist.seed(cfg.seed * 1_000_003 + step))  # augmentation randomness, replayable
        x, y = next(batches)
        for group in s.optimizer.param_groups:
            group["lr"] = s.lr_at(knobs["lr"], step)
        final = step == cfg.steps
        logging = step % cfg.log_every == 0 or final or step % cfg.checkpoint_every == 0
        known = s.targets(step, x) if s.targets is not None else None
        out = distil_step(s, x, F.one_hot(y, s.dataset.num_classes).float(), knobs, step, logging, known)

        # ---- events ----
        if logging:
            value = s.dist.mean(out.loss).item()  # over the ranks: a NaN anywhere stops every rank
            if not math.isfinite(value) or value > MAX_LOSS:
                raise _diverged(f"the loss became {value:.3g} at step {step}", step, saved, knobs)
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
        if step % cfg.checkpoint_every == 0 or final:
            _check_finite(s, step, saved, knobs)  # every rank, so that all of them stop together
            if lead:
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


def _diverged(what: str, step: int, saved: int | None, knobs: dict) -> Diverged:
    """One line: what diverged, what to change, and the checkpoint that is kept (it exists, and resumes)."""
    lr = knobs.get("lr")
    lower = f" (e.g. --lr {lr / 10:.3g})" if isinstance(lr, float) and math.isfinite(lr) else ""
    kept = (f"the checkpoint at step {saved} is kept: continue it with --resume and a lower --lr{lower}"
            if saved is not None else "no checkpoint was written")
    return Diverged(f"{what}: the run diverged; lower --lr, the learning rate (or --temperature); {kept}", step)


def nonfinite_part(parts: dict) -> str | None:
    """The name of the first part (nn.Module: parameters and buffers; optimizer: its state) that holds a
    NaN or infinite value; None when every floating-point tensor is finite."""
    for name, part in parts.items():
        if part is None:
            continue
        if isinstance(part, torch.optim.Optimizer):
            tensors = [v for state in part.state.values() for v in state.values() if torch.is_tensor(v)]
        else:
            tensors = list(part.state_dict().values())
        flags = [torch.isfinite(t.detach()).all() for t in tensors if t.is_floating_point() and t.numel()]
        if flags and not bool(torch.stack([f.to(flags[0].device) for f in flags]).all()):
            return name
    return None


def _check_finite(s: Session, step: int, saved: int | None, knobs: dict) -> None:
    """Raise `Diverged` (on every rank) before a checkpoint of non-finite weights or optimizer state could
    replace the last good one."""
    bad = nonfinite_part({"student's weights": s.student, "optimizer's state": s.optimizer,
                          "augmentor's weights": s.augmentor, "augmentor's optimizer state": s.augmentor_optimizer})
    if s.dist.enabled:  # the ranks' BatchNorm statistics may differ: stop all if any has gone bad
        anywhere = s.dist.mean(torch.tensor(float(bad is not None), device=s.device)).item() > 0
        bad = bad or ("weights of another rank" if anywhere else None)
    if bad is not None:
        raise _diverged(f"the {bad} became NaN or infinite at step {step}", step, saved, knobs)


def _checkpoint(step: int, s: Session, knobs: dict, elapsed: float) -> Checkpoint:
    return Checkpoint(step, s.student, s.optimizer, dict(knobs), s.augmentor, s.augmentor_optimizer, elapsed,
                      s.identity)


def identity(teacher: nn.Module | None, augmentor: nn.Module | None) -> dict:
    """What a run records of the models it does not train: content hashes of the teacher and a HARD-vae's VAE."""
    out = {"teacher": content_hash(teacher)} if teacher is not None else {}
    vae = getattr(augmentor, "vae", None)
    return {**out, "vae": content_hash(vae)} if isinstance(vae, nn.Module) else out


def check_identity(saved, now: dict, cfg: RunConfig, run_dir: Path) -> None:
    """Refuse to resume with a teacher or VAE whose weights differ from those the run trained with (a file
    replaced under the same name); a checkpoint from before identities were recorded is not checked."""
    saved = saved if isinstance(saved, dict) else {}
    for part, ref in (("teacher", cfg.teacher), ("vae", cfg.vae)):
        if part in saved and part in now and saved[part] != now[part]:
            raise UserError(f"cannot resume {run_dir}: the {part} {ref!r} is not the one this run trained with "
                            f"(weights {now[part]}, the run's {saved[part]}); put the original back or start a new run")


def _restore(s: Session, path: Path, knobs: dict) -> tuple[int, float, dict]:
    """Load every part of the session from one checkpoint file; returns its step, elapsed time, knobs."""
    parts = {"student": s.student, "optimizer": s.optimizer}
    if s.augmentor is not None:
        parts.update(augmentor=s.augmentor, augmentor_optimizer=s.augmentor_optimizer)
    extra = load_checkpoint(path, parts)
    check_identity(extra.get("identity"), s.identity, s.cfg, path.parent)
    saved = extra.get("knobs") if isinstance(extra.get("knobs"), dict) else {}
    return extra["step"], float(extra.get("elapsed_s", 0.0)), {**knobs, **check_knobs(saved)[0]}
