"""The Compare runs page, driven by Streamlit's AppTest over two small finished runs in a temporary folder:
runs named by world, method and seed in distinct colours, a running run marked and kept out of "Final
metrics", and losses of different objectives on different panels."""
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


def colours(chart) -> dict[str, str]:
    return {trace["name"]: trace["line"]["color"] for trace in json.loads(chart.proto.spec)["data"]}


def relabel(run: Path, **config) -> None:
    """Make a copied run's config.json say another world, method or seed (its curves stay the same)."""
    saved = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**saved, "config": {**saved["config"], **config}}))


def tables(at) -> dict:
    """{subheader: its table}: "Final metrics" and "Not finished: latest evaluation", each over its table."""
    return dict(zip([h.value for h in at.subheader], [d.value for d in at.dataframe], strict=True))


def set_state(run: Path, state: str) -> None:
    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps({**status, "state": state, "pid": os.getpid()}))


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
    assert set(select.options) == {"mnist5k · pretrain · seed 0 · finished · a",
                                   "mnist5k · pretrain · seed 1 · finished · b"}
    select.set_value(["a", "b"]).run()
    assert not at.exception, at.exception
    a, b = "mnist5k · pretrain · seed 0", "mnist5k · pretrain · seed 1"

    [table] = tables(at).values()
    assert sorted(zip(table["run"], table["suite"])) == [(a, "noise"), (a, "test"), (b, "contrast"), (b, "test")]
    assert table["student acc"].between(0, 1).all() and (table["step"] == 20).all()
    assert set(table["state"]) == {"finished"} and set(table["id"]) == {"a", "b"}
    assert list(tables(at)) == ["Final metrics"]

    test_acc, ood_acc, loss = at.get("plotly_chart")
    assert sorted(traces(test_acc)) == [a, b] and sorted(traces(loss)) == [a, b]
    assert traces(ood_acc) == [b]  # the first OOD suite (no 'shift' here): only 'b' has 'contrast'
    spec = json.loads(test_acc.proto.spec)["data"][0]
    assert spec["x"] == [10, 20] and all(0 <= y <= 1 for y in spec["y"])
    for chart in (test_acc, ood_acc, loss):  # legends beside the plot: they never cover a line or an axis title
        legend = json.loads(chart.proto.spec)["layout"]["legend"]
        assert legend["x"] >= 1 and legend["xanchor"] == "left"
    # one colour per run, the same in every chart, and two runs never in the same colour
    assert colours(test_acc) == colours(loss) and colours(test_acc)[b] == colours(ood_acc)[b]
    assert colours(test_acc)[a] != colours(test_acc)[b]
    assert "CE loss" in json.loads(loss.proto.spec)["layout"]["title"]["text"]  # one objective: one panel, named

    at.selectbox(key="compare_suite").set_value("noise").run()
    assert traces(at.get("plotly_chart")[1]) == [a]

    buttons = {b.proto.label: b.proto for b in at.get("download_button")}
    assert buttons["Download CSV"].url.endswith(".csv")
    if compare.png_error() is None:  # kaleido and its Chrome work here: one deferred PNG per figure
        assert {"Download PNG: test", "Download PNG: noise", "Download PNG: loss"} <= set(buttons)
        assert buttons["Download PNG: loss"].deferred_file_id
    else:
        assert "PNG export is not available" in at.warning[0].value


def test_runs_of_different_objectives_have_their_loss_on_different_panels(lab_root, two_runs, tmp_path):
    root = lab_root(tmp_path / "mixed")
    for run in ("a", "b"):
        shutil.copytree(two_runs / run, root / run)
    relabel(root / "a", kind="train", loss="kd", hard="affine", world="shift", seed=0)
    at = open_compare()
    at.multiselect(key="compare_runs").set_value(["a", "b"]).run()
    loss = json.loads(at.get("plotly_chart")[-1].proto.spec)
    axis = {trace["name"]: trace.get("yaxis", "y") for trace in loss["data"]}
    assert axis == {"shift · HARD-affine · seed 0": "y", "mnist5k · pretrain · seed 1": "y2"}
    panels = [a["text"] for a in loss["layout"]["annotations"]]
    assert panels == ["HARD: KD loss (T²·KL, T=4) on clean + augmentor's images", "CE loss (labels)"]
    assert loss["layout"]["yaxis"]["title"]["text"] == loss["layout"]["yaxis2"]["title"]["text"] == "loss"


def test_a_broken_png_renderer_is_one_warning_not_a_crash(lab_root, two_runs, monkeypatch):
    lab_root(two_runs)
    monkeypatch.setattr(compare, "png_error", lambda: "ChromeNotFoundError: no Chrome here")
    at = open_compare()
    assert "ChromeNotFoundError" in at.warning[0].value
    assert [b.proto.label for b in at.get("download_button")] == ["Download CSV"]
    assert len(at.get("plotly_chart")) == 3


def test_a_table_of_final_metrics_becomes_csv(two_runs):
    rows = [{"id": "a", "path": two_runs / "a", "state": "finished",
             "config": {"kind": "pretrain", "dataset": "mnist5k", "seed": 0}}]
    csv = compare.metrics_table(rows).to_csv(index=False).splitlines()
    assert csv[0].startswith("run,state,suite,student acc,teacher acc,agreement,step,world,method,seed")
    assert [line.split(",")[:3] for line in csv[1:]] == [["mnist5k · pretrain · seed 0", "finished", "test"],
                                                          ["mnist5k · pretrain · seed 0", "finished", "noise"]]


def test_runs_that_share_a_name_get_their_short_id_and_unreadable_ones_their_id():
    cfg = {"kind": "train", "world": "shift", "hard": "affine", "augment": "none", "seed": 0}
    rows = [{"id": "20261206-134309-270f", "config": cfg}, {"id": "20261206-134400-ab12", "config": cfg},
            {"id": "20261206-134500-cd34", "config": {**cfg, "hard": "none", "augment": "shift", "seed": 1}},
            {"id": "20261206-134600-ef56", "config": None}]
    assert list(compare.names(rows).values()) == ["shift · HARD-affine · seed 0 · 270f",
                                                  "shift · HARD-affine · seed 0 · ab12",
                                                  "shift · KD + shift · seed 1", "20261206-134600-ef56"]
    same = [{"id": "x-1", "config": cfg}, {"id": "y-1", "config": cfg}]  # even the suffixes agree: whole ids
    assert list(compare.names(same).values()) == ["shift · HARD-affine · seed 0 · x-1",
                                                  "shift · HARD-affine · seed 0 · y-1"]
    looks = compare.looks([{"id": str(i), "state": "finished"} for i in range(len(compare.COLOURS) + 1)])
    assert len({(look["color"], look["dash"]) for look in looks.values()}) == len(looks)  # never two alike


def test_a_run_still_training_is_marked_and_not_listed_as_final(lab_root, two_runs, tmp_path):
    root = lab_root(tmp_path / "live")
    for run in ("live", "done"):
        shutil.copytree(two_runs / ("a" if run == "live" else "b"), root / run)
    set_state(root / "live", "running")
    at = open_compare()
    at.multiselect(key="compare_runs").set_value(["live", "done"]).run()
    assert not at.exception, at.exception
    assert "mnist5k · pretrain · seed 0 · running, step 20/20 · live" in at.multiselect(key="compare_runs").options
    running = "mnist5k · pretrain · seed 0 (running, step 20/20)"
    assert sorted(traces(at.get("plotly_chart")[0])) == [running, "mnist5k · pretrain · seed 1"]
    final, latest = tables(at).values()
    assert set(final["id"]) == {"done"} and set(final["state"]) == {"finished"}
    assert set(latest["id"]) == {"live"} and set(latest["state"]) == {"running, step 20/20"}
    assert list(tables(at)) == ["Final metrics", "Not finished: latest evaluation"]


def test_runs_with_broken_files_are_named_by_id_and_do_not_crash_the_page(lab_root, two_runs, tmp_path):
    root = lab_root(tmp_path / "broken")
    shutil.copytree(two_runs / "a", root / "a")
    (root / "a" / "config.json").write_text('{"config": "not a dict"}')
    (root / "a" / "status.json").write_text("{cut off")
    with (root / "a" / "events.jsonl").open("a") as f:
        f.write('{"kind": "step", "step": 30, "loss": "nan?"}\n{half a line')
    (root / "b").mkdir()
    (root / "b" / "lab.json").write_text('{"config": null}')
    (root / "b" / "events.jsonl").write_text("not json\n")
    at = open_compare()
    at.multiselect(key="compare_runs").set_value(["a", "b"]).run()
    assert not at.exception, at.exception
    assert sorted(traces(at.get("plotly_chart")[0])) == ["a (unknown at step 0)"]  # 'b' has no evaluation
    loss = json.loads(at.get("plotly_chart")[-1].proto.spec)
    assert sorted(traces(at.get("plotly_chart")[-1])) == ["a (unknown at step 0)", "b (unknown at step 0)"]
    assert "objective unknown" in loss["layout"]["title"]["text"]
    assert len(loss["data"][0]["x"]) == 2  # the loss curve up to its last readable step (10, 20)
