"""Paper 2's figure on the Learn page (app/lab/thrives.py): the shipped sweep drawn from its JSON as mean ± std
over seeds, one line when the file is missing or bad, and a point trained live with its twin of the other loss
(CE, with the same augmentation, steps, seed and data), which the Live page names truthfully."""
import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from hard_core.augment import list_augments
from hard_core.augment.registry import _AUGMENTS
from hard_core.config import PLAIN, TEACHER_AUGMENTS, RunConfig, same_run, twin_config
from hard_core.errors import UserError
from test_app_fair import verdict, write_run

from lab import runs, thrives

ENTRY = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")
SHIPPED = json.loads(thrives.SHIPPED.read_text())


def learn_page() -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=60).run()
    at.switch_page("views/learn.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def sweep_chart(at: AppTest) -> dict | None:
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return next((c for c in charts if "KD keeps gaining" in c["layout"]["title"]["text"]), None)


def test_the_learn_page_draws_the_shipped_figure_as_mean_and_std_over_seeds(lab_runs):
    at = learn_page()
    chart = sweep_chart(at)
    assert chart is not None
    lines = {t["name"]: t for t in chart["data"]}
    assert set(lines) == {"CE", "CE + flip-crop", "KD", "KD + flip-crop"}
    kd_da = lines["KD + flip-crop"]
    assert kd_da["x"] == [300, 1200, 4800] and chart["layout"]["xaxis"]["type"] == "log"
    # the numbers of docs/results.md's table, recomputed from the per-seed runs in sweep.json
    assert kd_da["y"] == pytest.approx([89.2, 94.0, 95.0], abs=0.05)
    assert kd_da["error_y"]["array"] == pytest.approx([0.96, 0.75, 0.12], abs=0.01)  # 1.0, 0.8, 0.1 there
    assert lines["CE"]["y"] == pytest.approx([84.9, 85.1, 85.5], abs=0.05)
    assert lines["KD"]["line"]["dash"] == "dash" and kd_da["line"]["dash"] == "solid"
    assert lines["KD"]["line"]["color"] == kd_da["line"]["color"] != lines["CE"]["line"]["color"]
    assert "3 seeds" in chart["layout"]["title"]["text"]
    caption = next(c.value for c in at.caption if "What it does not show" in c.value)
    assert "KD + flip-crop +5.8" in caption and "CE +0.6" in caption and "sweep --teacher=default" in caption
    button = at.button(key="paper2_train")
    assert button.label == "Train KD + flip-crop, 300 steps live, with its CE twin"
    at.selectbox(key="paper2_steps").set_value(1200).run()
    assert at.button(key="paper2_train").label == "Train KD + flip-crop, 1200 steps live, with its CE twin"
    assert at.selectbox(key="paper2_seed").options == ["0", "1", "2"]


@pytest.mark.parametrize("content", [None, b"{\"settings\": {\"swept\": {\"ste", b"\xff\xfe\x00binary",
                                     b"[1, 2, 3]", json.dumps({**SHIPPED, "runs": [{"values": 3}] * 3}).encode()])
def test_a_missing_or_bad_sweep_file_is_one_line_and_the_page_still_draws(lab_runs, tmp_path, monkeypatch, content):
    where = tmp_path / "sweep.json"
    if content is not None:
        where.write_bytes(content)
    monkeypatch.setenv("HARD_LAB_SWEEP", str(where))
    at = learn_page()
    assert sweep_chart(at) is None
    [line] = [c.value for c in at.caption if "figure is not drawn" in c.value]
    assert "\n" not in line and len(line) < 300
    assert not [b for b in at.button if b.key == "paper2_train"]
    assert at.header[-1].value.startswith("4 · HARD")  # the rest of the page is there
    assert at.get("plotly_chart")  # the temperature chart


def test_a_point_trains_kd_and_its_ce_twin_with_the_same_augment_steps_seed_and_data():
    sweep = thrives.load().sweep
    cfg = thrives.point_config(sweep, "flip-crop", 1200, seed=2)
    twin = twin_config(cfg, "loss")
    assert (cfg.loss, cfg.augment, cfg.steps, cfg.seed, cfg.world) == ("kd", "flip-crop", 1200, 2, "scarce")
    assert (twin.loss, twin.augment, twin.steps, twin.seed, twin.world) == ("ce", "flip-crop", 1200, 2, "scarce")
    mine, its = cfg.model_dump(), twin.model_dump()
    assert {k for k in mine if mine[k] != its[k]} == {"loss"}  # data, student, lr, cadence: all the same
    assert cfg.eval_every == 50 and cfg.threads is None  # the Live page's cadence, this machine's threads
    shipped = next(r["config"] for r in SHIPPED["runs"] if r["dir"] == "loss=kd-augment=flip-crop-steps=1200-seed=2")
    same = {k: v for k, v in shipped.items() if k not in ("eval_every", "log_every", "snapshot_every",
                                                          "checkpoint_every", "probe_every", "threads")}
    assert {k: mine[k] for k in same} == same  # what the figure's point learned from
    assert twin_config(twin, "loss").model_dump() == mine  # the other loss of CE is KD
    assert twin_config(cfg).augment == "none" and twin_config(cfg).loss == "kd"  # the plain-KD twin is unchanged
    with pytest.raises(UserError):
        thrives.point_config(sweep, "flip-crop", 999)


def test_runs_the_teacher_shapes_have_no_ce_twin():
    base = RunConfig(dataset="mnist5k", canvas=40, teacher="default", world="scarce")
    assert twin_config(RunConfig(**{**base.model_dump(), "hard": "mix"}), "loss") is None
    assert twin_config(RunConfig(**{**base.model_dump(), "augment": "cutmixpick"}), "loss") is None
    assert twin_config(RunConfig(**{**base.model_dump(), "kind": "pretrain", "loss": "ce"}), "loss") is None
    # TEACHER_AUGMENTS is the registry's `needs_models`, kept in step by this test
    assert set(TEACHER_AUGMENTS) == {n for n in list_augments() if getattr(_AUGMENTS[n][1], "needs_models", False)}
    assert "augment" in PLAIN and "loss" not in PLAIN
    with pytest.raises(ValueError):
        twin_config(base, "other")


def test_the_button_starts_the_point_with_its_ce_twin_in_the_background_once(lab_runs):
    at = learn_page()
    at.selectbox(key="paper2_steps").set_value(1200).run()
    at.button(key="paper2_train").click().run()
    assert not at.exception, [e.value for e in at.exception]
    run_id = at.query_params["run"][0] if isinstance(at.query_params["run"], list) else at.query_params["run"]
    lab = json.loads((lab_runs / run_id / "lab.json").read_text())
    twin = json.loads((lab_runs / lab["twin"] / "lab.json").read_text())
    assert (lab["config"]["loss"], lab["config"]["augment"], lab["config"]["steps"]) == ("kd", "flip-crop", 1200)
    assert twin["background"] and not lab.get("background")  # the twin at background priority, as the KD twin
    assert same_run(twin["config"], twin_config(RunConfig(**lab["config"]), "loss"))
    assert twin["config"]["loss"] == "ce" and twin["config"]["augment"] == "flip-crop"
    # the Live page shows the run; a second click opens the same run, trains nothing twice
    assert at.title[0].value == "Live training"
    sweep = thrives.load().sweep
    assert thrives.open_point(sweep, "flip-crop", 1200, 0, owner="someone else") == run_id
    assert len([d for d in lab_runs.iterdir() if (d / "request.json").is_file()]) == 2
    for r in (run_id, lab["twin"]):
        runs.stop(r)


def scarce_run(root: Path, run_id: str, cfg: RunConfig, test: dict[int, float], **lab) -> None:
    """A finished scarce-world run folder (`write_run`) whose evaluations are on test only, with the teacher's
    at the first step for a KD run (a CE run has no teacher)."""
    d = write_run(root, run_id, cfg, "finished", {}, **lab)
    events = [{"kind": "eval", "step": 50, "model": "teacher", "acc": {"test": 0.99}}] if cfg.loss == "kd" else []
    events += [{"kind": "eval", "step": s, "model": "student", "acc": {"test": a}, "agree": {}} for s, a in test.items()]
    (d / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (d / "status.json").write_text(json.dumps({"state": "finished", "step": cfg.steps, "total_steps": cfg.steps}))


def test_the_live_page_names_a_ce_twin_and_shows_no_maps_for_it(lab_runs):
    kd = thrives.point_config(thrives.load().sweep, "flip-crop", 1200)
    ce = twin_config(kd, "loss")
    scarce_run(lab_runs, "20261206-100000-aaaa", ce, {600: 0.80, 1200: 0.836})
    scarce_run(lab_runs, "20261206-100000-bbbb", kd, {600: 0.92, 1200: 0.94}, twin="20261206-100000-aaaa")
    at = AppTest.from_file(ENTRY, default_timeout=60)
    at.query_params["run"] = "20261206-100000-bbbb"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    # scarce: the measure is in-domain test accuracy; the twin is CE, never "KD twin"
    assert re.match(r"#### At step 1200 \(final\): KD \+ flip-crop student test 94% \(CE twin 84%, teacher 99%\)",
                    verdict(at))
    assert [m.label for m in at.metric][:3] == ["teacher · test", "CE twin · test", "KD + flip-crop student · test"]
    assert [m.delta for m in at.metric if m.delta] == ["+10 pts vs CE"]
    text = " ".join([verdict(at), *(m.label for m in at.metric), *(c.value for c in at.caption)])
    assert "KD twin" not in text
    # the CE twin's own page: a CE run learns from no teacher, so it has no headline to tell
    at.query_params["run"] = "20261206-100000-aaaa"
    at.run()
    assert not at.exception and verdict(at) == ""
