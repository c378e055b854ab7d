"""The Augmentation explorer through Streamlit's AppTest (each AppTest is its own session): what it opens
on, the teacher's soft label per view, CutMixPick with a finished run's student, HARD runs, and the
T. stddev ranking: intervals, ties, the collapse flag (never called best) and the validation's finding."""
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from hard_core.assets import ASSETS
from hard_core.probes.tstddev import Score

APP_DIR = Path(__file__).resolve().parents[1] / "app"
from lab import explore  # noqa: E402  (conftest puts app/ on the path)


@pytest.fixture
def lab_env(runs_root, monkeypatch, tmp_path):
    monkeypatch.setenv("HARD_LAB_RUNS", str(runs_root))
    monkeypatch.setenv("HARD_CACHE", str(tmp_path / "cache"))  # rankings come from the shipped files
    return runs_root


def open_page(page: str = "views/explorer.py") -> AppTest:
    at = AppTest.from_file(str(APP_DIR / "streamlit_app.py"), default_timeout=120).run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def text(at: AppTest) -> str:
    return " ".join(m.value for m in [*at.markdown, *at.caption, *at.info])


def test_explorer_opens_on_a_change_and_shows_the_teachers_soft_label_per_view(lab_env):
    at = open_page()
    assert at.title[0].value == "Augmentation explorer"
    assert at.selectbox(key="x_augmentation").value == "shift"  # not "none": two identical rows
    assert "middle: after shift" in at.get("image")[0].captions[0]
    table = at.table[0].value  # the soft label: a row per view, a column per image
    assert list(table["view"]) == ["clean", "augmented"] and len(table.columns) == 1 + 8
    assert all("%" in cell and " · " in cell for cell in table.iloc[0, 1:])  # e.g. "7 · 98%  1 · 1%  9 · 0%"
    assert "T = 4" in text(at) and "what the student learns to match" in text(at)
    at.selectbox(key="x_augmentation").set_value("cutmix").run()
    assert not at.exception and "middle: after cutmix · bottom: |x̃ − x|" in at.get("image")[0].captions[0]
    assert len(at.table) == 1


def test_cutmixpick_uses_a_finished_runs_student_or_says_it_has_none(lab_env, tmp_path, monkeypatch):
    at = open_page()
    at.selectbox(key="x_augmentation").set_value("cutmixpick").run()
    caption = at.get("image")[0].captions[0]
    assert not at.exception and caption.startswith("top: the test image each candidate was cut from · middle: "
                                                   "the 8 of 16 CutMix")
    assert "the mlp student of the finished run hard-affine-20 (HARD-affine, 20 steps)" in caption
    assert "freshly initialised" not in caption and "of 8 carry a patch of another image" in caption
    monkeypatch.setenv("HARD_LAB_RUNS", str(tmp_path / "empty"))
    at = open_page()
    at.selectbox(key="x_augmentation").set_value("cutmixpick").run()
    assert "a freshly initialised mlp (no finished run" in at.get("image")[0].captions[0]


def test_cutmixpick_shows_the_candidates_it_kept_below_their_sources(lab_env):
    shown = explore.explore("mnist5k · canvas 40", "cutmixpick", seed=3)
    clean, aug = shown.snapshot["clean"].float(), shown.snapshot["augmented"].float()
    # every kept candidate keeps its source image's background outside the pasted box
    assert ((clean - aug).abs().flatten(1) == 0).float().mean(1).min() > 0


def test_explorer_1d_draws_signals_and_reads_the_shipped_ranking(lab_env):
    at = open_page()
    at.selectbox(key="x_dataset").set_value("mnist1d").run()  # 1D: line plots, no image-only augmentations
    assert not at.exception and len(at.get("image")) == 0 and at.selectbox(key="x_augmentation").value == "shift"
    assert "randaugment" not in at.selectbox(key="x_augmentation").options
    at.button(key="x_rank").click().run()
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    ranked = [c for c in charts if c["layout"]["uirevision"] == "tstddev"]
    assert not at.exception and len(ranked) == 1 and len(ranked[0]["data"][0]["y"]) == 5
    assert ranked[0]["data"][0]["error_x"]["array"]  # each score with its interval
    at.selectbox(key="x_augmentation").set_value("none").run()  # the ranking stays on screen
    assert len([c for c in at.get("plotly_chart") if '"tstddev"' in c.proto.spec]) == 1


def test_the_explorer_flags_polarity_for_the_shift_teacher_and_never_calls_it_best(lab_env):
    """The shipped shift teacher cannot read inverted digits: its mean prediction hardly moves, so polarity
    scores among the lowest. The explorer says so and ranks it nowhere."""
    at = open_page()
    at.button(key="x_rank").click().run()
    assert not at.exception
    said = text(at)
    assert "**polarity** scores" in said and "the teacher cannot read these" in said
    assert "can read: **polarity**" not in said and "Best by T. stddev" not in said
    assert "Spearman" in said and "weak" in said  # what the validation found, where the ranking is shown
    fig = next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if '"tstddev"' in c.proto.spec)
    bars = fig["data"][0]
    i = bars["y"].index("polarity")
    assert bars["y"][-1] == "polarity" and bars["marker"]["color"][i] == "#d62728"
    assert bars["text"][i].startswith("cannot read: ")
    assert all(c != "#d62728" for j, c in enumerate(bars["marker"]["color"]) if j != i)


def test_verdict_names_ties_and_collapses_in_words():
    scores = [Score("cutout", 0.010, 0.009, 0.011, 0.55, 0.998, 62, 1), Score("flip-crop", 0.0105, 0.0095, 0.0115,
                                                                            0.70, 0.998, 62, 1),
              Score("mixup", 0.02, 0.019, 0.021, 0.87, 0.998, 62, 3),
              Score("polarity", 0.005, 0.004, 0.006, 0.13, 0.998, 62, None)]
    said = explore.verdict(scores)
    assert said.startswith("Lowest T. stddev among the augmentations the teacher can read: **cutout** (0.0100, "
                           "95% interval 0.0090-0.0110), tied with flip-crop")
    assert "**polarity** scores 0.0050, but the teacher cannot read these: 13% (clean 99.8%)" in said
    assert "mixup" not in said


def test_shipped_rankings_belong_to_the_shipped_teachers(monkeypatch, tmp_path):
    """A fresh clone ranks at once: each explorer data set's shipped teacher has its ranking in assets/,
    computed for exactly these weights and settings (a retrained teacher fails here until
    `docs/bench/explorer_ranking.py --ship` is run again)."""
    monkeypatch.setenv("HARD_CACHE", str(tmp_path / "cache"))

    def no_computation(*args, **kw):
        raise AssertionError("ranked again although a ranking is shipped")

    monkeypatch.setattr("hard_core.runs.validate.rank_augmentations", no_computation)
    for label in explore.DATASETS:
        scores, how = explore.rank(label)
        assert how["read"] and Path(how["kept"]).parent == ASSETS and how["chunks"] >= 60, label
        assert len(scores) >= 5 and how["chunk_batches"] == 10 and how["batch_size"] == 64


def test_explorer_lists_the_finished_hard_run(lab_env):
    at = open_page()
    at.selectbox(key="x_augmentation").set_value(explore.HARD).run()
    assert not at.exception
    options = at.selectbox(key="x_run").options
    assert len(options) == 1 and options[0].startswith("hard-affine-20 (HARD-affine")
    assert "hard-affine-20" in at.get("image")[0].captions[0]
    params = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert params["layout"]["title"]["text"] == "What the augmentor chose (128 samples)"
    assert [t["type"] for t in params["data"]] == ["scatter"] and len(params["data"][0]["x"]) == 128
    assert "±6 px bound" in params["layout"]["xaxis"]["title"]["text"]  # the run's bound, as a reference
    # 20 steps is still the warm-up: the caption does not claim the augmentor learned anything
    verdict = " ".join(c.value for c in at.caption)
    assert "still warming up" in verdict and "learned where" not in verdict
    at.selectbox(key="x_dataset").set_value("mnist1d").run()  # runs are listed per data set
    at.selectbox(key="x_augmentation").set_value(explore.HARD).run()
    assert not at.exception and at.selectbox(key="x_run").options[0].startswith("hard-1d-20")
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert titles[:2] == ["What the student sees: clean vs augmented signals", "What the augmentor chose (128 samples)"]


def test_explorer_without_runs_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setenv("HARD_LAB_RUNS", str(tmp_path))
    at = open_page()
    at.selectbox(key="x_augmentation").set_value(explore.HARD).run()
    assert not at.exception and "No finished HARD run" in at.info[0].value and not at.get("image")
