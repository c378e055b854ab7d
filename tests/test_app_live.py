"""The Live training page under AppTest: it renders, Start launches a run whose events reach the page,
Start also trains (or reuses) the run's plain-KD twin and the headline compares them, a visit to another
page keeps the run, bad field values are refused next to the field, two AppTests are two sessions, a
refresh in the owner's browser (its cookie) reattaches with control, and the Learn page's presets fill
the form."""
import json
import os
import re
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

ENTRY = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")


def app(**query) -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=60)
    at.query_params.update(query)
    return at.run()


def wait_for(at: AppTest, done, timeout: float = 90.0) -> AppTest:
    """Rerun the page (as its run_every fragment would) until `done(at)` holds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if done(at):
            return at
        time.sleep(1.0)
        at.run()
    raise AssertionError(f"timed out; page text: {[m.value for m in at.markdown][:5]}, errors: "
                         f"{[e.value for e in at.error]}")


def accuracy_points(at: AppTest) -> int:
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    acc = [c for c in charts if "ccuracy" in json.dumps(c.get("layout", {}).get("title", ""))]
    return sum(len(t.get("y") or []) for c in acc for t in c["data"])


def test_start_runs_a_session_whose_events_reach_the_page(lab_runs):
    at = app()
    assert not at.exception and at.title[0].value == "Live training"
    assert "Start" in at.info[0].value  # the first-time visitor is told what to do
    at.sidebar.selectbox(key="f_hard").set_value("affine")
    at.sidebar.number_input(key="f_steps").set_value(120)
    at.sidebar.button[0].click().run()
    run_id = at.query_params["run"]
    assert (lab_runs / run_id / "lab.json").is_file()
    wait_for(at, lambda a: len(a.get("image")) >= 1 and accuracy_points(a) > 0)
    assert not at.exception
    assert any("augmented" in (i.proto.imgs[0].caption if i.proto.imgs else "") for i in at.get("image"))
    # the controls belong to this session: a knob change, then Stop, reach the run
    [n for n in at.number_input if n.label == "λ"][0].set_value(0.5)
    [b for b in at.button if b.label == "Apply"][0].click().run()
    assert json.loads((lab_runs / run_id / "control.json").read_text())["hard_lambda"] == 0.5
    stop = [b for b in at.button if b.label == "Stop"][0]
    stop.click().run()
    wait_for(at, lambda a: json.loads((lab_runs / run_id / "status.json").read_text())["state"]
             in ("stopped", "finished"), timeout=60)


def test_bad_values_are_refused_next_to_the_field(lab_runs):
    at = app()
    at.sidebar.number_input(key="f_steps").set_value(0).run()
    errors = [e.value for e in at.sidebar.error]
    assert any("greater than 0" in e for e in errors), errors
    assert [b for b in at.sidebar.button if b.label == "Start"][0].disabled
    at.sidebar.number_input(key="f_steps").set_value(100)
    at.sidebar.number_input(key="f_T").set_value(-1.0).run()
    assert any("greater than 0" in e.value for e in at.sidebar.error)
    at.sidebar.number_input(key="f_T").set_value(4.0).run()
    assert not at.sidebar.error and not [b for b in at.sidebar.button if b.label == "Start"][0].disabled
    assert not list(lab_runs.glob("*/lab.json"))  # nothing was started


def test_a_start_past_the_queue_limit_is_one_line_and_queues_nothing(lab_runs, monkeypatch):
    from hard_core.config import RunConfig
    from lab import runs

    cli = lab_runs / "cli"  # a run of another tool, alive (this process), holds the only slot
    cli.mkdir(parents=True)
    (cli / "status.json").write_text(json.dumps({"state": "running", "step": 1, "pid": os.getpid(),
                                                 "updated": time.time()}))
    (cli / "config.json").write_text(json.dumps({"config": RunConfig().model_dump(mode="json")}))
    waiting = runs.submit(RunConfig(dataset="mnist5k", canvas=28, steps=30), "another browser")
    assert runs.state(waiting) == "queued"
    monkeypatch.setenv("HARD_LAB_MAX_QUEUED", "1")
    at = app()
    [b for b in at.sidebar.button if b.label == "Start"][0].click().run()
    assert not at.exception and "run" not in at.query_params
    assert [e.value.replace("\\", "") for e in at.sidebar.error] == [  # shown escaped (lab/markdown.md)
        "the lab's queue is full (1 waiting runs, $HARD_LAB_MAX_QUEUED): wait until one starts"]
    assert len(list(lab_runs.glob("*/lab.json"))) == 1  # only the other browser's run
    assert at.sidebar.number_input(key="f_steps").value  # the form is still there


def test_two_sessions_are_isolated_and_a_refresh_reattaches(lab_runs, monkeypatch):
    from lab import widgets

    owner = app()
    owner.sidebar.number_input(key="f_steps").set_value(40)
    owner.sidebar.toggle(key="f_twin").set_value(False)
    owner.sidebar.button[0].click().run()
    run_id, key = owner.query_params["run"], owner.session_state["owner_key"]
    assert "key" not in owner.query_params  # the key is never in the address
    other = app(run=run_id)  # another browser session opening the same run
    assert other.session_state["owner_key"] != key
    assert not [b for b in other.button if b.label in ("Pause", "Stop")]
    assert "read-only" in " ".join(c.value for c in other.caption)
    monkeypatch.setattr(widgets, "browser_cookie", lambda: key)  # the owner's browser sends its cookie
    refreshed = app(run=run_id)  # the owner's tab, reloaded
    assert [b for b in refreshed.button if b.label == "Stop"]
    assert not (lab_runs / run_id / "lab.json").read_text().count('"twin"')  # the twin was switched off
    wait_for(refreshed, lambda a: "finished" in " ".join(p.proto.text for p in a.get("progress")), timeout=120)


def headline_text(at: AppTest) -> str:
    return " ".join(m.value for m in at.markdown if m.value.startswith("####"))


def test_start_trains_the_kd_twin_and_the_headline_compares_them(lab_runs):
    at = app()
    at.sidebar.number_input(key="f_steps").set_value(60)
    at.sidebar.button[0].click().run()
    run_id = at.query_params["run"]
    twin = json.loads((lab_runs / run_id / "lab.json").read_text())["twin"]
    twin_lab = json.loads((lab_runs / twin / "lab.json").read_text())
    assert twin_lab["background"] and twin_lab["config"]["hard"] == "none" and twin_lab["config"]["steps"] == 60
    # the verdict: the HARD student, the KD twin and the teacher on the world's suite, as numbers
    wait_for(at, lambda a: re.search(r"At step \d+( \(final\))?: HARD student shift \d+% \(KD twin \d+%, teacher \d+%\)",
                                     headline_text(a)), timeout=180)
    assert [m.label for m in at.metric][:3] == ["teacher · shift", "KD twin · shift", "HARD student · shift"]
    assert all(m.value.endswith("%") for m in at.metric[:3])
    wait_for(at, lambda a: any({"KD student (twin)", "HARD student"} <= {t.get("name") for t in c["data"]}
                               for c in map(lambda c: json.loads(c.proto.spec), a.get("plotly_chart"))), timeout=120)
    # another page and back: the address lost its query (as st.navigation does); the session keeps the run
    at.switch_page("views/learn.py").run()
    at.query_params.clear()
    at.switch_page("views/live.py").run()
    assert at.query_params["run"] == run_id and "KD twin" in headline_text(at)
    assert at.sidebar.number_input(key="f_steps").value == 60 and not at.warning  # the form kept its values
    # the same configuration again: the twin is reused, not trained twice
    wait_for(at, lambda a: json.loads((lab_runs / twin / "status.json").read_text())["state"] == "finished", 120)
    at.sidebar.button[0].click().run()
    again = at.query_params["run"]
    assert again != run_id and json.loads((lab_runs / again / "lab.json").read_text())["twin"] == twin
    assert sum(json.loads(p.read_text()).get("background", False) for p in lab_runs.glob("*/lab.json")) == 1
    [b for b in at.button if b.label == "Stop"][0].click().run()


def test_learn_page_presets_fill_the_live_form(lab_runs):
    at = app()
    at.switch_page("views/learn.py").run()
    assert not at.exception and at.title[0].value.startswith("Learn")
    at.slider(key="learn_T").set_value(1.0).run()
    assert not at.exception
    live = app(preset="kd-shift")
    assert live.sidebar.selectbox(key="f_augment").value == "shift"
    assert live.sidebar.selectbox(key="f_hard").value == "none"
    assert "preset" not in live.query_params
    colour = app(preset="hard-colour")  # each family's preset opens the world where it has work to do
    assert colour.sidebar.selectbox(key="f_world").value == "polarity"
    assert colour.sidebar.selectbox(key="f_hard").value == "colour"


def test_a_1d_run_from_the_cli_opens_read_only_with_line_plots(lab_runs):
    """mnist1d: the same views as line plots (signals, per-position disagreement, shift-invariance
    curves); a run started outside the lab (no lab.json) is read-only."""
    from hard_core.config import RunConfig
    from hard_core.runs import run_to_dir

    run_to_dir(RunConfig(dataset="mnist1d", teacher="default", student="mlp", hard="affine", steps=20,
                         eval_every=10, snapshot_every=10, probe_every=10, suites="shift:8"), lab_runs / "cli-1d")
    at = app(run="cli-1d")
    assert not at.exception and not at.get("image")  # no image grids for signals
    titles = [json.dumps(json.loads(c.proto.spec)["layout"].get("title", "")) for c in at.get("plotly_chart")]
    for words in ("ignal", "isagree", "ccuracy against the shift"):  # the signals, disagreement, invariance curve
        assert any(words in t for t in titles), (words, titles)
    assert "read-only" in " ".join(c.value for c in at.caption)
