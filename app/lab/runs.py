"""The lab's runs, Streamlit-free: where they live, who may steer them, and the queue that starts them.

Every run is a folder under `root()` ($HARD_LAB_RUNS, else ./runs). A run submitted here also holds
`lab.json` (owner, creation time, config, pid) and `request.json` (the config the engine reads). It waits
as "queued" until the process-wide `Scheduler` (lab/scheduler.py) has a free slot, then runs as its own
process. Queued runs are files, so they survive a server restart. Runs without lab.json (started from a
terminal, maybe on another machine) and runs of other sessions are read-only.

>>> run_id = submit(RunConfig(dataset="mnist5k", canvas=40, teacher="default"), owner="k3y")
>>> state(run_id), queue_position(run_id)      # ('starting', None), or ('queued', 1) while slots are full
>>> stop(run_id)

A lab run also gets, by default, its plain-KD twin (`hard_core.config.twin_config`): the same world, data, teacher, student,
seed and steps without the augmentation, so the Live page can show what HARD adds (a point of paper 2's figure,
opened from the Learn page, gets its twin of the other loss instead: CE for KD). A finished (or still
training) identical twin is reused, so it costs nothing twice; a new one is queued as a background run,
which the scheduler starts beside the run at the lowest CPU priority with one thread.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import shutil
import threading
import time
from pathlib import Path

from hard_core.checkpoint import write_json
from hard_core.config import KNOBS, RunConfig, same_run, twin_config
from hard_core.errors import UserError, env_int
from hard_core.runs import request
from hard_core.runs.reader import read_json, typed_config

from .scheduler import (ACTIVE, HOST, LIVE, Scheduler, lab_file, root, run_dirs, safe_path, set_status, status,
                        write_lab)

__all__ = ["root", "run_path", "Scheduler", "scheduler", "shutdown", "submit", "twin_of",
           "queue_position", "state", "stop", "pause", "resume", "set_knobs", "owner", "can_control", "list_all",
           "latest_live", "finished"]


def run_path(run_id: str) -> Path:
    """The folder of `run_id` inside root(); a UserError for anything that is not a plain id or that
    would lead outside the runs folder (`..`, absolute paths, symlinks pointing elsewhere)."""
    return safe_path(root(), run_id)


_scheduler: Scheduler | None = None
_guard = threading.Lock()


def scheduler() -> Scheduler:
    """The process-wide scheduler, started on first use (its limit is read from the environment then)."""
    global _scheduler
    with _guard:
        if _scheduler is None:
            _scheduler = Scheduler().start()
        return _scheduler


def shutdown() -> None:
    """Stop the scheduler and end its processes; the next `scheduler()` builds a fresh one."""
    global _scheduler
    with _guard:
        s, _scheduler = _scheduler, None
    if s is not None:
        s.shutdown()


def find_twin(cfg: RunConfig) -> str | None:
    """The newest lab run with this config (`same_run`: fields that do not change what it learns aside) that
    finished or is still going, or None."""
    want, sched = cfg.model_dump(mode="json"), scheduler()
    found = []
    for run_id, d in run_dirs(root()):
        lab = lab_file(d)
        if lab and isinstance(lab.get("config"), dict) and same_run(lab["config"], want) \
                and _state(d, sched) in ("finished", *LIVE):
            found.append((float(lab.get("created") or 0), run_id))
    return max(found)[1] if found else None


def twin_of(run_id: str) -> str | None:
    """The id of the twin recorded for a lab run (plain KD, or the other loss: its config says which), or None
    (none recorded, or its folder is gone)."""
    twin = (lab_file(run_path(run_id)) or {}).get("twin")
    try:
        return twin if isinstance(twin, str) and run_path(twin).is_dir() else None
    except UserError:  # not a plain id: lab.json was edited by hand
        return None


def submit(cfg: RunConfig, owner: str, twin: bool | str = False) -> str:
    """Queue a run owned by `owner` (a session key); it starts at once if a slot is free. Returns its id.
    twin: also give it a twin (`twin_config`): True or "plain" its plain-KD twin, "loss" its twin of the other
    loss (CE for a KD run); reused if one exists, else queued in the background."""
    check_room(owner)
    run_id = _submit(cfg, owner)
    other = twin_config(cfg, "plain" if twin is True else twin) if twin else None
    if other is not None:
        other_id = find_twin(other) or _submit(other, owner, background=True)
        write_lab(run_path(run_id), {**(lab_file(run_path(run_id)) or {}), "twin": other_id})
    scheduler().tick()
    return run_id


QUEUED_TOTAL, QUEUED_PER_BROWSER = "HARD_LAB_MAX_QUEUED", "HARD_LAB_MAX_QUEUED_PER_BROWSER"
MIN_FREE_MB = 200  # a run folder with its checkpoints, snapshots and events stays well under this


def queue_limits() -> tuple[int, int]:
    """(runs waiting in all, runs waiting per browser) that a Start may add to: $HARD_LAB_MAX_QUEUED (default 20)
    and $HARD_LAB_MAX_QUEUED_PER_BROWSER (default 4). Twins are not counted: they follow their run."""
    return env_int(QUEUED_TOTAL, 20, minimum=1), env_int(QUEUED_PER_BROWSER, 4, minimum=1)


def check_room(owner: str) -> None:
    """One UserError line when a new run would pass a queue limit (`queue_limits`) or the runs folder's disk
    has less than MIN_FREE_MB left: what a stranger could otherwise fill without bound."""
    total, per_browser = queue_limits()
    sched, mine = scheduler(), owner_id(owner)
    waiting = [lab.get("owner") for _, d in run_dirs(root()) for lab in [lab_file(d) or {}]
               if not lab.get("background") and _state(d, sched) == "queued"]
    if waiting.count(mine) >= per_browser:
        raise UserError(f"this browser has {per_browser} waiting runs already, the most it may "
                        f"(${QUEUED_PER_BROWSER}): stop one or wait until one starts")
    if len(waiting) >= total:
        raise UserError(f"the lab's queue is full ({len(waiting)} waiting runs, ${QUEUED_TOTAL}): wait until one "
                        "starts")
    free = shutil.disk_usage(root()).free // 2**20
    if free < MIN_FREE_MB:
        raise UserError(f"only {free} MB left on the disk of {root()}: free some space before starting another run")


def _submit(cfg: RunConfig, owner: str, background: bool = False) -> str:
    base, now = root(), time.time()
    while True:
        run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
        try:
            (base / run_id).mkdir()
            break
        except FileExistsError:
            continue
    d, config = base / run_id, cfg.model_dump(mode="json")
    write_json(d / "request.json", config)  # the whole config: the engine reproduces exactly cfg
    write_json(d / "status.json", {"state": "queued", "step": 0, "total_steps": cfg.steps, "message": "waiting "
                                   "for a free slot", "pid": None, "steps_per_s": None, "updated": now})
    write_lab(d, {"owner": owner_id(owner), "created": now, "host": HOST, "config": config,
                  **({"background": True} if background else {})})
    return run_id


def _existing(run_id: str) -> Path:
    d = run_path(run_id)
    if not d.is_dir():
        raise UserError(f"no run {run_id!r} in {root()}")
    return d


def queue_position(run_id: str) -> int | None:
    """1 for the next run to start, None if the run is not queued."""
    queue = scheduler().queue()
    return queue.index(run_id) + 1 if run_id in queue else None


def _state(d: Path, sched: Scheduler) -> str:
    s = status(d).get("state") or "unknown"
    return "died" if s in ACTIVE and not sched.alive(d) else s


def state(run_id: str) -> str:
    """The run's status state, or "died" (the engine's word, `hard_core.runs.reader.run_status`) if it should
    be alive but no process works on it."""
    return _state(_existing(run_id), scheduler())


def stop(run_id: str) -> None:
    """Cancel a queued run (it never starts), or ask a live one to stop at its next step."""
    d, sched = _existing(run_id), scheduler()
    with sched.lock:
        if status(d).get("state") == "queued" and sched.claim(d):
            set_status(d, state="cancelled", message="cancelled before it started")
            return
    request(d, state="stop")


def pause(run_id: str) -> None:
    """Ask the run to pause at its next step (a queued run pauses as soon as it starts)."""
    request(_existing(run_id), state="pause")


def resume(run_id: str) -> None:
    request(_existing(run_id), state="run")


def set_knobs(run_id: str, **knobs) -> dict:
    """Change lr, temperature, alpha and/or hard_lambda at the run's next step (None: leave as is); the
    engine's one knob validator (`request` -> `config.check_knobs`) refuses a bad value in one line.
    Returns the new control.json content."""
    clean = {name: value for name, value in knobs.items() if value is not None}
    unknown = sorted(set(clean) - set(KNOBS))
    if unknown:
        raise UserError(f"unknown knob {unknown[0]!r}: one of {', '.join(KNOBS)}")
    return request(_existing(run_id), **clean)


def owner_id(key: str) -> str:
    """What lab.json records of an owner key: its SHA-256, so a copy of the file is not a key (the key is 16
    random bytes: no dictionary attack applies, so a slow hash would add nothing)."""
    return "sha256:" + hashlib.sha256(str(key).encode()).hexdigest()


def owner(run_id: str) -> str | None:
    """`owner_id` of the session key that submitted the run here, or None (started by another tool)."""
    lab = lab_file(run_path(run_id))
    return lab.get("owner") if lab and isinstance(lab.get("owner"), str) else None


def can_control(run_id: str, token: str | None) -> bool:
    """Only the session that submitted a run may steer it; for everyone else it is read-only."""
    try:
        key = owner(run_id)
    except UserError:
        return False
    return bool(token) and key is not None and hmac.compare_digest(key.encode(), owner_id(token).encode())


def list_all() -> list[dict]:
    """Every run under root() (with config.json or lab.json), newest first, summarised: id, path, state,
    step, total_steps, message, owner, created, kind, dataset, student, teacher, augment, hard,
    queue_position, background (a twin) and the whole config."""
    sched, rows = scheduler(), []
    queue = sched.queue()
    for run_id, d in run_dirs(root()):
        lab, saved = lab_file(d), read_json(d / "config.json")
        if lab is None and not isinstance(saved, dict):
            continue
        lab, saved = lab or {}, saved if isinstance(saved, dict) else {}
        cfg, st = typed_config(lab.get("config") or saved.get("config")), status(d)
        created = lab.get("created") or saved.get("created")
        rows.append({"id": run_id, "path": d, "state": _state(d, sched), "step": st.get("step") or 0,
                     "total_steps": st.get("total_steps") or cfg.get("steps") or 0,
                     "message": st.get("message") or "", "owner": lab.get("owner"),
                     "created": created if isinstance(created, (int, float)) else d.stat().st_mtime,
                     **{k: cfg.get(k) for k in ("kind", "dataset", "student", "teacher", "augment", "hard")},
                     "config": cfg, "background": bool(lab.get("background")),
                     "queue_position": queue.index(run_id) + 1 if run_id in queue else None})
    return sorted(rows, key=lambda r: r["created"], reverse=True)


def latest_live(owner_key: str) -> str | None:
    """The newest run that `owner_key` started here and that is still queued or training (twins aside)."""
    return next((r["id"] for r in list_all() if r["owner"] and r["state"] in LIVE and not r["background"]
                 and can_control(r["id"], owner_key)), None)


def finished() -> list[dict]:
    """The rows of `list_all()` whose run has finished, newest first (what the inspecting pages offer)."""
    return [r for r in list_all() if r["state"] == "finished"]
