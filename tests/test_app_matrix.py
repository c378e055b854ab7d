"""The Matrix page under AppTest: it draws a matrix.json as a heatmap of gap closed with a button per cell,
says in one line when the file is missing, and a cell's button starts that cell's run and opens it on the
Live training page."""
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from hard_core.runs.matrix import MACHINE, build_config, cell_config, markdown_table, summarise

ENTRY = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")
from lab import matrix as lab_matrix
from lab import runs

WORLDS, METHODS = ["shift", "scarce"], ["kd", "oracle", "hard-affine"]
OOD = {("shift", "kd"): 0.30, ("shift", "oracle"): 0.90, ("shift", "hard-affine"): 0.75,
       ("scarce", "kd"): 0.80, ("scarce", "oracle"): 0.90, ("scarce", "hard-affine"): 0.85}


@pytest.fixture(scope="module")
def matrix_file(tmp_path_factory):
    """A small matrix.json as the `matrix` command writes it (made-up accuracies, the cells' real configs)."""
    settings = {"worlds": WORLDS, "methods": METHODS, "seeds": 1, "steps": 30, "dataset": "mnist5k", "canvas": 40,
                "teacher": "default", "student": "mlp", "device": "auto", "threads": None}
    results = {(w, m, 0): {"dir": f"{w}-{m}-s0", "config": build_config(w, m, 0, steps=30).model_dump(mode="json"),
                           "ood": acc, "test": 0.95 if w == "shift" else acc, "error": None}
               for (w, m), acc in OOD.items()}
    path = tmp_path_factory.mktemp("matrix") / "matrix.json"
    path.write_text(json.dumps(summarise(settings, "python -m hard_core matrix --steps 30", results)))
    return path


@pytest.fixture
def lab_env(tmp_path, monkeypatch, matrix_file):
    """A private runs folder, the small matrix, and a fresh scheduler; its processes are ended afterwards."""
    monkeypatch.setenv("HARD_LAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("HARD_LAB_MAX_RUNS", "1")
    monkeypatch.setenv("HARD_LAB_MATRIX", str(matrix_file))
    runs.shutdown()
    yield tmp_path / "runs"
    runs.shutdown()


def open_matrix() -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=60).run()
    at.switch_page("views/matrix.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_page_draws_the_matrix(lab_env, matrix_file):
    at = open_matrix()
    assert at.title[0].value == "Invariance-transfer matrix"
    [chart] = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    heat = chart["data"][0]
    assert heat["type"] == "heatmap" and heat["x"] == METHODS and heat["y"] == ["shift (shift)", "scarce (test)"]
    assert heat["z"][0] == pytest.approx([0, 1, 0.75]) and heat["z"][1] == pytest.approx([0, 1, 0.5])
    assert heat["text"][0] == ["30.0%", "90.0%", "75.0%"]
    assert (heat["zmin"], heat["zmax"]) == (0, 1) and "0 = KD, 1 = oracle" in heat["colorbar"]["title"]["text"]
    assert "in-domain: 95.0%" in heat["customdata"][0][2] and "gap closed: 0.75" in heat["customdata"][0][2]
    assert any("(oracle − KD)" in c.value for c in at.caption)
    matrix = json.loads(matrix_file.read_text())
    assert any(m.value == markdown_table(matrix) for m in at.markdown)  # the table of matrix.md
    labels = {b.key: b.label for b in at.button if b.key and b.key.startswith("matrix_")}
    assert len(labels) == 6 and labels["matrix_shift_hard-affine"] == "75.0 / 95.0 (0.75)"


def test_a_missing_matrix_is_one_line_of_info(lab_env, tmp_path, monkeypatch):
    monkeypatch.setenv("HARD_LAB_MATRIX", str(tmp_path / "nowhere" / "matrix.json"))
    at = open_matrix()
    assert len(at.info) == 1 and at.info[0].value.startswith("No matrix at") and not at.get("plotly_chart")
    (tmp_path / "bad.json").write_text("{not json")
    monkeypatch.setenv("HARD_LAB_MATRIX", str(tmp_path / "bad.json"))
    at = open_matrix()
    assert len(at.error) == 1 and "not valid JSON" in at.error[0].value


def test_a_cell_button_starts_that_run_on_the_live_page(lab_env, matrix_file):
    at = open_matrix()
    at.button(key="matrix_shift_hard-affine").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Live training"
    run_id = at.query_params["run"]
    sent = json.loads((lab_env / run_id / "request.json").read_text())
    matrix = json.loads(matrix_file.read_text())
    assert sent == lab_matrix.live_config(matrix, "shift", "hard-affine").model_dump(mode="json")
    cell = cell_config(matrix, "shift", "hard-affine").model_dump(mode="json")
    watch = set(lab_matrix.LIVE) | set(MACHINE)  # only how often it reports, and on which device
    assert {k: v for k, v in sent.items() if k not in watch} == {k: v for k, v in cell.items() if k not in watch}
    assert sent["hard"] == "affine" and sent["suites"] == "shift:6" and sent["steps"] == 30
    assert runs.can_control(run_id, at.session_state["owner_key"]) and "key" not in at.query_params  # its controls
    assert [b for b in at.button if b.label == "Stop"]
    runs.stop(run_id)
