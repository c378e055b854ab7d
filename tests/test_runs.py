import json
import os

import torch

from hard_core.config import RunConfig
from hard_core.runs import ControlFile, RunReader, RunWriter, list_runs, request
from hard_core.train import Snapshot, Status, StepMetrics


def test_reader_tails_and_tolerates_a_half_written_line(tmp_path):
    w = RunWriter(tmp_path / "r", RunConfig(steps=10))
    reader = RunReader(tmp_path / "r")
    w.write(Status(0, "running", total_steps=10))
    w.write(StepMetrics(1, 0.5, 1e-3, 4.0, 1.0, 10.0, 0.1))
    assert [e["kind"] for e in reader.poll()] == ["status", "step"]
    # another process is mid-write: half a line, no newline yet
    with open(tmp_path / "r" / "events.jsonl", "a") as f:
        f.write('{"kind": "step", "step": 2, "lo')
    assert reader.poll() == []
    with open(tmp_path / "r" / "events.jsonl", "a") as f:
        f.write('ss": 0.25}\n' + "not json\n")
    new = reader.poll()
    assert new == [{"kind": "step", "step": 2, "loss": 0.25}] and reader.skipped == 1
    assert reader.status()["state"] == "running" and reader.status()["step"] == 1


def test_snapshots_are_files_referenced_from_events(tmp_path):
    w = RunWriter(tmp_path / "r", RunConfig(steps=10))
    img = torch.randint(0, 255, (4, 1, 8, 8), dtype=torch.uint8)
    w.write(Snapshot(5, {"clean": img}))
    ev = RunReader(tmp_path / "r").poll()[0]
    assert ev["file"] == "snapshots/000005.safetensors"
    assert torch.equal(RunReader(tmp_path / "r").snapshot(ev)["clean"], img)


def test_status_is_replaced_atomically_and_runs_are_listed(tmp_path):
    w = RunWriter(tmp_path / "a", RunConfig(steps=3))
    w.write(Status(3, "finished", total_steps=3))
    assert json.loads((tmp_path / "a" / "status.json").read_text())["state"] == "finished"
    assert not [p for p in os.listdir(tmp_path / "a") if p.endswith(".tmp")]
    runs = list_runs(tmp_path)
    assert [r.id for r in runs] == ["a"] and runs[0].state == "finished"


def test_control_file_is_polled_cheaply_and_merges(tmp_path):
    (tmp_path / "r").mkdir()
    control = ControlFile(tmp_path / "r")
    assert control() == {}
    request(tmp_path / "r", lr=0.01)
    request(tmp_path / "r", state="pause")
    assert control() == {"lr": 0.01, "state": "pause"}
