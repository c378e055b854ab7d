"""Class 1 of issue 24: no file in a runs folder can make a reader raise. A seeded generator (no hypothesis)
writes random bytes, torn and NUL-filled writes, and valid JSON of the wrong type or shape into every file a
run folder holds, and every reader of the engine and the lab must return something a consumer can index."""
import json
import random
from pathlib import Path

import pytest

from hard_core import jsonfile
from hard_core.checkpoint import _json as metadata_json
from hard_core.errors import UserError
from hard_core.runs import RunReader, final_metrics, list_runs, read_control
from hard_core.runs.reader import HOST, run_status, typed_config
from hard_core.runs.store import _lines
from lab import compare as lab_compare
from lab import scheduler as lab_scheduler
from lab.live import RunView, saved_config, world_text

GOOD = [  # one event of each kind, as RunWriter writes them
    {"kind": "status", "step": 0, "state": "starting", "message": "loading", "total_steps": 20},
    {"kind": "step", "step": 10, "loss": 1.5, "lr": 0.001, "temperature": 4.0, "alpha": 1.0, "steps_per_s": 9.0,
     "elapsed_s": 1.0, "extra": {"hardness": 1.2}},
    {"kind": "eval", "step": 20, "model": "student", "acc": {"test": 0.9, "shift": 0.5}, "agree": {"test": 0.9}},
    {"kind": "snapshot", "step": 1, "keys": ["clean"], "file": "snapshots/000001.safetensors"},
    {"kind": "checkpoint", "step": 20},
]
STATUS = {"state": "finished", "step": 20, "total_steps": 20, "message": "done", "pid": 1, "host": "h",
          "steps_per_s": 9.0, "updated": 1.0}
CONFIG = {"config": {"steps": 20, "lr": 0.001, "hard": "affine", "world": "shift", "dataset": "mnist5k"},
          "distributed": {"world_size": 1, "backend": None}}
LAB = {"owner": "k", "created": 1.0, "config": CONFIG["config"], "twin": "t", "background": False, "pid": 1}


def random_json(rng: random.Random, depth: int = 0):
    """Any JSON value: the wrong type for whatever field it lands in."""
    kinds = ["int", "float", "str", "bool", "null", "big"] + (["list", "dict"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "list":
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if kind == "dict":
        return {rng.choice(["acc", "step", "kind", "model", "x", "test", ""]): random_json(rng, depth + 1)
                for _ in range(rng.randint(0, 3))}
    return {"int": lambda: rng.randint(-2**70, 2**70), "float": lambda: rng.choice([1.5, -0.0, 1e308, float("nan")]),
            "str": lambda: rng.choice(["", "fast", "../../etc/passwd", "**bold** ![x](http://e/x.png)", "\x00", "\ud800"]),
            "bool": lambda: rng.random() < 0.5, "null": lambda: None, "big": lambda: 10 ** 400}[kind]()


def mutate(rng: random.Random, good: dict) -> dict:
    """`good` with one field dropped, retyped or added: an eval without `acc`, `acc` a string, `step` a list."""
    bad = dict(good)
    key = rng.choice([*bad, "step", "acc", "kind", "model"])
    if rng.random() < 0.3:
        bad.pop(key, None)
    else:
        bad[key] = random_json(rng)
    return bad


def random_bytes(rng: random.Random, valid: bytes) -> bytes:
    """Hostile bytes: binary noise, NULs, a torn write, bad UTF-8 inside valid JSON, deep nesting, huge numbers."""
    choice = rng.randrange(8)
    if choice == 0:
        return rng.randbytes(rng.randint(0, 300))
    if choice == 1:
        return b"\x00" * rng.randint(1, 50)
    if choice == 2:
        return valid[:rng.randint(0, len(valid))]
    if choice == 3:
        i = rng.randint(0, len(valid))
        return valid[:i] + rng.choice([b"\xff", b"\xc3", b"\x00", b"\xed\xa0\x80"]) + valid[i:]
    if choice == 4:
        return b"[" * rng.choice([1000, 100_000]) + b"]" * rng.choice([0, 1000])
    if choice == 5:
        return b"1" * 5000
    if choice == 6:
        return json.dumps(random_json(rng)).encode()
    return json.dumps(mutate(rng, json.loads(valid))).encode()


def events_bytes(rng: random.Random) -> bytes:
    """A history of good, mutated and binary lines, sometimes ending mid-line."""
    lines = []
    for _ in range(rng.randint(0, 12)):
        good = rng.choice(GOOD)
        r = rng.random()
        line = json.dumps(good).encode() if r < 0.4 else json.dumps(mutate(rng, good)).encode() if r < 0.8 \
            else random_bytes(rng, json.dumps(good).encode()).replace(b"\n", b" ")
        lines.append(line + b"\n")
    return b"".join(lines) + (rng.randbytes(rng.randint(0, 20)) if rng.random() < 0.3 else b"")


def hostile_run(rng: random.Random, d: Path) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for name, good in (("status.json", STATUS), ("config.json", CONFIG), ("lab.json", LAB), ("control.json", {})):
        valid = json.dumps(good).encode()
        (d / name).write_bytes(valid if rng.random() < 0.2 else random_bytes(rng, valid))
    (d / "events.jsonl").write_bytes(events_bytes(rng))


def read_everything(root: Path, d: Path) -> None:
    """Every reader of a run folder, and what the consumers then index."""
    st = run_status(d)
    assert isinstance(st, dict)
    assert jsonfile.typed(st, jsonfile.STATUS) == st  # every field of its type
    reader = RunReader(d)
    events = reader.poll()
    assert all(jsonfile.valid_event(e) for e in events)
    written = [e for e in _lines(d / "events.jsonl") if e["kind"] != "snapshot"]  # no snapshot files here
    assert [e for e in events if e["kind"] != "snapshot"] == written  # the writer's resume reads lines as the tail
    assert isinstance(reader.config(), dict) and isinstance(saved_config(d), dict)
    metrics = final_metrics(d)
    assert isinstance(metrics["step"], int) and all(isinstance(v, dict) for k, v in metrics.items() if k != "step")
    assert isinstance(read_control(d), dict)
    assert isinstance(world_text(d), str)
    assert isinstance(lab_scheduler.status(d), dict)
    lab = lab_scheduler.lab_file(d)
    assert lab is None or all(lab_scheduler.LAB[k][0](v) for k, v in lab.items() if k in lab_scheduler.LAB)
    lab_compare._curves(str(d), 0, rng_key(d))
    view = RunView(d.name, d)
    view.poll()
    view.snapshot_events()
    view.latest_probe()
    assert isinstance(list_runs(root), list)
    assert isinstance(lab_scheduler.Scheduler(root, max_running=0).queue(), list)


def rng_key(d: Path) -> int:
    return (d / "events.jsonl").stat().st_size + hash(d.name)


@pytest.mark.parametrize("seed", range(6))
def test_no_file_in_a_run_folder_makes_a_reader_raise(seed, tmp_path):
    rng = random.Random(seed)
    root = tmp_path / "runs"
    for i in range(40):
        d = root / f"r{i}"
        hostile_run(rng, d)
        read_everything(root, d)


def test_pure_readers_take_any_bytes_and_any_json():
    rng = random.Random(24)
    valid = json.dumps(GOOD[2]).encode()
    for _ in range(3000):
        data = random_bytes(rng, valid)
        value, why = jsonfile.parse(data)
        assert why is None or value is None
        events, skipped = jsonfile.parse_lines(data + b"\n")
        assert all(jsonfile.valid_event(e) for e in events) and skipped + len(events) <= data.count(b"\n") + 1
        assert isinstance(typed_config(value), dict)
        assert isinstance(jsonfile.typed(value, jsonfile.STATUS), dict)
        text = data.decode("utf-8", "replace")  # a checkpoint's metadata: an object, or one line
        if isinstance(jsonfile.parse(text)[0], dict):
            assert isinstance(metadata_json("x", {"spec": text}, "spec"), dict)
        else:
            with pytest.raises(UserError, match="is not a hard_core checkpoint"):
                metadata_json("x", {"spec": text}, "spec")


@pytest.mark.parametrize("line,kept", [
    (GOOD[2], True),
    ({**GOOD[2], "acc": "0.9"}, False),  # acc a string
    ({k: v for k, v in GOOD[2].items() if k != "acc"}, False),  # an eval without acc
    ({**GOOD[2], "acc": {"test": "high"}}, False),
    ({**GOOD[2], "model": "nobody"}, False),
    ({**GOOD[1], "step": 10.5}, False),  # step a float
    ({**GOOD[1], "step": [10]}, False),  # step a list
    ({**GOOD[1], "step": True}, False),
    ({**GOOD[1], "step": -1}, False),
    ({**GOOD[1], "loss": None}, False),
    ({**GOOD[0], "state": 3}, False),
    ({**GOOD[3], "file": "../../../etc/passwd"}, False),  # never a path out of the run folder
    ({**GOOD[3], "file": "/etc/passwd"}, False),
    ({"kind": "newer", "step": 3, "anything": [1]}, True),  # a newer engine's kind is kept
    ({"step": 3}, False),
])
def test_events_of_the_wrong_shape_are_skipped_and_counted(line, kept, tmp_path):
    (tmp_path / "events.jsonl").write_bytes(json.dumps(line).encode() + b"\n\xff\xfe\x00\n" + json.dumps(GOOD[4]).encode() + b"\n")
    reader = RunReader(tmp_path)
    assert reader.poll() == ([line] if kept else []) + [GOOD[4]]
    assert reader.skipped == (1 if kept else 2)


def test_a_status_of_the_wrong_types_keeps_what_is_right(tmp_path):
    (tmp_path / "status.json").write_text(json.dumps({**STATUS, "step": "20", "pid": 10 ** 30, "updated": [1]}))
    st = run_status(tmp_path)
    assert "step" not in st and "updated" not in st and st["state"] == "finished"
    (tmp_path / "status.json").write_text(json.dumps({**STATUS, "state": "running", "pid": 10 ** 30, "host": HOST}))
    assert run_status(tmp_path)["state"] == "died"  # a pid no process can have is not alive (no OverflowError)
    (tmp_path / "status.json").write_bytes(b'{"state": "fin\xffished"}')
    assert run_status(tmp_path) == {}


def test_a_resume_drops_event_lines_of_the_wrong_shape(tmp_path):
    """Class 8: lines of the wrong shape in events.jsonl (where the failure handler itself once crashed)
    are dropped by the resume's rewrite; the run continues and its history is whole."""
    from hard_core.cli import main
    from hard_core.config import RunConfig
    from hard_core.runs import run_to_dir
    from hard_core.train import Checkpoint

    cfg = RunConfig(dataset="mnist5k", loss="ce", student="mlp", steps=6, checkpoint_every=2, eval_every=6,
                    suites="none", batch_size=32, threads=1)

    def crash_after_step_2(event):
        if isinstance(event, Checkpoint) and event.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_to_dir(cfg, tmp_path / "R", on_event=crash_after_step_2)
    with open(tmp_path / "R" / "events.jsonl", "ab") as f:
        f.write(b'{"kind": "step", "step": "x", "loss": 1}\n{"kind": "eval", "step": 1, "model": "student"}\n'
                b'{"kind": "status", "step": [1], "state": "running"}\n\xff\xfe\x00 binary\n[1, 2]\n')
    assert main(["train", "--out", str(tmp_path / "R"), "--resume"]) == 0
    lines = (tmp_path / "R" / "events.jsonl").read_bytes().splitlines()
    assert all(jsonfile.valid_event(json.loads(line)) for line in lines)
    assert json.loads(lines[-1])["state"] == "finished" and RunReader(tmp_path / "R").skipped == 0
