"""Time the lab in a real browser: Start -> first augmented images, stalls, and what the lab costs training.

    .venv/bin/python scripts/lab_timings.py              # 3 pairs: a CLI run, then the same run from the lab
    .venv/bin/python scripts/lab_timings.py --pairs 1 --no-twin

Each pair runs the lab's default session (HARD-affine, 600 steps, the lab's evaluation and snapshot
cadence) twice, in turn:
  cli  `python -m hard_core train ... --threads N` alone, N the thread count the lab gives a run (one
       core is left to the server and the browser; on 2 shared cores 2 threads ran 2.8x slower than 1);
  lab  a fresh lab server with its own runs folder, Chromium (Playwright) on the Live page, Start pressed
       once the warm standby engine had a few seconds to load; by default with the KD twin (a first
       Start on a fresh lab trains it; later Starts reuse it).
and prints per pair: Start -> first augmented images (browser), training time to the last step
(events' elapsed_s), steps/s, the longest interval between logged steps (every 10 steps) and the stall
in it (the longest minus the median interval: time in which training did not advance at its pace), and
the lab's cost = lab time / CLI time - 1, and the share of its time the run spent ready but waiting for a
CPU (Linux schedstat: what other processes took from it, whatever the host's speed, which drifts by
+-15% on a shared machine), and when the run and its KD twin finished, counted from Start (the default
session is over when both have); then the medians over the pairs. Start -> first images is
broken down by when the lab queued the run, started its engine, and the engine wrote its first snapshot.
Everything it starts is stopped by PID. The machine is shared: quote medians, say how loaded it was.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
sys.path.insert(0, str(ROOT / "app"))
from lab.form import LAB_DEFAULTS  # noqa: E402 - the lab's default session, flag for flag

from lab.scheduler import Scheduler  # noqa: E402 - its thread count per run

CLI = ["train", *[a for k, v in LAB_DEFAULTS.items() for a in (f"--{k.replace('_', '-')}", str(v))],
       "--threads", str(Scheduler(preload=None).threads)]


@contextlib.contextmanager
def lab_server(runs: Path, env: dict | None = None):
    """The lab on a free 127.0.0.1 port with `runs` as its runs folder; yields its URL. On exit the
    server and every run process it started are stopped by PID."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app/streamlit_app.py", "--server.port",
                               str(port), "--server.address", "127.0.0.1", "--server.headless", "true"],
                              cwd=ROOT, env={**os.environ, **(env or {}), "HARD_LAB_RUNS": str(runs)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        yield url
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        for lab in runs.glob("*/lab.json"):
            pid = json.loads(lab.read_text()).get("pid")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if pid:
                    os.killpg(pid, signal.SIGKILL)


def browser(p):
    return p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)


class Waiting:
    """The engine process's CPU time and its time spent ready to run but waiting for a CPU (all its threads,
    from /proc/<pid>/task/*/schedstat), read every 0.5 s while it lives: the share of waiting is what other
    processes on the machine (the lab's, or anyone's) took from it, whatever the host's speed."""

    def __init__(self, pid_of):
        self.pid_of, self.first, self.ns, self._stop = pid_of, None, None, threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            pid = self.pid_of()
            try:
                tasks = [(Path(t) / "schedstat").read_text().split() for t in Path(f"/proc/{pid}/task").iterdir()]
                self.ns = (sum(int(t[0]) for t in tasks), sum(int(t[1]) for t in tasks))
                self.first = self.first or self.ns  # from the first reading: a lab's engine loaded before Start
            except (OSError, ValueError, TypeError):
                pass  # not started yet, or ended: keep the last reading

    def result(self) -> dict:
        """{"waiting": share of the time waiting for a CPU, "cpu": CPU seconds}, since the first reading."""
        self._stop.set()
        self._thread.join()
        run, wait = (b - a for a, b in zip(self.first, self.ns)) if self.ns else (0, 0)
        return {"waiting": wait / (run + wait) if run + wait else float("nan"), "cpu": run / 1e9}


def step_times(run_dir: Path) -> dict:
    """Training time to the last step, steps/s, and the longest and median interval between step events."""
    steps = [e for e in map(json.loads, (run_dir / "events.jsonl").open()) if e.get("kind") == "step"]
    t = [e["elapsed_s"] for e in steps]
    gaps = [b - a for a, b in zip(t, t[1:])]
    median = statistics.median(gaps)
    return {"time": t[-1], "rate": steps[-1]["step"] / t[-1], "gap": max(gaps), "median_gap": median,
            "stall": max(gaps) - median}


def cli_run(out: Path) -> dict:
    child = subprocess.Popen([sys.executable, "-m", "hard_core", *CLI, "--out", str(out)], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    waiting = Waiting(lambda: child.pid)
    if child.wait():
        raise SystemExit(f"the CLI run failed (exit {child.returncode})")
    return {**step_times(out), **waiting.result()}


def engine_pid(runs: Path) -> int | None:
    """The pid of the lab's foreground run (not the KD twin), once the lab has started it."""
    for lab in runs.glob("*/lab.json"):
        with contextlib.suppress(OSError, ValueError):
            info = json.loads(lab.read_text())
            if not info.get("background") and info.get("pid"):
                return info["pid"]
    return None


def lab_run(runs: Path, twin: bool, warm_s: float) -> dict:
    from playwright.sync_api import sync_playwright

    with lab_server(runs) as url, sync_playwright() as p:
        b = browser(p)
        page = b.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(url)
        page.get_by_role("button", name="Start").wait_for(timeout=120_000)
        if not twin:
            page.get_by_text("Also train its plain-KD twin").click()
        page.wait_for_timeout(warm_s * 1000)  # the standby engine loads torch and the digits meanwhile
        t0, w0 = time.perf_counter(), time.time()
        waiting = Waiting(lambda: engine_pid(runs))
        page.get_by_role("button", name="Start").click()
        page.locator('[data-testid="stImage"]').first.wait_for(timeout=120_000)
        first = time.perf_counter() - t0
        page.wait_for_timeout(1000)
        eta = page.locator('[data-testid="stProgress"]').first.inner_text()
        page.get_by_text("finished · step").first.wait_for(timeout=900_000)
        (run_dir,) = [d.parent for d in runs.glob("*/lab.json") if not json.loads(d.read_text()).get("background")]
        lab = json.loads((run_dir / "lab.json").read_text())
        ends = {"run": finished_at(run_dir) - w0}
        if twin:  # the session is over when its KD twin has finished too
            ends["twin"] = finished_at(runs / lab["twin"], timeout=900) - w0
            ends["twin_time"] = step_times(runs / lab["twin"])["time"]
        b.close()
        first_snapshot = min(p.stat().st_mtime for p in (run_dir / "snapshots").iterdir())
        where = {"queued": lab["created"] - w0, "started": lab["started"] - w0, "written": first_snapshot - w0}
        return {**step_times(run_dir), "first": first, "eta": eta.strip(), "where": where, "ends": ends,
                **waiting.result()}


def finished_at(run_dir: Path, timeout: float = 0.0) -> float:
    """The wall-clock time at which a run's status said "finished" (waiting up to `timeout` s for it)."""
    deadline = time.time() + timeout
    while True:
        with contextlib.suppress(OSError, ValueError):
            status = json.loads((run_dir / "status.json").read_text())
            if status.get("state") == "finished":
                return status["updated"]
        if time.time() > deadline:
            raise SystemExit(f"{run_dir.name} did not finish")
        time.sleep(0.5)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=3, help="CLI/lab pairs to run (default 3)")
    ap.add_argument("--no-twin", dest="twin", action="store_false", help="Start without the KD twin")
    ap.add_argument("--warm", type=float, default=15.0, help="seconds between page load and Start, while the "
                    "standby engine loads (default 15)")
    args = ap.parse_args(argv)
    print(f"config: python -m hard_core {' '.join(CLI)}; lab twin: {'on' if args.twin else 'off'}; "
          f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    rows = []
    for i in range(args.pairs):
        with tempfile.TemporaryDirectory() as tmp:
            cli = cli_run(Path(tmp) / "cli")
            lab = lab_run(Path(tmp) / "runs", args.twin, args.warm)
        cost = lab["time"] / cli["time"] - 1
        rows.append((cli, lab, cost))
        print(f"pair {i + 1}: Start -> first images {lab['first']:.1f} s (run queued at "
              + ", started at ".join(f"{lab['where'][k]:.1f}" for k in ("queued", "started"))
              + f" s, first snapshot written at {lab['where']['written']:.1f} s; 1 s later: {lab['eta']!r}) | "
              f"CLI {cli['time']:.1f} s, {cli['rate']:.1f} steps/s, longest interval {cli['gap']:.2f} s, "
              f"{cli['cpu']:.0f} CPU s, waiting for a CPU {100 * cli['waiting']:.0f}% | "
              f"lab {lab['time']:.1f} s, {lab['rate']:.1f} steps/s, longest interval {lab['gap']:.2f} s "
              f"(median {lab['median_gap']:.2f} s: a stall of {lab['stall']:.2f} s), {lab['cpu']:.0f} CPU s, "
              f"waiting for a CPU {100 * lab['waiting']:.0f}% | lab cost {100 * cost:+.0f}% | "
              f"Start -> run finished {lab['ends']['run']:.1f} s"
              + (f", twin finished {lab['ends']['twin']:.1f} s (its training {lab['ends']['twin_time']:.1f} s)"
                 if "twin" in lab["ends"] else "")
              + f" | load {os.getloadavg()[0]:.1f}", flush=True)
    med = statistics.median
    session = med(max(v for k, v in r[1]["ends"].items() if k != "twin_time") for r in rows)
    print(f"median over {len(rows)}: Start -> first images {med(r[1]['first'] for r in rows):.1f} s; "
          f"the run's training {med(r[1]['time'] for r in rows):.1f} s; Start -> "
          + ("run and twin" if args.twin else "run") + f" finished {session:.1f} s"
          + (f"; the twin finished before the run in {sum(r[1]['ends']['twin'] <= r[1]['ends']['run'] for r in rows)}"
             f" of {len(rows)}" if args.twin else "") + "; "
          f"CLI {med(r[0]['rate'] for r in rows):.1f} steps/s; lab {med(r[1]['rate'] for r in rows):.1f} steps/s; "
          f"lab cost {100 * med(r[2] for r in rows):+.0f}%; the run waiting for a CPU: CLI "
          f"{100 * med(r[0]['waiting'] for r in rows):.0f}%, lab {100 * med(r[1]['waiting'] for r in rows):.0f}% "
          f"of its time; longest stall in the lab (longest interval between "
          f"logged steps - their median) {med(r[1]['stall'] for r in rows):.2f} s "
          f"(worst {max(r[1]['stall'] for r in rows):.2f} s)")


if __name__ == "__main__":
    main()
