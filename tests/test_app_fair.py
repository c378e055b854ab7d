"""The Live page never misleads (AppTest, on run folders written by hand): the headline compares a HARD run
with its KD twin at one named step even when the twin lags, a run opened by its address shows its own
settings in the form, and a new run's settings travel in the address."""
import json
import re
import time
from pathlib import Path

import torch
from streamlit.testing.v1 import AppTest

from hard_core.config import RunConfig, twin_config

ENTRY = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")
HARD = RunConfig(dataset="mnist5k", canvas=40, teacher="default", world="shift", hard="affine", steps=600)


def app(**query) -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=60)
    at.query_params.update(query)
    return at.run()


def write_run(root: Path, run_id: str, cfg: RunConfig, state: str, evals: dict[int, float], **lab) -> Path:
    """A run folder as the engine and the lab leave it: config, status, evaluation events, lab.json."""
    d = root / run_id
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"config": cfg.model_dump(mode="json"), "created": 1.0}))
    step = max(evals, default=0)
    (d / "status.json").write_text(json.dumps({"state": state, "step": step, "total_steps": cfg.steps,
                                               "updated": time.time()}))
    events = [{"kind": "eval", "step": 50, "model": "teacher", "acc": {"test": 0.99, "shift": 0.98}}]
    events += [{"kind": "eval", "step": s, "model": "student", "acc": {"test": 0.95, "shift": a}, "agree": {}}
               for s, a in sorted(evals.items())]
    (d / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (d / "lab.json").write_text(json.dumps({"owner": "someone", "created": 1.0, "config": cfg.model_dump(mode="json"),
                                            **lab}))
    return d


def verdict(at: AppTest) -> str:
    return next((m.value for m in at.markdown if m.value.startswith("####")), "")


def test_a_finished_run_is_compared_with_a_lagging_twin_at_the_twins_step(lab_runs):
    twin = twin_config(HARD)
    write_run(lab_runs, "20261206-100000-aaaa", twin, "running", {50: 0.16, 100: 0.19})
    write_run(lab_runs, "20261206-100000-bbbb", HARD, "finished",
              {s: 0.30 + s / 1000 for s in range(50, 601, 50)}, twin="20261206-100000-aaaa")
    at = app(run="20261206-100000-bbbb")
    assert not at.exception
    # both students at step 100 (the twin's latest), never the finished run's 93% against the twin's step 100
    assert verdict(at).startswith("#### At step 100: HARD student shift 40% (KD twin 19%, teacher 98%)")
    assert "the run is at step 600" in verdict(at)
    [delta] = [m.delta for m in at.metric if m.delta]
    assert delta == "+21 pts vs KD"
    assert any("Students at step 100" in c.value for c in at.caption)


def test_a_twin_not_evaluated_yet_gives_no_difference(lab_runs):
    write_run(lab_runs, "20261206-100000-aaaa", twin_config(HARD), "running", {})
    write_run(lab_runs, "20261206-100000-bbbb", HARD, "finished", {50: 0.3, 600: 0.93}, twin="20261206-100000-aaaa")
    at = app(run="20261206-100000-bbbb")
    assert re.match(r"#### At step 600 \(final\): HARD student shift 93% \(KD twin not evaluated yet", verdict(at))
    assert not [m.delta for m in at.metric if m.delta]


def test_the_twins_own_page_has_no_twin_column_and_an_ended_run_no_controls(lab_runs):
    write_run(lab_runs, "20261206-100000-aaaa", twin_config(HARD), "finished", {50: 0.16, 600: 0.22})
    at = app(run="20261206-100000-aaaa")
    assert [m.label for m in at.metric] == ["teacher · shift", "KD student · shift"]
    from lab import headline
    snap = {"invariance.shift.axis.dy": torch.arange(-1, 2.0), "invariance.shift.axis.dx": torch.arange(-1, 2.0),
            "invariance.shift.teacher.acc": torch.ones(3, 3), "invariance.shift.student.acc": torch.ones(3, 3)}
    alone = headline.maps_figure(snap, None, "shift", "KD student", with_twin=False)
    assert [a.text for a in alone.layout.annotations] == ["teacher", "KD student"]  # no empty twin panel
    assert not [b for b in at.button if b.label in ("Pause", "Stop")]
    assert "ETA" not in " ".join(str(p.proto.text) for p in at.get("progress"))


def test_opening_a_run_fills_the_form_with_its_settings(lab_runs):
    polarity = RunConfig(dataset="mnist5k", canvas=40, teacher="default", world="polarity", hard="colour", steps=300,
                         seed=3, lr=3e-3, eval_every=50, snapshot_every=25, probe_every=50, log_every=10)
    write_run(lab_runs, "20261206-100000-cccc", polarity, "finished", {300: 0.83})
    at = app(world="shift")  # a new-run form first, then the run is opened by its address
    assert at.sidebar.selectbox(key="f_world").value == "shift"
    at.query_params.clear()
    at.query_params["run"] = "20261206-100000-cccc"
    at.run()
    form = {k: at.sidebar.selectbox(key=k).value for k in ("f_world", "f_hard", "f_student")}
    assert form == {"f_world": "polarity", "f_hard": "colour", "f_student": "mlp"}
    assert (at.sidebar.number_input(key="f_steps").value, at.sidebar.number_input(key="f_seed").value) == (300, 3)
    assert at.sidebar.number_input(key="f_lr").value == 3e-3
    assert "polarity world" in " ".join(c.value for c in at.caption)  # the teacher's world in its name
    assert any("the shipped CNN of the polarity world" in c.value for c in at.caption)
    notes = " ".join(c.value for c in at.sidebar.caption)
    assert "These are the settings of the run on screen" in notes
    at.sidebar.number_input(key="f_steps").set_value(400).run()
    assert "differs from the run on screen in: steps 400" in " ".join(c.value for c in at.sidebar.caption)


def test_a_new_runs_settings_travel_in_the_address(lab_runs):
    at = app(world="polarity", hard="colour", steps="300")
    assert (at.sidebar.selectbox(key="f_world").value, at.sidebar.selectbox(key="f_hard").value) == ("polarity",
                                                                                                    "colour")
    assert at.sidebar.number_input(key="f_steps").value == 300 and "run" not in at.query_params
    at.sidebar.selectbox(key="f_world").set_value("thickness").run()
    assert at.query_params["world"] == "thickness" and at.query_params["steps"] == "300"
    assert not any("key" in k for k in at.query_params)
    bad = app(steps="many")
    assert bad.warning and "steps" in bad.warning[0].value and not bad.exception


def test_open_a_run_shows_it_with_its_settings(lab_runs):
    thickness = RunConfig(dataset="mnist5k", canvas=40, teacher="default", world="thickness", hard="vae", steps=200)
    write_run(lab_runs, "20261206-100000-dddd", thickness, "finished", {200: 0.7})
    at = app()
    at.sidebar.selectbox(key="open_run").set_value("20261206-100000-dddd").run()
    assert at.query_params["run"] == "20261206-100000-dddd" and not at.exception
    assert (at.sidebar.selectbox(key="f_world").value, at.sidebar.selectbox(key="f_hard").value) == ("thickness",
                                                                                                    "vae")
    assert at.sidebar.selectbox(key="open_run").value is None  # ready to open another
