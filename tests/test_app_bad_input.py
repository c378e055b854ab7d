"""Bad input in the lab under AppTest: the run form's upper bounds, a diverged run's message on the Live
page, upload errors in words, the Streamlit config that hides the header's own Stop; and the words that
follow the loaded preset (Live intro, Learn page)."""
import tomllib
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from hard_core.config import RunConfig
from hard_core.runs import run_to_dir

ROOT = Path(__file__).resolve().parents[1]
ENTRY = str(ROOT / "app" / "streamlit_app.py")


def app(**query) -> AppTest:
    at = AppTest.from_file(ENTRY, default_timeout=60)
    at.query_params.update(query)
    return at.run()


def field_errors(at: AppTest) -> str:
    return " | ".join(e.value for e in at.sidebar.error)


def start_disabled(at: AppTest) -> bool:
    return [b for b in at.sidebar.button if b.label == "Start"][0].disabled


def test_form_refuses_runs_the_lab_cannot_hold(lab_runs):
    at = app()
    at.sidebar.number_input(key="f_steps").set_value(1_000_000_000).run()
    assert "less than or equal to" in field_errors(at) and start_disabled(at)  # RunConfig's own bound
    at.sidebar.number_input(key="f_steps").set_value(50_000).run()
    assert "at most 20,000 steps" in field_errors(at) and start_disabled(at)  # the lab's
    at.sidebar.number_input(key="f_steps").set_value(600)
    at.sidebar.number_input(key="f_lr").set_value(1e6).run()
    assert "less than or equal to 10" in field_errors(at) and start_disabled(at)
    at.sidebar.number_input(key="f_lr").set_value(0.5).run()
    assert "at most 0.1" in field_errors(at) and start_disabled(at)  # RunConfig alone takes up to 10
    at.sidebar.number_input(key="f_lr").set_value(1e-3)
    at.sidebar.number_input(key="f_batch").set_value(4_001).run()
    assert "at most 4,000: the student's training set has 4,000 images" in field_errors(at)
    at.sidebar.number_input(key="f_batch").set_value(600)
    at.sidebar.selectbox(key="f_world").set_value("scarce").run()  # 50 digits per class
    assert "at most 500" in field_errors(at) and start_disabled(at)
    at.sidebar.number_input(key="f_batch").set_value(128).run()
    assert not at.sidebar.error and not start_disabled(at)
    assert not list(lab_runs.glob("*/lab.json"))  # nothing was started


def test_a_diverged_run_says_so_in_the_page(lab_runs, monkeypatch):
    """The engine stops a run whose loss becomes NaN (here forced from step 8 on) and records why; the
    Live page shows that as an error in words, not as a quiet "finished"."""
    import hard_core.train.step as step

    real, calls = step.kd_loss, {"n": 0}

    def blows_up(*args, **kw):
        calls["n"] += 1
        loss = real(*args, **kw)
        return loss * float("nan") if calls["n"] >= 8 else loss

    monkeypatch.setattr(step, "kd_loss", blows_up)
    cfg = RunConfig(dataset="mnist5k", canvas=28, teacher="default", student="mlp", steps=30, batch_size=32,
                    log_every=5, eval_every=30, snapshot_every=30, probe_every=30, suites="shift:3")
    with pytest.raises(Exception, match="loss became nan at step 10"):
        run_to_dir(cfg, lab_runs / "diverged")
    at = app(run="diverged")
    assert not at.exception
    progress = " ".join(p.proto.text for p in at.get("progress"))
    assert "failed" in progress and "finished" not in progress
    assert any("loss became nan at step 10" in e.value and "learning rate" in e.value for e in at.error)


def test_a_huge_finite_loss_counts_as_divergence(monkeypatch):
    """lr 1e6 once "finished" with a loss of 3e20: the engine stops above MAX_LOSS as it does on NaN."""
    import hard_core.train.step as step
    from hard_core.train import Diverged, train
    from hard_core.train.loop import MAX_LOSS

    real, calls = step.ce_loss, {"n": 0}

    def explodes(*args):
        calls["n"] += 1
        return real(*args) * (10 * MAX_LOSS if calls["n"] >= 7 else 1.0)

    monkeypatch.setattr(step, "ce_loss", explodes)
    cfg = RunConfig(dataset="mnist5k", canvas=28, loss="ce", student="mlp", steps=20, batch_size=32, log_every=5,
                    eval_every=20, snapshot_every=20, suites="none", seed=0)
    logged = []
    with pytest.raises(Diverged, match="loss became .*e\\+.. at step 10: .*learning rate") as e:
        for event in train(cfg):
            logged += [event.loss] if event.kind == "step" else []
    assert e.value.step == 10 and len(logged) == 1 and logged[0] < 10  # step 5 was fine; step 10 stopped it


def test_streamlit_config_hides_the_header_stop_and_lets_the_inspector_explain_sizes():
    from lab import inspection

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["client"]["toolbarMode"] == "minimal"
    assert config["server"]["maxUploadSize"] * 2**20 > inspection.MAX_UPLOAD  # the inspector's own words speak
    assert config["runner"]["postScriptGC"] is False  # a full gc.collect() per refresh: ~250 ms with torch loaded


def test_live_intro_follows_the_loaded_preset(lab_runs):
    default = app()
    assert "HARD-affine" in default.info[0].value and "shift" in default.info[0].value
    vae = app(preset="hard-vae")
    text = vae.info[0].value
    assert "HARD-vae" in text and "scarce" in text and "HARD-affine" not in text
    assert vae.session_state["f_lambda"] is None  # the family's own lambda, which vae's result was measured with
    mix = app(preset="hard-mix")
    assert "HARD-mix" in mix.info[0].value and "scarce" in mix.info[0].value
    oracle = app(preset="kd-shift")
    assert "oracle" in oracle.info[0].value and "HARD" not in oracle.info[0].value
    learn = app()
    learn.switch_page("views/learn.py").run()
    shown = " ".join(c.value for c in learn.caption)
    for words in ("HARD-colour", "polarity", "HARD-mix", "scarce", "HARD-vae", "latent"):
        assert words in shown, words  # each family with what it does in its own world
    pictured = " ".join(i.proto.imgs[0].caption for i in learn.get("image"))
    for world in ("shift", "rotation", "polarity", "thickness"):  # and each world's nuisance, as images
        assert f"{world} world" in pictured, world


def test_intro_follows_the_family_the_world_and_the_augmentation():
    from lab import stories

    assert "can express" in stories.intro("affine", "rotation") and "*rotation* accuracy" in stories.intro("affine", "rotation")
    assert "cannot express" in stories.intro("colour", "shift")
    assert "oracle" in stories.intro("none", "polarity", "polarity")  # KD told the world's nuisance
    assert "oracle" not in stories.intro("none", "shift", "cutmixpick")  # a strong augmentation, not the oracle
    assert stories.intro("none", "shift").startswith("Plain **knowledge distillation**")
