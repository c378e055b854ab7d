"""A folder of runs, one directory per config: what `sweep`, `matrix` and `tstddev --validate` share (`assets`
holds its folder's lock too).

    <out>/lock        held (flock) by the one command filling <out>; a second one waits for it
    <out>/<cell>/     a run directory (runs/store.py), trained once and reused when asked for again

`run_or_reuse` trains a config into its directory unless that directory already holds the finished run of
the same config. With `<out>` held by one command, no run is trained twice or lost, and a run directory that
another process writes (its own `lock`, e.g. a `train --resume` or the lab) is refused, never deleted.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sys
from pathlib import Path

from ..config import RunConfig, same_run
from ..errors import UserError
from .execute import run_to_dir
from .models import run_config
from .reader import read_json
from .store import hold_lock

LOCK = "lock"


@contextlib.contextmanager
def hold_folder(out: Path):
    """Hold `<out>/lock` for the block. If another command holds it, say so on stderr and wait
    for it to end: that one's finished runs are then reused, not trained again. The OS drops the lock when the
    holder dies, even under SIGKILL."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        f = open(out / LOCK, "a+")
    except OSError as e:
        raise UserError(f"cannot write {out}: {e.strerror or e}") from None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip()
            print(f"{out} is being filled by another command (sweep, matrix, tstddev --validate, assets)"
                  f"{f' (pid {holder})' if holder else ''}: waiting for it to end, then reusing what it made",
                  file=sys.stderr, flush=True)
            fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        yield  # the flock ends when the file closes


def reusable(run_dir: Path, cfg: RunConfig) -> bool:
    """Whether `run_dir` already holds the finished run of exactly `cfg` (`config.same_run`: where and how it
    trains may differ). A finished run of another config is refused (its numbers would be reported as this config's);
    an unfinished one is trained afresh; a folder that is not a run directory is refused."""
    if not run_dir.exists():
        return False
    is_run = any((run_dir / f).exists() for f in ("config.json", "events.jsonl", "status.json"))
    if not is_run and any(p.name != LOCK for p in run_dir.iterdir()):
        raise UserError(f"{run_dir} exists and is not a run directory; choose another --out")
    if (read_json(run_dir / "status.json") or {}).get("state") != "finished":
        return False
    try:
        same = same_run(run_config(run_dir), cfg)
    except UserError:
        same = False
    if not same:
        raise UserError(f"{run_dir} holds a finished run of another config (other --steps, --student, ...?); "
                        "choose another --out")
    return True


def run_or_reuse(cfg: RunConfig, run_dir: Path, on_event=None) -> bool:
    """Train `cfg` into `run_dir` unless it holds that finished run already; True if it trained. What an
    interrupted or failed attempt left is cleared first, under the directory's own lock, so a directory that
    another process is writing is refused in one line instead."""
    if reusable(run_dir, cfg):
        return False
    if run_dir.exists():
        with hold_lock(run_dir):  # refuses a run directory that another process holds
            for p in run_dir.iterdir():
                if p.name != LOCK:
                    shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    run_to_dir(cfg, run_dir, on_event=on_event)
    return True
