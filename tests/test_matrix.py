"""The `matrix` command on a tiny setting: it writes matrix.md/json/png with the right cells and a gap closed
computed from the runs' own numbers, continues an interrupted matrix, reuses finished cells on a rerun,
refuses to mix in runs of another config, and turns bad flags into one line with exit code 2."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hard_core.cli import main
from hard_core.errors import UserError
from hard_core.runs import final_metrics, run_config
from hard_core.runs.matrix import cell, cell_config, cell_text, gap_closed, load_matrix

TINY = ["--steps", "10", "--threads", "1"]  # one thread: a shared CPU runs a 10-step cell in seconds
WORLDS, METHODS = ["shift", "scarce"], ["kd", "oracle", "hard-affine"]  # scarce: the OOD suite is "test"


def matrix(out: Path, *flags: str) -> int:
    return main(["matrix", *flags, *TINY, "--out", str(out)])


def events(run_dir: Path) -> tuple[int, float]:
    path = run_dir / "events.jsonl"
    return len(path.read_text().splitlines()), path.stat().st_mtime


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A 2 x 3 matrix made in two goes, as an interrupted one is: first shift x {kd, oracle}, then the whole
    matrix into the same folder (with a half-written scarce/kd attempt left behind), which adds the rest."""
    threads = torch.get_num_threads()
    out = tmp_path_factory.mktemp("matrix") / "m"
    try:
        assert matrix(out, "--worlds", "shift", "--methods", "kd,oracle") == 0
        before = events(out / "shift-kd-s0")
        half = out / "scarce-kd-s0"  # an attempt that was interrupted: no finished status
        half.mkdir()
        (half / "status.json").write_text(json.dumps({"state": "running", "step": 3}))
        (half / "events.jsonl").write_text('{"kind": "status", "step": 0, "state": "starting"}\n')
        assert matrix(out, "--worlds", ",".join(WORLDS), "--methods", ",".join(METHODS)) == 0
    finally:
        torch.set_num_threads(threads)
    return out, before


def test_writes_md_json_png_with_the_right_cells(made):
    out, _ = made
    data = json.loads((out / "matrix.json").read_text())
    assert data["settings"]["worlds"] == WORLDS and data["settings"]["methods"] == METHODS
    assert [(c["world"], c["method"]) for c in data["cells"]] == [(w, m) for w in WORLDS for m in METHODS]
    for c in data["cells"]:
        [run] = c["seeds"]
        acc = final_metrics(out / run["dir"])["student"]  # the JSON's numbers are the runs' own
        suite = "shift" if c["world"] == "shift" else "test"
        assert c["suite"] == suite and run["ood"] == acc[suite] and run["test"] == acc["test"] and not c["errors"]
        assert c["ood"] == run["ood"] and c["test"] == run["test"]  # one seed: the mean is that seed
        assert run_config(out / run["dir"]) == cell_config(data, c["world"], c["method"])
        assert set(acc) == {"test", suite}  # evaluated on in-domain test and the world's own suite only
    for w in WORLDS:
        kd, oracle, hard = (cell(data, w, m)["ood"] for m in METHODS)
        expected = (hard - kd) / (oracle - kd)
        assert cell(data, w, "hard-affine")["gap_closed"] == pytest.approx(expected)
        assert cell(data, w, "hard-affine")["seeds"][0]["gap_closed"] == pytest.approx(expected)
        assert cell(data, w, "kd")["gap_closed"] == 0 and cell(data, w, "oracle")["gap_closed"] == pytest.approx(1)
    md = (out / "matrix.md").read_text()
    hard = cell(data, "shift", "hard-affine")
    text = f"{100 * hard['ood']:.1f} / {100 * hard['test']:.1f} ({hard['gap_closed']:.2f})"
    assert cell_text(hard) == text and text in md
    assert "| world (OOD suite) | kd | oracle | hard-affine |" in md and "| scarce (test) |" in md
    assert "Gap closed = (method - KD) / (oracle - KD)" in md
    assert f"`{data['command']}`" in md
    assert data["command"].startswith("python -m hard_core matrix --worlds shift,scarce --methods kd,oracle,hard-")
    png = (out / "matrix.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_an_interrupted_matrix_continues(made):
    out, before = made
    assert events(out / "shift-kd-s0") == before  # trained in the first go, reused in the second
    data = load_matrix(out / "matrix.json")
    assert cell(data, "shift", "kd")["seeds"][0]["reused"] and not cell(data, "scarce", "kd")["seeds"][0]["reused"]
    assert json.loads((out / "scarce-kd-s0" / "status.json").read_text())["state"] == "finished"


def test_a_rerun_reuses_every_finished_cell(made, capsys):
    out, _ = made
    runs = sorted(out.glob("*-s0"))
    seen = {d: events(d) for d in runs}
    t0 = time.time()
    assert matrix(out, "--worlds", ",".join(WORLDS), "--methods", ",".join(METHODS)) == 0
    assert time.time() - t0 < 30  # no training: configs, a table and a picture
    assert "0 runs trained, 6 reused" in capsys.readouterr().out
    assert {d: events(d) for d in runs} == seen


def test_a_finished_run_of_another_config_is_refused(made, capsys):
    out, _ = made
    code = main(["matrix", "--worlds", "shift", "--methods", "kd", "--steps", "11", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "holds a finished run of another config" in err[0]


@pytest.mark.parametrize("flags, words", [
    (["--worlds", "moon"], "unknown world 'moon'"),
    (["--methods", "kd,magic"], "unknown method 'magic'"),
    (["--worlds", " , "], "give at least one"),
    (["--steps", "0"], "--steps must be at least 1"),
    (["--seeds", "0"], "--seeds must be at least 1"),
])
def test_bad_flags_exit_2_with_one_line(tmp_path, capsys, flags, words):
    assert main(["matrix", *flags, "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and words in err[0], err
    assert not (tmp_path / "m").exists()  # nothing trained, nothing written


def test_gap_closed_and_load_matrix_refusals(tmp_path):
    assert gap_closed(0.5, 0.2, 0.8) == pytest.approx(0.5)
    assert gap_closed(0.5, None, 0.8) is None and gap_closed(0.5, 0.3, 0.3) is None
    with pytest.raises(UserError, match="no matrix at"):
        load_matrix(tmp_path / "matrix.json")
    (tmp_path / "matrix.json").write_text('{"cells": 3}')
    with pytest.raises(UserError, match="not a matrix.json"):
        load_matrix(tmp_path / "matrix.json")


def test_the_engine_imports_no_lab_libraries():
    code = ("import sys, hard_core.cli, hard_core.runs.matrix; "
            "print(sorted(m for m in ('streamlit', 'plotly', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"  # matplotlib too: it loads only when a matrix.png is drawn


def test_kd_cells_survive_a_change_of_hard_defaults_and_hard_cells_do_not():
    from hard_core.config import RunConfig
    from hard_core.config import same_run

    kd = dict(dataset="mnist5k", canvas=40, teacher="default", steps=600)
    assert same_run(RunConfig(**kd, hard_lr=1e-2), RunConfig(**kd, hard_lr=3e-2, threads=1))
    assert not same_run(RunConfig(**kd, hard="affine", hard_lr=1e-2), RunConfig(**kd, hard="affine", hard_lr=3e-2))
    assert not same_run(RunConfig(**kd, lr=1e-3), RunConfig(**kd, lr=3e-4))
