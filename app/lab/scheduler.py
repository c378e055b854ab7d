"""The queue behind `lab.runs`, Streamlit-free: starts queued run folders as engine processes, a few at a time.

A run folder is queued when its status.json says "queued" and it has a lab.json; the oldest starts first
as `python -m hard_core train --config <dir>/request.json --out <dir>`, output in <dir>/process.log.
Every live run in the folder counts against the limit, this server's or an earlier one's. A background
run (`"background": true` in lab.json: a plain-KD twin) does not: one at a time starts beside the others
with one thread at the lowest CPU priority (nice 19), so it takes only the time the foreground run leaves
idle. The runs folder is `root()`; `lab.runs` builds on this module, never the other way round.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from hard_core.checkpoint import write_json
from hard_core.errors import UserError, env_int
from hard_core.jsonfile import STATUS, Spec, is_int, is_num, is_str, read_dict, read_json, typed
from hard_core.runs.reader import ALIVE as ACTIVE, HOST, pid_alive

ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,100}")
LIVE = ("queued", *ACTIVE)  # not ended yet: the Live page polls, and Pause, Stop and the knobs apply
ENDED = ("finished", "stopped", "failed", "cancelled")
STALE_S = 120  # a run from another machine counts as alive while its status is this fresh
REPO = Path(__file__).resolve().parents[2]
BACKGROUND_NICE = 19  # background runs (twins) take only CPU time that the foreground leaves idle
SERVER_NICE = 10  # the lab server's: below the runs, above the twins (SCHED_IDLE) and a loading spare
PRELOAD = "mnist5k:40"  # what the warm process loads ahead: the run form's default data (form.LAB_DEFAULTS)


def root() -> Path:
    """The runs folder: $HARD_LAB_RUNS if set, else ./runs; created if missing; one UserError line if it is a
    file or cannot be made."""
    path = Path(os.environ.get("HARD_LAB_RUNS") or "runs").resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"the runs folder {path} ($HARD_LAB_RUNS) cannot be used: "
                        f"{'it is a file' if path.exists() else e.strerror or e}") from None
    return path


def safe_path(base: Path, run_id: str) -> Path:
    """`base/run_id`, resolved; a UserError for anything but a plain id inside `base` (no `..`, no
    absolute path, no symlink pointing elsewhere)."""
    base = Path(base).resolve()
    if not isinstance(run_id, str) or not ID.fullmatch(run_id) or ".." in run_id:
        raise UserError(f"not a run id: {str(run_id)[:40]!r} (letters, digits, '_', '.', '-')")
    path = (base / run_id).resolve()
    if path == base or not path.is_relative_to(base):
        raise UserError(f"run {run_id!r} points outside the runs folder")
    return path


def run_dirs(base: Path) -> list[tuple[str, Path]]:
    """(id, folder) of every safe run folder under `base`, by name."""
    out = []
    for p in sorted(base.iterdir()) if base.is_dir() else []:
        try:
            path = safe_path(base, p.name)
        except UserError:
            continue
        if path.is_dir():
            out.append((p.name, path))
    return out


LAB: Spec = {k: (check, False) for k, check in {  # lab.json, as the lab writes it
    "owner": is_str, "config": lambda v: isinstance(v, dict), "created": is_num, "twin": is_str,
    "background": lambda v: isinstance(v, bool), "pid": is_int, "host": is_str, "started": is_num}.items()}


def write_lab(d: Path, lab: dict) -> None:
    """Write a run's lab.json readable by its owner only (mode 0600). It holds the owner key's hash
    (`runs.owner_id`), not the key: who reads the file learns which runs one browser started, and steers none."""
    write_json(d / "lab.json", lab, mode=0o600)


def lab_file(d: Path) -> dict | None:
    """A run's lab.json with fields of the wrong type dropped; None when it is missing or not an object."""
    lab = read_dict(d / "lab.json")
    return None if lab is None else typed(lab, LAB)


def status(d: Path) -> dict:
    """status.json with fields of the wrong type dropped ({} if unreadable: `jsonfile`, the one reader)."""
    return typed(read_json(d / "status.json"), STATUS)


def set_status(d: Path, **changes) -> None:
    write_json(d / "status.json", {**status(d), **changes, "updated": time.time()})


def lower_priority(pid: int) -> None:
    """Give process `pid` (just started, before torch starts its threads) the lowest CPU priority for good:
    nice 19 and, on Linux, the SCHED_IDLE policy. With SCHED_IDLE the kernel also counts the CPU it runs
    on as idle when it places a waking task, so the server and the browser preempt the twin rather than
    the run they show."""
    os.setpriority(os.PRIO_PROCESS, pid, BACKGROUND_NICE)
    group_priority(pid, BACKGROUND_NICE)
    try:
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux: nice is all there is
        pass


def group_priority(pid: int, nice: int) -> None:
    """Set the nice value of process `pid`'s autogroup. With Linux's autogroups a process in its own
    session competes as its session's group, so the group's nice is what counts (the process's own nice
    only orders it within the group); and unlike its own, an unprivileged user may raise it back to 0.
    Without autogroups (or not on Linux) this does nothing."""
    try:
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))
    except OSError:
        pass


def server_priority(waiting: bool = False) -> None:
    """Set the lab server's own CPU priority (its autogroup's nice): below the runs it shows, since drawing
    a page must not slow training down (one pair on 2 cores: lab cost +14%, against +36% at nice 0), except
    while a page waits for a run's first images (at nice 10 they took 3.1-3.6 s instead of 1.7 s). The runs start in
    sessions of their own, so they keep nice 0. One server, one group: the last page to call decides."""
    group_priority(os.getpid(), 0 if waiting else SERVER_NICE)


def background(d: Path) -> bool:
    """Whether the run in folder `d` was queued as a background run (a plain-KD twin)."""
    return bool((lab_file(d) or {}).get("background"))


def last_line(path: Path) -> str:
    """The last non-empty line of a log file (its last 4 kB), for an error message."""
    try:
        with open(path, "rb") as f:
            f.seek(max(f.seek(0, 2) - 4096, 0))
            lines = f.read().decode("utf-8", "replace").replace("\r", "\n").splitlines()
    except OSError:
        return ""
    return next((line.strip()[:300] for line in reversed(lines) if line.strip()), "")


class Scheduler:
    """Starts queued runs oldest first, at most `max_running` at a time; thread-safe. `start()` adds a
    daemon thread that calls `tick()` every `interval` s; `shutdown()` ends it and our processes.

    runs_root: the runs folder (default: `root()` at each tick). max_running: default
    $HARD_LAB_MAX_RUNS, else half the cores (at least 1). preload: the data set the warm process loads
    ahead, "NAME[:CANVAS]" (None: none).
    """

    def __init__(self, runs_root: str | Path | None = None, max_running: int | None = None, interval=0.5,
                 preload: str | None = PRELOAD):
        self._root = Path(runs_root).resolve() if runs_root else None
        cores = os.cpu_count() or 2
        self.max_running = max_running or env_int("HARD_LAB_MAX_RUNS", 0, minimum=0) or max(1, cores // 2)
        # torch threads per run, so that threads x concurrent runs < cores: one core stays free for the
        # server, the browser and a background twin (on 2 shared cores, 2 threads ran 2.8x slower than 1:
        # a descheduled thread stalls the other at every parallel op). A run that sets --threads itself
        # keeps its own; a limit at or above the core count still gets one thread per run.
        self.threads = max(1, (cores - 1) // self.max_running)
        self.preload = preload
        self.interval = interval
        self.lock = threading.RLock()
        self._children: dict[str, subprocess.Popen] = {}  # folder -> process we started
        self._spare: subprocess.Popen | None = None  # a warm `app.lab.standby` for the next run
        self._full = False  # every foreground slot was taken at the last tick
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def root(self) -> Path:
        return self._root if self._root is not None else root()  # $HARD_LAB_RUNS may change (tests)

    def start(self) -> "Scheduler":
        with self.lock:
            if self._thread is None or not self._thread.is_alive():
                self._halt.clear()
                self._thread = threading.Thread(target=self._loop, name="hard-lab-scheduler", daemon=True)
                self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                self.tick()
                self._keep_spare()
            except Exception as e:  # noqa: BLE001 - one bad folder must not stop the queue
                print(f"hard-lab scheduler: {type(e).__name__}: {e}", file=sys.stderr)

    def tick(self) -> list[str]:
        """Reap ended processes, then start queued runs while slots are free (foreground runs first, then
        one background run); returns the ids started."""
        with self.lock:
            self._reap()
            running, queue = self.running(), self.queue()
            busy = {False: 0, True: 0}  # background? -> runs alive
            for run_id in running:
                busy[background(safe_path(self.root, run_id))] += 1
            started = []
            for bg, limit in ((False, self.max_running), (True, 1)):
                todo = [r for r in queue if background(safe_path(self.root, r)) == bg][:max(limit - busy[bg], 0)]
                launched = [run_id for run_id in todo if self._launch(run_id, bg)]
                busy[bg] += len(launched)
                started += launched
            self._full = busy[False] >= self.max_running
            return started

    def queue(self) -> list[str]:
        """Ids of the queued runs, next to start first (by creation time)."""
        waiting = []
        for run_id, d in run_dirs(self.root):
            lab = lab_file(d)
            if lab is not None and status(d).get("state") == "queued":
                waiting.append((float(lab.get("created") or 0), run_id))
        return [run_id for _, run_id in sorted(waiting)]

    def running(self) -> list[str]:
        return [run_id for run_id, d in run_dirs(self.root) if status(d).get("state") in ACTIVE and self.alive(d)]

    def alive(self, d: Path) -> bool:
        """Whether a process is (probably) still working on the run in folder `d`."""
        with self.lock:  # not while a launch is half done
            child = self._children.get(str(d))
        if child is not None:
            return child.poll() is None
        st, lab = status(d), lab_file(d) or {}
        host = lab.get("host")  # None: started elsewhere (CLI), maybe on another machine
        if host in (None, HOST) and any(pid_alive(p) for p in {st.get("pid"), lab.get("pid")}):
            return True
        updated = st.get("updated")
        return host != HOST and isinstance(updated, (int, float)) and time.time() - updated < STALE_S

    @staticmethod
    def claim(d: Path) -> bool:
        """Take the one-time right to start (or cancel) a queued run; False if someone already has it,
        another server sharing the folder included."""
        try:
            os.close(os.open(d / "launch.lock", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        return True

    def _launch(self, run_id: str, bg: bool = False) -> bool:
        d = safe_path(self.root, run_id)
        if status(d).get("state") != "queued" or not self.claim(d):
            return False
        config = read_dict(d / "request.json") or {}
        threads = [] if config.get("threads") else ["--threads", str(1 if bg else self.threads)]
        argv = ["train", "--config", str(d / "request.json"), "--out", str(d), *threads]
        set_status(d, state="starting", message="starting the engine" + (" in the background" if bg else ""))
        try:
            child = None if bg else self._hand_to_spare(argv, d / "process.log")
            if child is None:
                with open(d / "process.log", "ab") as log:
                    child = _engine([sys.executable, "-m", "hard_core", *argv], stdout=log, stdin=subprocess.DEVNULL)
                if bg:
                    lower_priority(child.pid)
        except OSError as e:
            set_status(d, state="failed", message=f"could not start the engine: {e}")
            return False
        self._children[str(d)] = child
        write_lab(d, {**(lab_file(d) or {}), "pid": child.pid, "started": time.time()})
        return True

    def _keep_spare(self) -> None:
        """Keep one warm engine process waiting (the background thread calls this; `tick()` alone never
        starts one), so the next Start skips importing torch. While every foreground slot is taken it waits:
        a Start then queues, and the spare's loading (~4 s of CPU) would be taken from the KD twin that
        trains beside the run (on 2 cores the twin then finished up to 3 s after its run)."""
        with self.lock:
            if self._halt.is_set() or (self._spare is not None and self._spare.poll() is None):
                return
            if self._full:  # no Start could use it before a slot frees; loading it now would slow the run's twin
                return
            preload = ["--preload", self.preload] if self.preload else []
            self._spare = _engine([sys.executable, "-m", "app.lab.standby", *preload], stdout=subprocess.DEVNULL,
                                  stdin=subprocess.PIPE)
            # it loads at the lowest priority: a run that just started (the one that took the last warm
            # process) keeps the CPU; it gets normal priority back with its run (`_hand_to_spare`)
            group_priority(self._spare.pid, BACKGROUND_NICE)

    def _hand_to_spare(self, argv: list[str], log: Path) -> subprocess.Popen | None:
        """Give the run to the warm process, if there is a live one; None otherwise."""
        spare, self._spare = self._spare, None
        if spare is None or spare.poll() is not None:
            return None
        group_priority(spare.pid, 0)
        try:
            spare.stdin.write((json.dumps({"argv": argv, "log": str(log)}) + "\n").encode())
            spare.stdin.close()
        except OSError:
            _signal(spare, signal.SIGKILL)
            return None
        return spare

    def _reap(self) -> None:
        for key, child in list(self._children.items()):
            code = child.poll()
            if code is None:
                continue
            del self._children[key]
            d = Path(key)
            if status(d).get("state") not in ENDED:  # the engine died before it could say so
                why = f"exit code {code}" if code >= 0 else f"killed by signal {-code}"
                last = last_line(d / "process.log")
                set_status(d, state="failed", message=f"the engine process ended ({why})" + (f": {last}" if last else ""))

    def pids(self) -> list[int]:
        """Process ids of the runs this scheduler started that are still alive."""
        with self.lock:
            return [c.pid for c in self._children.values() if c.poll() is None]

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop ticking and end every process this scheduler started: terminate, then kill."""
        self._halt.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        with self.lock:
            children = [c for c in self._children.values() if c.poll() is None]
            if self._spare is not None and self._spare.poll() is None:
                children.append(self._spare)
            self._spare = None
            for child in children:
                _signal(child, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            for child in children:
                try:
                    child.wait(max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    _signal(child, signal.SIGKILL)
                    child.wait()
            self._reap()


def _engine(cmd: list[str], **streams) -> subprocess.Popen:
    """An engine process in its own session (so a signal reaches everything it spawns), with the repo on
    PYTHONPATH and the server's working directory."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen(cmd, stderr=subprocess.STDOUT, cwd=os.getcwd(), env=env, start_new_session=True,
                            **streams)


def _signal(child: subprocess.Popen, sig: int) -> None:
    """Signal the process group the child leads (start_new_session), so any helper it spawned goes too."""
    try:
        os.killpg(child.pid, sig)
    except (ProcessLookupError, PermissionError):
        child.send_signal(sig)
