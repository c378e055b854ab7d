"""The lab's run management (app/lab/runs.py): safe paths, the queue, engine processes, ownership."""
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hard_core.config import RunConfig, validate
from hard_core.errors import UserError
from hard_core.runs import final_metrics

from lab import runs

QUICK = dict(kind="pretrain", loss="ce", dataset="mnist5k", canvas=28, student="mlp", steps=30, eval_every=30,
             batch_size=32, suites="noise:0.2")
LONG = {**QUICK, "steps": 100_000, "eval_every": 100_000}  # runs until it is killed


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """A runs folder in tmp_path and room for one run at a time; every process started is ended after."""
    monkeypatch.setenv("HARD_LAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("HARD_LAB_MAX_RUNS", "1")
    runs.shutdown()
    yield runs.root()
    runs.shutdown()


def wait_for(condition, timeout=90.0, what="condition"):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.2)


def fake_run(root: Path, name: str, state: str, pid: int | None) -> Path:
    """A run folder as a terminal (no lab.json) would leave it."""
    d = root / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"config": RunConfig(**QUICK).model_dump(), "created": 1.0}))
    (d / "status.json").write_text(json.dumps({"state": state, "step": 3, "total_steps": 30, "pid": pid,
                                               "updated": time.time()}))
    return d


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_run_path_stays_inside_the_runs_folder(lab):
    assert runs.run_path("20261123-081500-ab12") == lab / "20261123-081500-ab12"
    assert runs.run_path("T_1.v2") == lab / "T_1.v2"


@pytest.mark.parametrize("bad", ["", "..", "../x", "a/../../x", "/etc/passwd", "a/b", "a\\b", "x y", "ü", ".hidden",
                                 "-rf", "a..b", "ok\n", "x" * 102, None, 7])
def test_run_path_rejects_anything_but_a_plain_id(lab, bad):
    with pytest.raises(UserError):
        runs.run_path(bad)


def test_a_symlink_out_of_the_runs_folder_is_refused(lab, tmp_path):
    outside = fake_run(tmp_path, "outside", "finished", None)
    (lab / "evil").symlink_to(outside, target_is_directory=True)
    fake_run(lab, "fine", "finished", None)
    with pytest.raises(UserError, match="outside"):
        runs.run_path("evil")
    with pytest.raises(UserError):
        runs.set_knobs("evil", lr=0.1)
    assert [r["id"] for r in runs.list_all()] == ["fine"]
    assert not (outside / "control.json").exists()


def test_submit_queues_behind_a_live_run_cancels_and_keeps_owners_apart(lab):
    fake_run(lab, "cli", "running", os.getpid())  # an alive process of another tool holds the only slot
    cfg = RunConfig(**QUICK)
    first, second = runs.submit(cfg, "alice"), runs.submit(cfg, "alice")
    assert runs.state(first) == runs.state(second) == "queued"
    assert (runs.queue_position(first), runs.queue_position(second)) == (1, 2)
    d = runs.run_path(first)
    lab_json, status = json.loads((d / "lab.json").read_text()), json.loads((d / "status.json").read_text())
    assert lab_json["owner"] == runs.owner_id("alice") != "alice" and lab_json["config"] == cfg.model_dump(mode="json")
    assert "alice" not in (d / "lab.json").read_text()  # a copy of the file is not the key
    assert validate(RunConfig, json.loads((d / "request.json").read_text())) == cfg
    assert (status["state"], status["step"], status["total_steps"]) == ("queued", 0, 30)

    runs.shutdown()  # a server restart: the queue is files, a fresh scheduler finds it
    assert runs.queue_position(first) == 1
    runs.stop(first)
    assert runs.state(first) == "cancelled" and runs.queue_position(second) == 1
    assert runs.scheduler().tick() == [] and runs.scheduler().pids() == []

    rows = {r["id"]: r for r in runs.list_all()}
    assert list(rows)[:2] == [second, first]  # newest first
    assert rows[second]["queue_position"] == 1 and rows[second]["owner"] == runs.owner_id("alice")
    assert rows["cli"]["state"] == "running" and rows["cli"]["owner"] is None
    assert runs.can_control(second, "alice") and not runs.can_control(second, "bob")
    assert not runs.can_control(second, "") and not runs.can_control(second, None)
    assert not runs.can_control(second, runs.owner_id("alice"))  # what lab.json holds does not steer the run
    assert runs.owner("cli") is None and not runs.can_control("cli", "alice")
    assert not runs.can_control("../cli", "alice")

    runs.stop(second)
    (lab / "cli" / "status.json").write_text(json.dumps({"state": "running", "pid": dead_pid()}))
    assert runs.state("cli") == "died"  # says running, but its process is gone
    assert not any((lab / r / "process.log").exists() for r in (first, second))  # nothing was started


def test_queue_limits_per_browser_and_in_all_and_the_disk(lab, monkeypatch):
    """A stranger cannot fill the queue or the disk: a Start past a limit is one line and queues nothing."""
    fake_run(lab, "cli", "running", os.getpid())  # the only slot is taken: every submit waits
    monkeypatch.setenv("HARD_LAB_MAX_QUEUED_PER_BROWSER", "2")
    monkeypatch.setenv("HARD_LAB_MAX_QUEUED", "3")
    cfg = RunConfig(**QUICK)
    alice = [runs.submit(cfg, "alice"), runs.submit(cfg, "alice")]
    with pytest.raises(UserError, match="this browser has 2 waiting runs already"):
        runs.submit(cfg, "alice")
    runs.submit(cfg, "bob")
    with pytest.raises(UserError, match=r"the lab\'s queue is full \(3 waiting runs"):
        runs.submit(cfg, "carol")
    assert len([r for r in runs.list_all() if r["state"] == "queued"]) == 3
    runs.stop(alice[0])  # a cancelled run frees its place
    runs.submit(cfg, "alice")
    monkeypatch.setenv("HARD_LAB_MAX_QUEUED", "many")
    with pytest.raises(UserError, match="HARD_LAB_MAX_QUEUED='many' is not a whole number"):
        runs.submit(cfg, "dave")
    monkeypatch.setenv("HARD_LAB_MAX_QUEUED", "100")
    monkeypatch.setattr(runs.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 10**12, 50 * 2**20))
    with pytest.raises(UserError, match="only 50 MB left on the disk"):
        runs.submit(cfg, "dave")
    assert len([r for r in runs.list_all() if r["state"] == "queued"]) == 3


def test_knobs_are_checked_then_written_for_the_engine(lab):
    run = fake_run(lab, "r", "running", os.getpid()).name
    assert runs.set_knobs(run, lr=1e-4, temperature=2, alpha=None, hard_lambda=0) == \
        {"lr": 1e-4, "temperature": 2.0, "hard_lambda": 0.0}
    runs.pause(run)
    assert json.loads((lab / run / "control.json").read_text())["state"] == "pause"
    runs.resume(run)
    runs.stop(run)  # not queued: a request the engine reads at its next step
    assert json.loads((lab / run / "control.json").read_text())["state"] == "stop"
    for bad in [dict(lr=0), dict(lr=-1e-3), dict(temperature=math.nan), dict(lr=math.inf), dict(alpha=1.5),
                dict(lr="0.1"), dict(temperature=True), dict(beta=1.0)]:
        with pytest.raises(UserError):
            runs.set_knobs(run, **bad)
    with pytest.raises(UserError, match="no run"):
        runs.pause("missing")


def test_one_slot_runs_two_submissions_in_turn(lab):
    cfg = RunConfig(**QUICK)
    first, second = runs.submit(cfg, "me"), runs.submit(cfg, "me")
    assert runs.state(first) in ("starting", "running") and len(runs.scheduler().pids()) == 1
    assert runs.state(second) == "queued" and runs.queue_position(second) == 1
    wait_for(lambda: runs.state(first) == "finished", what="the first run to finish")
    wait_for(lambda: runs.state(second) == "finished", what="the second run to finish")
    d1, d2 = runs.run_path(first), runs.run_path(second)
    finished = json.loads((d1 / "status.json").read_text())["updated"]
    assert json.loads((d2 / "lab.json").read_text())["started"] >= finished - 0.5  # never two at once
    saved = json.loads((d1 / "config.json").read_text())
    assert saved["config"] == {**cfg.model_dump(), "threads": runs.scheduler().threads}  # exactly cfg
    assert saved["command"][-2:] == ["--threads", str(runs.scheduler().threads)]
    assert set(final_metrics(d1)["student"]) == {"test", "noise"}
    assert runs.queue_position(second) is None
    wait_for(lambda: runs.scheduler().pids() == [], timeout=20, what="the engines to exit")


def test_a_killed_run_is_shown_failed_and_shutdown_stops_every_child(lab, monkeypatch):
    monkeypatch.setenv("HARD_LAB_MAX_RUNS", "2")
    runs.shutdown()  # a scheduler with the new limit
    doomed, survivor = runs.submit(RunConfig(**LONG), "me"), runs.submit(RunConfig(**LONG), "me")
    wait_for(lambda: runs.state(doomed) == runs.state(survivor) == "running", what="both runs to train")
    pids = {r: json.loads((runs.run_path(r) / "lab.json").read_text())["pid"] for r in (doomed, survivor)}
    assert sorted(runs.scheduler().pids()) == sorted(pids.values())

    os.kill(pids[doomed], signal.SIGKILL)
    wait_for(lambda: runs.state(doomed) == "failed", timeout=10, what="the crash to show")
    status = json.loads((runs.run_path(doomed) / "status.json").read_text())
    assert "killed by signal 9" in status["message"]
    assert (runs.run_path(doomed) / "events.jsonl").stat().st_size > 0  # what it wrote is kept
    assert runs.state(survivor) == "running" and runs.scheduler().pids() == [pids[survivor]]

    runs.shutdown()
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert runs.state(survivor) == "stopped"  # SIGTERM: a checkpoint, then "stopped", never left "running"
    assert json.loads((runs.run_path(survivor) / "status.json").read_text())["message"] == "stopped by SIGTERM"


def test_a_warm_standby_process_takes_the_next_run(lab):
    """The scheduler's thread keeps one engine process ready (torch already imported); Start hands the
    run to it, so that process becomes the run's, writes its log, finishes it, and a new spare follows
    once the slot is free again (not while the run trains: no Start could use it).
    A spare loads at the lowest priority (its autogroup's nice, where Linux has them) and gets normal
    priority back with its run."""
    sched = runs.scheduler()
    wait_for(lambda: sched._spare is not None, what="a spare engine process")
    spare = sched._spare.pid
    group = Path(f"/proc/{spare}/autogroup")
    assert not group.exists() or group.read_text().split()[-1] == "19"
    run_id = runs.submit(RunConfig(**QUICK), owner="k3y")
    d = runs.run_path(run_id)
    assert json.loads((d / "lab.json").read_text())["pid"] == spare
    assert not group.exists() or group.read_text().split()[-1] == "0"
    assert os.getpriority(os.PRIO_PROCESS, spare) == 0
    time.sleep(1.0)  # two ticks: with the one slot taken no new spare loads (it would slow the run's twin)
    assert sched._spare is None or runs.state(run_id) not in ("starting", "running")
    wait_for(lambda: runs.state(run_id) == "finished", what="the run to finish")
    assert final_metrics(d)["student"]["test"] > 0.5 and (d / "process.log").stat().st_size > 0
    wait_for(lambda: sched._spare is not None and sched._spare.pid != spare, what="a new spare")
    second = sched._spare
    runs.shutdown()
    assert sched._spare is None and second.poll() is not None  # shutdown ends the waiting spare too


def test_a_twin_trains_in_the_background_beside_its_run_and_is_reused(lab):
    """With one slot, a run's plain-KD twin still starts at once: one thread, nice 19, not the warm
    standby; the next identical Start reuses it; the run, not the twin, is the owner's live run."""
    hard = RunConfig(dataset="mnist5k", canvas=28, teacher="default", hard="affine", steps=100_000,
                     eval_every=100_000, batch_size=32, suites="noise:0.2")
    run_id = runs.submit(hard, "me", twin=True)
    twin = runs.twin_of(run_id)
    assert twin and runs.run_path(twin) != runs.run_path(run_id)
    wait_for(lambda: runs.state(run_id) == runs.state(twin) == "running", what="both to train")
    lab_twin = json.loads((runs.run_path(twin) / "lab.json").read_text())
    assert lab_twin["background"] and lab_twin["config"]["hard"] == "none"
    assert os.getpriority(os.PRIO_PROCESS, lab_twin["pid"]) == 19
    group = Path(f"/proc/{lab_twin['pid']}/autogroup")
    assert not group.exists() or group.read_text().split()[-1] == "19"  # nice counts across sessions too
    assert os.getpriority(os.PRIO_PROCESS, json.loads((runs.run_path(run_id) / "lab.json").read_text())["pid"]) == 0
    command = json.loads((runs.run_path(twin) / "config.json").read_text())["command"]
    assert command[-2:] == ["--threads", "1"]
    assert runs.latest_live("me") == run_id and runs.latest_live("you") is None
    again = runs.submit(hard, "me", twin=True)  # the same configuration: the twin still training is reused
    assert runs.twin_of(again) == twin
    assert runs.twin_of(runs.submit(hard, "me", twin=False)) is None
    assert sum(r["background"] for r in runs.list_all()) == 1


def test_the_server_yields_to_runs_except_while_a_page_waits_for_first_images():
    """The server's session group drops to nice 10 (below the runs) and back to 0 while a page waits;
    tried in a process of its own session, as the server would be. Without Linux's autogroups the same
    calls must do nothing, silently."""
    code = ("from pathlib import Path\n"
            "from lab.scheduler import server_priority as p\n"
            "group = Path('/proc/self/autogroup')\n"
            "nice = lambda: group.read_text().split()[-1] if group.exists() else '-'\n"
            "p(); print(nice())\n"
            "p(waiting=True); print(nice())\n"
            "p(); print(nice())\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1] / "app",
                         capture_output=True, text=True, start_new_session=True, timeout=60)
    expected = ["10", "0", "10"] if Path("/proc/self/autogroup").exists() else ["-", "-", "-"]
    assert out.returncode == 0 and out.stdout.split() == expected, out.stderr
