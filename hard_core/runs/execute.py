"""Run a config into a run directory: the trainer's events go to the store and to `on_event`."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..config import RunConfig
from ..errors import UserError
from ..train import Event, train
from .control import ControlFile
from .store import RunWriter


def run_to_dir(cfg: RunConfig, out: str | Path, resume: bool = False,
               on_event: Callable[[Event], None] | None = None) -> Path:
    """Train into `out`; a failure is recorded in status.json and re-raised, checkpoints stay intact."""
    out = Path(out)
    writer = RunWriter(out, cfg, resume=resume)
    try:
        for event in train(cfg, control=ControlFile(out), resume=out if resume else None):
            writer.write(event)
            if on_event is not None:
                on_event(event)
    except UserError as e:
        writer.fail(str(e))
        raise
    except KeyboardInterrupt:
        writer.fail("interrupted (Ctrl-C); resume with --resume")
        raise
    except Exception as e:
        writer.fail(f"crashed: {type(e).__name__}: {e}")
        raise
    finally:
        writer.close()
    return out
