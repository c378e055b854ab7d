"""A table of bad inputs (flags, config files, model specs, image files, environment variables) that each get
one line and exit 2 without changing what was written or leaving a run folder; and the cases that read a
finished run's folder: `compare` of two runs with one name, temp files of a killed write."""
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from hard_core.checkpoint import save_model
from hard_core.cli import main
from hard_core.config import RunConfig
from hard_core.models import build_model
from hard_core.runs import run_to_dir


@pytest.fixture(scope="module")
def finished_hard_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("finished") / "R"
    run_to_dir(RunConfig(dataset="mnist5k", canvas=40, teacher="default", student="mlp", hard="affine", steps=10,
                         checkpoint_every=5, eval_every=10, suites="shift:6", threads=1), run)
    return run


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, finished_hard_run):
    tmp = tmp_path_factory.mktemp("bad-files")
    make_bad_files(tmp, finished_hard_run)
    return tmp


def stat_print(folder: Path) -> dict:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def fingerprint(run: Path) -> dict:
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*")) if p.is_file() and p.name != "lock"}


ALIAS_BOMB = b"".join(  # issue 24's 452-byte file: nested aliases under suites, gigabytes once expanded
    [b'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n']
    + [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]\n".encode() for i in range(1, 8)]
    + [f"suites: [{','.join(['*a7'] * 9)}]\n".encode()])
HOSTILE_CONFIGS = {  # issue 24 class 3: config files that must each give one short line, fast, and no folder
    "bomb.yaml": ALIAS_BOMB,
    "anchor.yaml": b"steps: &s 10\nlog_every: *s\n",
    "huge.yaml": b"# " + b"x" * (2 << 20) + b"\n",
    "big-suite.yaml": b'suites: "' + b"x" * 200_000 + b'"\n',
    "big-dataset.yaml": b'dataset: "' + b"x" * 200_000 + b'"\n',
    "big-key.yaml": b"? " + b"k" * 100_000 + b"z\n: 1\n",  # an explicit key: plain ones stop at 1024
    "big-int.yaml": b"steps: " + b"9" * 5000 + b"\n",
    "latin1.yaml": b"steps: 10\n# caf\xe9\n",
    "binary.json": b"\x89PNG\r\n\x1a\n\x00\xff\xfe",
    "int-key.yaml": b"1: 2\n",
    "list-key.yaml": b"? [1, 2]\n: 3\n",
    "null-key.yaml": b"~: 2\n",
    "nul.json": b'{"steps": 10}\x00',
    "deep.json": b"[" * 100_000,
    "lr-overflow.yaml": b"lr: 1e400\n",
}


def png_header(width: int, height: int) -> bytes:
    """A grey PNG that announces width x height pixels and holds one row: a decompression bomb's header."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * (width + 1))) + chunk(b"IEND", b""))


SPECS = {  # issue 24 class 6: model specs (in a file anyone can hand over) that would allocate before failing
    "spec-huge": {"model": "mlp", "input_shape": [1, 60000, 60000], "num_classes": 10},
    "spec-negative": {"model": "mlp", "input_shape": [1, -28, 28], "num_classes": 10},
    "spec-zero-classes": {"model": "mlp", "input_shape": [1, 28, 28], "num_classes": 0},
    "spec-text-shape": {"model": "mlp", "input_shape": "big", "num_classes": 10},
    "spec-float-shape": {"model": "mlp", "input_shape": [1, 28.5, 28], "num_classes": 10},
    "spec-five-dims": {"model": "mlp", "input_shape": [1, 1, 1, 28, 28], "num_classes": 10},
}


def make_bad_files(tmp: Path, R: Path) -> None:
    """The broken files and folders the table points at."""
    for name, data in HOSTILE_CONFIGS.items():
        (tmp / name).write_bytes(data)
    for name, spec in SPECS.items():
        save_file({"w": torch.zeros(1)}, str(tmp / f"{name}.safetensors"), metadata={"spec": json.dumps(spec)})
    from PIL import Image

    for cls in ("a", "b"):
        (tmp / "bomb-folder" / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp / "bomb-folder" / cls / f"{i}.png")
    (tmp / "bomb-folder" / "a" / "bomb.png").write_bytes(png_header(20000, 20000))  # past PIL's own cap
    shutil.copytree(tmp / "bomb-folder", tmp / "big-folder")
    (tmp / "big-folder" / "a" / "bomb.png").write_bytes(png_header(8000, 6000))  # under PIL's, over ours
    for cls in ("a", "b"):
        (tmp / "tiff-folder" / cls).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (0, i * 40, 0)).save(tmp / "tiff-folder" / cls / f"{i}.png")
    Image.new("RGB", (8, 8)).save(tmp / "tiff-folder" / "b" / "tiff.png", format="TIFF")  # named .png
    model = build_model("mlp", input_shape=(1, 40, 40), num_classes=10)
    nan = tmp / "nan-teacher.safetensors"
    save_model(nan, model)
    t = load_file(str(nan))
    t[next(k for k, v in t.items() if v.dim() == 2)][0, 0] = float("nan")
    from safetensors import safe_open

    with safe_open(str(nan), "pt") as f:
        save_file(t, str(nan), metadata=f.metadata())
    (tmp / "garbage.safetensors").write_bytes(b"not a safetensors file")
    save_file({"w": torch.zeros(1)}, str(tmp / "spec-list.safetensors"), metadata={"spec": "[]"})
    save_file({"w": torch.zeros(1)}, str(tmp / "spec-short.safetensors"), metadata={"spec": '{"model": "mlp"}'})
    (tmp / "bad.yaml").write_text("steps: 10\nlr: [\n")
    (tmp / "list.yaml").write_text("- steps\n- 10\n")
    (tmp / "list.json").write_text("[1, 2]")
    (tmp / "unknown.yaml").write_text("stepz: 10\n")
    (tmp / "a-file").write_text("x")
    for name, config in (("list-config", "[]"), ("bad-config", "{not json")):
        d = tmp / name
        d.mkdir()
        (d / "config.json").write_text(config)
        (d / "checkpoint.safetensors").write_bytes((R / "checkpoint.safetensors").read_bytes())
        (d / "events.jsonl").write_text("")
    d = tmp / "no-checkpoint"
    d.mkdir()
    (d / "config.json").write_text((R / "config.json").read_text())
    (d / "events.jsonl").write_text("")
    d = tmp / "torn"
    d.mkdir()
    for name in ("config.json", "events.jsonl"):
        (d / name).write_text((R / name).read_text())
    (d / "checkpoint.safetensors").write_bytes((R / "checkpoint.safetensors").read_bytes()[:5000])


def exit_code(argv) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse
        return e.code


KD = ["--canvas", "40", "--teacher", "default", "--steps", "5", "--threads", "1", "--out", "{tmp}/out"]
BAD = [  # (argv with {tmp} and {R}, what the line must say)
    (["train", *KD, "--steps", "0"], "--steps"),
    (["train", *KD, "--steps", "-3"], "--steps"),
    (["train", *KD, "--steps", "1e9"], "invalid int"),
    (["train", *KD, "--lr", "inf"], "finite"),
    (["train", *KD, "--lr", "nan"], "finite"),
    (["train", *KD, "--lr", "1e6"], "--lr"),
    (["train", *KD, "--temperature", "inf"], "finite"),
    (["train", *KD, "--hard-lambda", "inf"], "finite"),
    (["train", *KD, "--alpha", "2"], "--alpha"),
    (["train", *KD, "--canvas", "5000"], "--canvas"),
    (["train", *KD, "--batch-size", "0"], "--batch-size"),
    (["train", *KD, "--batch-size", "1000000"], "--batch-size"),
    (["train", *KD, "--hard", "bogus"], "invalid choice"),
    (["train", *KD, "--world", "bogus"], "world"),
    (["train", *KD, "--dataset", "nope"], "nope"),
    (["train", *KD, "--suites", "bogus:3"], "bogus"),
    (["train", "--canvas", "40", "--out", "{tmp}/out", "--teacher", "{tmp}/missing.safetensors"], "not found"),
    (["train", "--canvas", "40", "--out", "{tmp}/out", "--teacher", "{tmp}/garbage.safetensors"], "is corrupt"),
    (["train", "--canvas", "40", "--out", "{tmp}/out", "--teacher", "{tmp}/nan-teacher.safetensors"], "nan-teacher.safetensors is corrupt"),
    (["train", "--canvas", "40", "--out", "{tmp}/out", "--teacher", "{tmp}/spec-list.safetensors"], "not a hard_core"),
    (["train", "--canvas", "40", "--out", "{tmp}/out", "--teacher", "{tmp}/spec-short.safetensors"], "lacks input_shape"),
    (["train", "--canvas", "40", "--out", "{tmp}/out", "--teacher", "{tmp}/spec-huge.safetensors"], "holds 3,600,000,000 numbers"),
    (["train", "--canvas", "40", "--out", "{tmp}/out", "--teacher", "{tmp}/spec-negative.safetensors"], "positive sizes"),
    (["train", "--canvas", "40", "--out", "{tmp}/out", "--teacher", "{tmp}/spec-zero-classes.safetensors"], "num_classes must be"),
    (["train", "--canvas", "40", "--out", "{tmp}/out", "--teacher", "{tmp}/spec-text-shape.safetensors"], "positive sizes"),
    (["train", "--canvas", "40", "--out", "{tmp}/out", "--teacher", "{tmp}/spec-float-shape.safetensors"], "positive sizes"),
    (["train", "--canvas", "40", "--out", "{tmp}/out", "--teacher", "{tmp}/spec-five-dims.safetensors"], "positive sizes"),
    (["eval", "{tmp}/spec-huge.safetensors"], "holds 3,600,000,000 numbers"),
    (["train", "--dataset", "folder", "--data-root", "{tmp}/bomb-folder", "--image-size", "8", "--loss", "ce",
      "--steps", "2", "--out", "{tmp}/out"], "bomb.png is over 178,956,970 pixels, more than HARD_MAX_PIXELS"),
    (["pretrain", "--dataset", "folder", "--data-root", "{tmp}/big-folder", "--image-size", "8", "--stream", "on",
      "--batch-size", "4", "--steps", "2", "--out", "{tmp}/streamed"],  # read while training: its folder says so
     "is 8000x6000 pixels, more than HARD_MAX_PIXELS"),
    (["ENV:HARD_MAX_PIXELS=many", "pretrain", "--dataset", "folder", "--data-root", "{tmp}/big-folder",
      "--image-size", "8", "--steps", "2", "--out", "{tmp}/out"], "HARD_MAX_PIXELS='many' is not a whole number"),
    (["ENV:HARD_MAX_PIXELS=50", "pretrain", "--dataset", "folder", "--data-root", "{tmp}/tiff-folder",
      "--image-size", "8", "--steps", "2", "--out", "{tmp}/out"], "is 8x8 pixels, more than HARD_MAX_PIXELS=50"),
    (["pretrain", "--dataset", "folder", "--data-root", "{tmp}/tiff-folder", "--image-size", "8", "--steps", "2",
      "--out", "{tmp}/out"], "tiff.png as a JPEG, PNG, GIF or WebP file: Unsupported image file"),
    (["ENV:RANK=abc", "train", *KD], "RANK='abc' is not a whole number"),
    (["ENV:WORLD_SIZE=two", "train", *KD], "WORLD_SIZE='two' is not a whole number"),
    (["ENV:WORLD_SIZE=0", "train", *KD], "torchrun's environment is inconsistent"),
    (["ENV:RANK=5", "ENV:WORLD_SIZE=2", "train", *KD], "RANK=5, WORLD_SIZE=2"),
    (["ENV:LOCAL_RANK=-1", "train", *KD], "LOCAL_RANK=-1"),
    (["ENV:RANK=0", "ENV:WORLD_SIZE=2", "ENV:MASTER_PORT=99999", "train", *KD], "MASTER_PORT='99999' is not a port"),
    (["ENV:RANK=0", "ENV:WORLD_SIZE=2", "ENV:MASTER_PORT=http", "train", *KD], "MASTER_PORT='http' is not a whole"),
    (["ENV:RANK=" + "9" * 5000, "train", *KD], "is not a whole number"),
    (["ENV:RANK=abc", "pretrain", "--steps", "2", "--out", "{tmp}/out"], "RANK='abc'"),
    (["train", *KD, "--hard", "affine", "--affine", "translate:nan"], "must be a positive finite number"),
    (["train", *KD, "--hard", "affine", "--affine", "translate:inf"], "must be a positive finite number"),
    (["train", *KD, "--hard", "affine", "--affine", "rotate:1e400"], "must be a positive finite number"),
    (["train", *KD, "--hard", "affine", "--affine", "rotate:-5"], "must be a positive finite number"),
    (["train", "--out", "{tmp}/out", "--config", "{tmp}/missing.yaml"], "not found"),
    (["train", "--out", "{tmp}/out", "--config", "{tmp}/bad.yaml"], "line 3"),
    (["train", "--out", "{tmp}/out", "--config", "{tmp}/list.yaml"], "mapping"),
    (["train", "--out", "{tmp}/out", "--config", "{tmp}/list.json"], "mapping"),
    (["train", "--out", "{tmp}/out", "--config", "{tmp}/unknown.yaml"], "unknown option 'stepz'"),
    (["train", *KD, "--config", "{tmp}/bomb.yaml"], "anchors and aliases (&name, *name) are not allowed"),
    (["train", *KD, "--config", "{tmp}/anchor.yaml"], "anchors and aliases"),
    (["train", *KD, "--config", "{tmp}/huge.yaml"], "is larger than 1024 KB"),
    (["train", *KD, "--config", "{tmp}/big-suite.yaml"], "unknown suite 'xxxx"),
    (["train", *KD, "--config", "{tmp}/big-dataset.yaml"], "unknown dataset 'xxxx"),
    (["train", *KD, "--config", "{tmp}/big-key.yaml"], "unknown option 'kkkk"),
    (["train", *KD, "--config", "{tmp}/big-int.yaml"], "cannot parse config file"),
    (["train", *KD, "--config", "{tmp}/latin1.yaml"], "is not UTF-8 text"),
    (["train", *KD, "--config", "{tmp}/binary.json"], "is not UTF-8 text"),
    (["train", *KD, "--config", "{tmp}/int-key.yaml"], "1 is not an option name"),
    (["train", *KD, "--config", "{tmp}/list-key.yaml"], "found unhashable key"),
    (["train", *KD, "--config", "{tmp}/null-key.yaml"], "None is not an option name"),
    (["train", *KD, "--config", "{tmp}/nul.json"], "cannot parse config file"),
    (["train", *KD, "--config", "{tmp}/deep.json"], "cannot parse config file"),
    (["train", *KD, "--config", "{tmp}/lr-overflow.yaml"], "--lr: Input should be a finite number"),
    (["pretrain", "--out", "{tmp}/out", "--config", "{tmp}/bomb.yaml"], "anchors and aliases"),
    (["train", "--out", "{R}", "--resume", "--config", "{tmp}/bomb.yaml"], "anchors and aliases"),
    (["train", *KD[:-2], "--out", "{tmp}/a-file"], "cannot write the run directory"),
    (["train", *KD[:-2], "--out", "/proc/hard-lab-cannot-be-here"], "cannot write the run directory"),
    (["train", *KD[:-2], "--out", "{R}"], "already holds a run"),
    (["train", "--resume"], "--resume needs --out"),
    (["train", "--out", "{tmp}/nowhere", "--resume"], "not a run directory"),
    (["train", "--out", "{tmp}/no-checkpoint", "--resume"], "no checkpoint"),
    (["train", "--out", "{tmp}/torn", "--resume"], "is corrupt"),
    (["train", "--out", "{tmp}/list-config", "--resume"], "not a run directory"),
    (["train", "--out", "{tmp}/bad-config", "--resume"], "not a run directory"),
    (["train", "--out", "{R}", "--resume", "--steps", "20"], "--steps 20 differs"),
    (["train", "--out", "{R}", "--resume", "--hard", "none"], "--hard none differs"),
    (["train", "--out", "{R}", "--resume", "--lr", "inf"], "finite"),
    (["pretrain", "--out", "{R}", "--resume"], "is a train run"),
    (["eval", "{tmp}/missing"], "not found"),
    (["eval", "{tmp}/garbage.safetensors"], "is corrupt"),
    (["eval", "{tmp}/bad-config"], "not a run directory"),
    (["eval", "{tmp}/no-checkpoint"], "no checkpoint"),
    (["probe", "{tmp}/missing"], "not found"),
    (["probe", "{R}", "--images", "0"], "--images"),
    (["bench", "--steps", "0"], "--steps must be at least 1"),
    (["bench", "--rounds", "0"], "--rounds must be at least 1"),
    (["bench", "--hard-every", "0"], "--hard-every must be at least 1"),
    (["bench", "--variants", "nope"], "unknown variant"),
    (["eval", "{R}", "--canvas", "5000"], "--canvas: Input should be less than or equal to 256"),
    (["eval", "{R}", "--image-size", "0"], "--image-size"),
    (["eval", "{R}", "--suites", "bogus:3"], "unknown suite 'bogus'"),
    (["bench", "--batch-size", "0"], "--batch-size: Input should be greater than 0"),
    (["bench", "--canvas", "5000"], "--canvas: Input should be less than or equal to 256"),
    (["compare", "{tmp}/missing"], "not a run directory"),
    (["compare", "{tmp}/bad-config"], "has not been evaluated yet"),
    (["nonsense"], "invalid choice"),
]


@pytest.mark.parametrize("argv,says", BAD, ids=[" ".join(a)[:60] for a, _ in BAD])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(argv, says, finished_hard_run, bad_files, tmp_path,
                                                          capsys, monkeypatch):
    # Hard links: each row gets folder entries of its own while the broken files take 33 MB once, not once per
    # row (3.3 GB for the table). An atomic write replaces an entry; an in-place write shows in `stat`.
    shutil.copytree(bad_files, tmp_path, dirs_exist_ok=True, copy_function=os.link)
    before = fingerprint(finished_hard_run), stat_print(bad_files)
    for env in [a[4:] for a in argv if a.startswith("ENV:")]:  # a row's environment (torchrun's variables)
        monkeypatch.setenv(*env.split("=", 1))
    argv = [a for a in argv if not a.startswith("ENV:")]
    assert exit_code([a.format(tmp=tmp_path, R=finished_hard_run) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    lines = [line for line in err if not line.startswith("[")]  # progress lines of a run that got going
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], err
    assert len(lines[0]) <= 600  # quotes of the input are cut (a 200 KB value in a config)
    assert not (tmp_path / "out").exists()  # a refused command leaves no run folder to block the corrected one
    assert "Traceback" not in "\n".join(err)
    assert (fingerprint(finished_hard_run), stat_print(bad_files)) == before


def test_compare_of_two_runs_with_one_folder_name_shows_both(finished_hard_run, tmp_path, capsys):
    for parent in ("a", "b"):
        shutil.copytree(finished_hard_run, tmp_path / parent / "R")
    assert main(["compare", str(tmp_path / "a" / "R"), str(tmp_path / "b" / "R"), "--json"]) == 0
    assert sorted(json.loads(capsys.readouterr().out)) == [str(tmp_path / "a" / "R"), str(tmp_path / "b" / "R")]
    assert main(["compare", str(tmp_path / "a" / "R"), str(finished_hard_run), "--json"]) == 0  # unique: names
    assert len(json.loads(capsys.readouterr().out)) == 2


def test_temp_files_of_a_killed_checkpoint_write_are_removed_at_the_next_start(finished_hard_run, tmp_path):
    run = tmp_path / "R"
    shutil.copytree(finished_hard_run, run)
    left = [run / ".checkpoint.safetensors.k1ll3d.tmp", run / "snapshots" / ".000020.safetensors.x.tmp"]
    for tmp in left:
        tmp.write_bytes(b"\0" * 1000)  # what SIGKILL inside atomic_write leaves
    keep = run / "notes.tmp"  # not atomic_write's: left alone
    keep.write_text("mine")
    from hard_core.runs.store import RunWriter

    cfg = RunConfig(**json.loads((run / "config.json").read_text())["config"])
    RunWriter(run, cfg, resume=True).close()  # what `train --out R --resume` starts with, once it holds the lock
    assert not any(t.exists() for t in left) and keep.exists()
