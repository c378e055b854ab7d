"""The Compare runs page, driven by Streamlit's AppTest over two small finished runs in a temporary folder."""
import json
import os
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from hard_core.config import RunConfig
from hard_core.runs import run_to_dir

APP = Path(__file__).resolve().parents[1] / "app"
from lab import compare, runs

QUICK = dict(kind="pretrain", loss="ce", dataset="mnist5k", canvas=28, student="mlp", steps=20, eval_every=10,
             batch_size=32)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two finished runs with different OOD suites: 'a' (noise) and 'b' (contrast, another seed)."""
    root = tmp_path_factory.mktemp("lab") / "runs"
    run_to_dir(RunConfig(**QUICK, suites="noise:0.2"), root / "a")
    run_to_dir(RunConfig(**QUICK, suites="contrast:0.4", seed=1), root / "b")
    return root


@pytest.fixture
def lab_root(monkeypatch, tmp_path):
    """Point the lab at a folder (empty by default); stop the scheduler the pages start, before and after."""
    def use(path):
        monkeypatch.setenv("HARD_LAB_RUNS", str(path))
        return path

    runs.shutdown()
    use(tmp_path / "runs")
    yield use
    runs.shutdown()


def open_compare() -> AppTest:
    at = AppTest.from_file(str(APP / "streamlit_app.py"), default_timeout=60)
    at.run()
    at.switch_page("views/compare.py").run()
    assert not at.exception, at.exception
    return at


def traces(chart) -> list[str]:
    return [trace["name"] for trace in json.loads(chart.proto.spec)["data"]]


def test_without_runs_the_page_points_to_live_training(lab_root):
    at = open_compare()
    assert at.title[0].value == "Compare runs"
    assert "No runs to compare yet" in at.info[0].value
    link = at.get("page_link")[0].proto
    assert link.label == "Go to Live training" and link.page_script_hash
    assert not at.get("plotly_chart") and not at.get("download_button")


def test_two_runs_overlay_table_and_downloads(lab_root, two_runs):
    lab_root(two_runs)
    at = open_compare()
    select = at.multiselect(key="compare_runs")
    assert set(select.options) == {compare.label(r) for r in runs.list_all()}
    select.set_value(["a", "b"]).run()
    assert not at.exception, at.exception

    table = at.dataframe[0].value
    assert sorted(zip(table["run"], table["suite"])) == [("a", "noise"), ("a", "test"), ("b", "contrast"), ("b", "test")]
    assert table["student acc"].between(0, 1).all() and (table["step"] == 20).all()

    test_acc, ood_acc, loss = at.get("plotly_chart")
    assert sorted(traces(test_acc)) == ["a", "b"] and sorted(traces(loss)) == ["a", "b"]
    assert traces(ood_acc) == ["b"]  # the first OOD suite (no 'shift' here): only 'b' has 'contrast'
    spec = json.loads(test_acc.proto.spec)["data"][0]
    assert spec["x"] == [10, 20] and all(0 <= y <= 1 for y in spec["y"])
    for chart in (test_acc, ood_acc, loss):  # legends beside the plot: they never cover a line or an axis title
        legend = json.loads(chart.proto.spec)["layout"]["legend"]
        assert legend["x"] >= 1 and legend["xanchor"] == "left"

    at.selectbox(key="compare_suite").set_value("noise").run()
    assert traces(at.get("plotly_chart")[1]) == ["a"]

    buttons = {b.proto.label: b.proto for b in at.get("download_button")}
    assert buttons["Download CSV"].url.endswith(".csv")
    if compare.png_error() is None:  # kaleido and its Chrome work here: one deferred PNG per figure
        assert {"Download PNG: test", "Download PNG: noise", "Download PNG: loss"} <= set(buttons)
        assert buttons["Download PNG: loss"].deferred_file_id
    else:
        assert "PNG export is not available" in at.warning[0].value


def test_a_broken_png_renderer_is_one_warning_not_a_crash(lab_root, two_runs, monkeypatch):
    lab_root(two_runs)
    monkeypatch.setattr(compare, "png_error", lambda: "ChromeNotFoundError: no Chrome here")
    at = open_compare()
    assert "ChromeNotFoundError" in at.warning[0].value
    assert [b.proto.label for b in at.get("download_button")] == ["Download CSV"]
    assert len(at.get("plotly_chart")) == 3


def test_a_table_of_final_metrics_becomes_csv(two_runs):
    rows = [{"id": "a", "path": two_runs / "a", "state": "finished", "kind": "pretrain"}]
    csv = compare.metrics_table(rows).to_csv(index=False).splitlines()
    assert csv[0].startswith("run,suite,student acc,teacher acc,agreement,step,state")
    assert [line.split(",")[:2] for line in csv[1:]] == [["a", "test"], ["a", "noise"]]


def test_a_run_still_training_is_listed_with_its_state(lab_root, two_runs, tmp_path):
    root = lab_root(tmp_path / "live")
    shutil.copytree(two_runs / "a", root / "live")
    status = json.loads((root / "live" / "status.json").read_text())
    (root / "live" / "status.json").write_text(json.dumps({**status, "state": "running", "pid": os.getpid()}))
    at = open_compare()
    assert at.multiselect(key="compare_runs").value == ["live"]
    assert at.multiselect(key="compare_runs").options[0].endswith("· running")
    assert sorted(traces(at.get("plotly_chart")[0])) == ["live"]
