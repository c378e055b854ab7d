"""The Matrix page under AppTest: it draws a matrix.json as a heatmap of gap closed whose cells can be
clicked, shows each number once, says in one line when the file is missing, and a clicked (or picked) cell
opens that cell's run on the Live training page, trained once however often it is opened."""
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from hard_core.config import UNLEARNED
from hard_core.runs.matrix import build_config, cell_config, summarise

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


def test_the_page_draws_the_matrix_clickable_with_each_number_once(lab_env):
    at = open_matrix()
    assert at.title[0].value == "Invariance-transfer matrix"
    [proto] = [c.proto for c in at.get("plotly_chart")]
    assert list(proto.selection_mode) == [0] and proto.id  # on_select="rerun", selection_mode="points": a widget
    heat, cells = json.loads(proto.spec)["data"]
    assert heat["type"] == "heatmap" and heat["x"] == METHODS and heat["y"] == ["shift (shift)", "scarce (test)"]
    assert heat["z"][0] == pytest.approx([0, 1, 0.75]) and heat["z"][1] == pytest.approx([0, 1, 0.5])
    assert heat["text"][0] == ["30.0%", "90.0%", "75.0%"] and heat["hoverinfo"] == "skip"
    assert (heat["zmin"], heat["zmax"]) == (0, 1) and "0 = KD, 1 = oracle" in heat["colorbar"]["title"]["text"]
    # the clickable layer: one invisible marker per cell, on the cell, carrying its hover and its (world, method)
    assert cells["type"] == "scatter" and cells["marker"]["opacity"] == 0
    assert list(zip(cells["x"], cells["y"])) == [(m, y) for y in heat["y"] for m in METHODS]
    assert cells["customdata"][2] == ["shift", "hard-affine"]
    assert "in-domain: 95.0%" in cells["hovertext"][2] and "gap closed: 0.75" in cells["hovertext"][2]
    assert any("(oracle − KD)" in c.value for c in at.caption)
    # each number once: in the heatmap only, not again in a table, a caption, a label or a button
    texts = [e.value for e in [*at.markdown, *at.caption]] + [b.label for b in at.button]
    assert not [t for t in texts if any(n in t for n in ("30.0", "90.0", "75.0", "95.0", "0.75"))], texts
    assert not at.get("table") and not at.dataframe


def test_a_selection_maps_to_its_cell_and_nothing_else():
    matrix = {"settings": {"worlds": WORLDS, "methods": METHODS}}
    point = {"curve_number": 1, "point_number": 2, "point_index": 2, "x": "hard-affine", "y": "shift (shift)",
             "customdata": ["shift", "hard-affine"]}
    assert lab_matrix.picked(matrix, {"points": [point], "point_indices": [2], "box": [], "lasso": []}) == \
        ("shift", "hard-affine")
    for bad in (None, {}, {"points": []}, {"points": [{"curve_number": 0, "x": 1, "y": 0, "z": 0.5}]},
                {"points": [{**point, "customdata": ["../etc", "hard-affine"]}]},
                {"points": [{**point, "customdata": ["shift", "hard-vae"]}]}, {"points": ["junk"]}):
        assert lab_matrix.picked(matrix, bad) is None


def test_a_missing_matrix_is_one_line_of_info(lab_env, tmp_path, monkeypatch):
    monkeypatch.setenv("HARD_LAB_MATRIX", str(tmp_path / "nowhere" / "matrix.json"))
    at = open_matrix()
    assert len(at.info) == 1 and at.info[0].value.startswith("No matrix at") and not at.get("plotly_chart")
    (tmp_path / "bad.json").write_text("{not json")
    monkeypatch.setenv("HARD_LAB_MATRIX", str(tmp_path / "bad.json"))
    at = open_matrix()
    assert len(at.error) == 1 and "not valid JSON" in at.error[0].value


def open_cell_run(at: AppTest, matrix: dict) -> str:
    """The run the Live page opened, checked: the cell's live config, with its owner's controls."""
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Live training"
    run_id = at.query_params["run"]
    sent = json.loads((runs.run_path(run_id) / "request.json").read_text())
    assert sent == lab_matrix.live_config(matrix, "shift", "hard-affine").model_dump(mode="json")
    cell = cell_config(matrix, "shift", "hard-affine").model_dump(mode="json")
    watch = set(lab_matrix.LIVE) | set(UNLEARNED)  # only how often it reports, and where and how it trains
    assert {k: v for k, v in sent.items() if k not in watch} == {k: v for k, v in cell.items() if k not in watch}
    assert sent["hard"] == "affine" and sent["suites"] == "shift:6" and sent["steps"] == 30
    assert runs.can_control(run_id, at.session_state["owner_key"]) and "key" not in at.query_params  # its controls
    return run_id


def test_a_clicked_cell_opens_its_run_on_the_live_page_once(lab_env, matrix_file, monkeypatch):
    matrix = json.loads(matrix_file.read_text())
    got, picked = [], lab_matrix.picked  # AppTest cannot click plotly: the page must hand the chart's
    # selection to lab_matrix.picked

    def click(m, selection):
        got.append(selection)
        return ("shift", "hard-affine") if len(got) == 1 else None
    monkeypatch.setattr(lab_matrix, "picked", click)
    at = open_matrix()
    assert list(got[0]) == ["points", "point_indices", "box", "lasso"]
    run_id = open_cell_run(at, matrix)
    assert [b for b in at.button if b.label == "Stop"]

    monkeypatch.setattr(lab_matrix, "picked", picked)  # the same cell from the picker: the same run, not a second
    at.switch_page("views/matrix.py").run()
    at.selectbox(key="matrix_world").set_value("shift")
    at.selectbox(key="matrix_method").set_value("hard-affine")
    at.button(key="matrix_open").click().run()
    assert open_cell_run(at, matrix) == run_id
    assert len([d for d in lab_env.iterdir() if (d / "request.json").is_file()]) == 2  # the run and its KD twin
    runs.stop(run_id)
