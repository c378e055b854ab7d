"""`--log`: TensorBoard and W&B receive the run's own event stream, checked by reading back what they wrote
(TensorBoard's event files; the offline W&B run's transaction log) against the run's events.jsonl."""
import io
import json
import os
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hard_core.cli import main
from hard_core.config import RunConfig
from hard_core.errors import UserError
from hard_core.runs import RunReader, run_to_dir
from hard_core.runs import loggers
from hard_core.runs.loggers import WandbLog, gallery
from hard_core.train import Snapshot, StepMetrics

# the smallest run that yields every kind of event: HARD's game metrics, teacher and student evaluations on
# two suites, snapshots with images at steps 1, 10 and 20 (the teacher's reference is shipped in assets/cache)
CFG = dict(dataset="mnist5k", canvas=28, teacher="default", student="mlp", steps=20, batch_size=32, log_every=5,
           eval_every=10, snapshot_every=10, probe_every=10, checkpoint_every=10, suites="shift:2", hard="affine",
           seed=0)


def run_events(out: Path, kind: str) -> list[dict]:
    return [e for e in RunReader(out).poll() if e["kind"] == kind]


def children() -> list[str]:
    """The command lines of this process's live child processes."""
    pids = []
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        pids += Path(f"/proc/{os.getpid()}/task/{task}/children").read_text().split()
    names = []
    for pid in pids:
        try:
            names.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            pass  # ended meanwhile
    return names


# ---- TensorBoard ----

def tensorboard(out: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_tensorboard_holds_the_runs_scalars_images_and_config(tmp_path):
    out = run_to_dir(RunConfig(**CFG, log="tensorboard"), tmp_path / "r")
    acc = tensorboard(out)
    steps = run_events(out, "step")
    loss = {e.step: e.value for e in acc.Scalars("loss/train")}
    assert loss == pytest.approx({e["step"]: e["loss"] for e in steps}, rel=1e-6)  # float32 in TensorBoard
    assert sorted(loss) == [5, 10, 15, 20]
    for name in ("hardness", "disagreement", "consistency", "spread"):
        got = {e.step: e.value for e in acc.Scalars(f"hard/{name}")}
        assert got == pytest.approx({e["step"]: e["extra"][name] for e in steps}, rel=1e-6), name
    assert [e.value for e in acc.Scalars("knobs/lr")] == pytest.approx([e["lr"] for e in steps], rel=1e-6)
    assert {"knobs/temperature", "knobs/alpha", "speed/steps_per_s"} <= set(acc.Tags()["scalars"])

    evals = run_events(out, "eval")
    assert {e["model"] for e in evals} == {"student", "teacher"}
    for e in evals:
        for suite, value in e["acc"].items():
            (point,) = [p for p in acc.Scalars(f"accuracy/{e['model']}/{suite}") if p.step == e["step"]]
            assert point.value == pytest.approx(value, rel=1e-6)
        for suite, value in e["agree"].items():
            (point,) = [p for p in acc.Scalars(f"agreement/{suite}") if p.step == e["step"]]
            assert point.value == pytest.approx(value, rel=1e-6)
    assert {"accuracy/student/test", "accuracy/student/shift", "accuracy/teacher/shift"} <= set(acc.Tags()["scalars"])

    # every snapshot's images, pixel for pixel (PNG is lossless)
    snapshots = run_events(out, "snapshot")
    for name in ("clean", "augmented"):
        images = acc.Images(f"gallery/{name}")
        assert [i.step for i in images] == [e["step"] for e in snapshots] == [1, 10, 20]
        for image, event in zip(images, snapshots):
            shown = np.asarray(Image.open(io.BytesIO(image.encoded_image_string)).convert("RGB"))
            expected = gallery(Snapshot(event["step"], RunReader(out).snapshot(event)))[f"gallery/{name}"]
            assert shown.shape == (62, 242, 3)  # 16 images of 28 x 28, 8 a row, 2 pixels apart
            assert np.array_equal(shown, expected.permute(1, 2, 0).numpy())

    (config,) = acc.Tensors("config/text_summary")
    text = config.tensor_proto.string_val[0].decode()
    assert '"hard": "affine"' in text and '"log": "tensorboard"' in text


def test_a_resumed_run_reads_as_one_history_in_tensorboard(tmp_path):
    cfg = RunConfig(**CFG, log="tensorboard")

    def crash_after_step_15(event):  # after the checkpoint at 10: TensorBoard already holds step 15
        if isinstance(event, StepMetrics) and event.step == 15:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_to_dir(cfg, tmp_path / "r", on_event=crash_after_step_15)
    assert sorted(p.step for p in tensorboard(tmp_path / "r").Scalars("loss/train")) == [5, 10, 15]
    run_to_dir(cfg, tmp_path / "r", resume=True)
    acc = tensorboard(tmp_path / "r")
    assert len(list((tmp_path / "r" / "tensorboard").glob("events.out.tfevents.*"))) == 2
    loss = {p.step: p.value for p in acc.Scalars("loss/train")}
    assert len(acc.Scalars("loss/train")) == 4  # the first attempt's step 15 is purged, not shown twice
    assert loss == pytest.approx({e["step"]: e["loss"] for e in run_events(tmp_path / "r", "step")}, rel=1e-6)


# ---- W&B ----

def wandb_records(path: Path) -> list:
    """The records of a W&B transaction log (`run-<id>.wandb`). It is a LevelDB log (32 KiB blocks of chunks:
    crc32 of type + data, length, type FULL/FIRST/MIDDLE/LAST) after a 7-byte header (":W&B", 0xBEE1, 0),
    each record a `wandb_internal_pb2.Record`. wandb 0.31 no longer ships a Python reader (its Go core reads
    the file), so this is one, with the checksums checked."""
    from wandb.proto.wandb_internal_pb2 import Record

    data = path.read_bytes()
    assert struct.unpack("<4sHB", data[:7]) == (b":W&B", 0xBEE1, 0)
    block, pos, pending, records = 32768, 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a chunk header is padding
            pos += block - pos % block
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk = data[pos + 7:pos + 7 + length]
        if kind == 0:  # zeros: preallocated space or a block's padding
            pos += block - pos % block
            continue
        assert zlib.crc32(bytes([kind]) + chunk) == crc and len(chunk) == length, f"corrupt chunk at byte {pos}"
        pos += 7 + length
        pending += chunk
        if kind in (1, 4):  # FULL or LAST: a whole record
            record = Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def history(records) -> dict[int, dict]:
    """Step -> the values logged at that step."""
    out = {}
    for r in records:
        if r.WhichOneof("record_type") == "history":
            row = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
            out.setdefault(row["_step"], {}).update(row)
    return out


@pytest.fixture
def wandb_env(tmp_path, monkeypatch):
    """W&B offline and silent, its user-level folders in the test's temporary folder, not $HOME."""
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for var in ("WANDB_API_KEY", "WANDB_PROJECT", "WANDB_DISABLED", "WANDB_RUN_ID", "WANDB_RESUME"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "home").mkdir()
    return tmp_path


def test_wandb_offline_run_holds_the_runs_history_and_images(wandb_env, capfd):
    out = run_to_dir(RunConfig(**CFG, log="wandb"), wandb_env / "r")
    (log,) = (out / "wandb").glob("offline-run-*/run-*.wandb")
    records = wandb_records(log)
    kinds = [r.WhichOneof("record_type") for r in records]
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.display_name == "r" and run.project == "hard-lab"
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["hard"] == "affine" and config["steps"] == 20 and config["log"] == "wandb"
    assert kinds[-1] == "exit" and records[-1].exit.exit_code == 0

    rows = history(records)
    steps = run_events(out, "step")
    assert {s: row["loss/train"] for s, row in rows.items() if "loss/train" in row} == \
        {e["step"]: e["loss"] for e in steps}  # the very numbers of events.jsonl
    assert {s: row["hard/hardness"] for s, row in rows.items() if "hard/hardness" in row} == \
        {e["step"]: e["extra"]["hardness"] for e in steps}
    for e in run_events(out, "eval"):
        assert all(rows[e["step"]][f"accuracy/{e['model']}/{k}"] == v for k, v in e["acc"].items())
        assert all(rows[e["step"]][f"agreement/{k}"] == v for k, v in e["agree"].items())
    for e in run_events(out, "snapshot"):
        for name in ("clean", "augmented"):
            image = rows[e["step"]][f"gallery/{name}/path"]
            assert rows[e["step"]][f"gallery/{name}/_type"] == "image-file"
            assert (log.parent / "files" / image).is_file()

    assert not [c for c in children() if "wandb" in c]  # W&B's service ended with the run
    assert not list((wandb_env / "home").rglob("*wandb*"))
    captured = capfd.readouterr()
    assert "wandb" not in captured.out and "wandb:" not in captured.err  # silent


def test_wandb_without_a_mode_or_a_key_is_offline_and_says_so_once(tmp_path, monkeypatch, capsys):
    import wandb

    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_DISABLED"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setattr(WandbLog, "_said_offline", False)
    calls = []

    class FakeRun:
        def log(self, values, step):
            calls.append(("log", step, values))

        def finish(self, exit_code):
            calls.append(("finish", exit_code))

    monkeypatch.setattr(wandb, "init", lambda **kw: calls.append(("init", kw)) or FakeRun())
    cfg = RunConfig(steps=3, log="wandb")
    for _ in range(2):
        log = WandbLog(cfg, tmp_path / "r")
        log.write(StepMetrics(1, 0.5, 1e-3, 4.0, 1.0, 10.0, 0.1, {"hardness": 0.25}))
        log.close()  # no Status "finished" came: the W&B run is marked failed
    inits = [c[1] for c in calls if c[0] == "init"]
    assert [kw["mode"] for kw in inits] == ["offline", "offline"]
    assert inits[0]["dir"] == str(tmp_path / "r") and inits[0]["name"] == "r"
    assert ("log", 1, {"loss/train": 0.5, "knobs/lr": 1e-3, "knobs/temperature": 4.0, "knobs/alpha": 1.0,
                       "speed/steps_per_s": 10.0, "hard/hardness": 0.25}) in calls
    assert ("finish", 1) in calls
    err = capsys.readouterr().err
    assert err.count("offline") == 1 and err.count("\n") == 1, err

    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)  # a key: W&B decides (online unless WANDB_MODE says otherwise)
    WandbLog(cfg, tmp_path / "r").close()
    assert [c[1]["mode"] for c in calls if c[0] == "init"][-1] is None


# ---- missing packages, failures, drawing ----

@pytest.mark.parametrize("name, modules", [("tensorboard", ("tensorboard", "torch.utils.tensorboard")),
                                           ("wandb", ("wandb",))])
def test_a_missing_package_is_one_line_before_training(tmp_path, monkeypatch, capsys, name, modules):
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)  # `import` raises ImportError
    with pytest.raises(UserError, match=f"pip install {name}$"):
        run_to_dir(RunConfig(**CFG, log=name), tmp_path / "r")
    assert not (tmp_path / "r").exists()  # refused before the run directory is made: the same --out works later

    code = main(["train", "--dataset", "mnist5k", "--canvas", "28", "--teacher", "default", "--steps", "5",
                 "--log", f"{name},tensorboard", "--out", str(tmp_path / "cli")])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        f"error: --log {name} needs the {name} package: pip install {name}"


def test_a_failing_logger_warns_once_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    def broken(event):
        raise OSError("disk full")

    monkeypatch.setattr(loggers, "scalars", broken)
    out = run_to_dir(RunConfig(**{**CFG, "steps": 10}, log="tensorboard"), tmp_path / "r")
    assert RunReader(out).status()["state"] == "finished"
    assert (out / "checkpoint.safetensors").is_file()
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warnings == ["warning: --log tensorboard failed (disk full); training goes on"]
    assert tensorboard(out).Tags()["images"]  # what did not fail was still written


def test_gallery_draws_images_and_signals_and_skips_the_rest():
    rgb = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8)
    signals = torch.tensor([[[0, 255, 255]], [[128, 128, 128]]], dtype=torch.uint8)  # N x 1 x L
    grids = gallery(Snapshot(1, {"clean": rgb, "augmented": signals, "label": torch.arange(3)}))
    assert grids["gallery/clean"].shape == (3, 12, 32) and grids["gallery/clean"].dtype == torch.uint8
    assert torch.equal(grids["gallery/clean"][:, 2:10, 2:10], rgb[0])
    plot = grids["gallery/augmented"]
    assert plot.shape == (3, 36, 12)  # two 32-pixel-high plots of 3 samples, side by side
    first = plot[0, 2:34, 2:5]  # 0 -> the bottom row, 255 -> the top, the rise drawn in between
    assert first[31, 0] == 255 and first[:, 0].sum() == 255 * 32 and first[0, 2] == 255 and first[1:, 2].sum() == 0
    assert gallery(Snapshot(1, {"clean": torch.rand(2, 1, 8, 8), "augmented": torch.zeros(0, 1, 8, 8,
                                                                                          dtype=torch.uint8)})) == {}
    assert gallery(Snapshot(1, {})) == {}


def test_no_log_opens_nothing(tmp_path):
    assert loggers.open_loggers(RunConfig(log="none"), tmp_path) == []
    assert not list(tmp_path.iterdir())
