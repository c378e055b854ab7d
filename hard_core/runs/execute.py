"""Run a config into a run directory: the trainer's events go to the store and to `on_event`."""
from __future__ import annotations

import shutil
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from ..config import RunConfig
from ..errors import UserError
from ..train import Event, train
from ..train.setup import Given
from ..train.distributed import is_lead
from .control import ControlFile
from .loggers import open_loggers, require_loggers
from .store import CHECKPOINT, RunWriter


class Stopped(Exception):
    """A run stopped by SIGTERM, with its checkpoint and status written. It ends the command too: a command
    that trains several runs (matrix, tstddev --validate, assets) must not go on to the next one."""


def run_to_dir(cfg: RunConfig, out: str | Path, resume: bool = False,
               on_event: Callable[[Event], None] | None = None, overrides: dict | None = None,
               given: Given | None = None) -> Path:
    """Train into `out`; a failure is recorded in status.json and re-raised, the checkpoint stays intact.
    `overrides` (resume only) are knob values that replace the checkpoint's; `given`, a Python caller's own
    data set, teacher or student (`hard_core.distil`). SIGTERM stops the run at the next step with a
    checkpoint and status "stopped", then raises `Stopped`."""
    out = Path(out)
    if is_lead():
        require_loggers(cfg)  # a missing package stops here, before the run directory exists
    fresh = is_lead() and not resume and not out.exists()  # a folder this call creates
    writer = RunWriter(out, cfg, resume=resume, overrides=overrides)
    loggers, started = [], False
    try:
        if is_lead():  # --log: the same events, also to TensorBoard / W&B
            loggers = open_loggers(cfg, out, resume=resume)
        with _sigterm_stops() as terminated:
            control = ControlFile(out) if is_lead() else dict  # under torchrun, rank 0 alone reads control.json

            def requests() -> dict:
                return {**control(), "state": "stop", "reason": "stopped by SIGTERM"} if terminated.is_set() \
                    else control()

            for event in train(cfg, control=requests, resume=out / CHECKPOINT if resume else None,
                               overrides=overrides, given=given):
                writer.write(event)
                started = started or getattr(event, "state", None) == "running"
                for log in loggers:
                    log.write(event)
                if on_event is not None:
                    on_event(event)
            if terminated.is_set():
                raise Stopped(f"stopped by SIGTERM; {out} holds its checkpoint")
    except Stopped:
        raise
    except UserError as e:
        writer.fail(str(e), getattr(e, "step", None))
        if fresh and not started:  # refused before training (a typo'd flag, a missing file): leave no folder
            writer.close()  # behind to block the corrected command with "already holds a run"
            shutil.rmtree(out, ignore_errors=True)
        raise
    except KeyboardInterrupt:
        writer.fail("interrupted (Ctrl-C); continue it with --resume")
        raise
    except Exception as e:
        writer.fail(f"crashed: {type(e).__name__}: {e}")
        raise
    finally:
        for log in loggers:
            log.close()
        writer.close()
    return out


@contextmanager
def _sigterm_stops():
    """While inside, SIGTERM sets the yielded event instead of killing the process (main thread only)."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: flag.set())
    try:
        yield flag
    finally:
        signal.signal(signal.SIGTERM, previous)
