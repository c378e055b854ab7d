"""The Augmentation explorer and the Invariance inspector, driven through Streamlit's AppTest (each
AppTest is its own session), plus the inspector's upload check and the explorer's T. stddev ranking."""
import io
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from hard_core.config import RunConfig
from hard_core.runs import run_to_dir

APP_DIR = Path(__file__).resolve().parents[1] / "app"
from lab import explore, inspection


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    """A runs folder with two tiny finished HARD-affine runs, on digits and on MNIST-1D."""
    root = tmp_path_factory.mktemp("runs")
    run_to_dir(RunConfig(dataset="mnist5k", canvas=40, teacher="default", student="mlp", hard="affine", steps=20,
                         eval_every=20, suites="shift:6"), root / "hard-affine-20")
    run_to_dir(RunConfig(dataset="mnist1d", teacher="default", student="mlp", hard="affine", steps=20,
                         eval_every=20, suites="shift:8"), root / "hard-1d-20")
    return root


@pytest.fixture
def lab_env(runs_root, monkeypatch):
    monkeypatch.setenv("HARD_LAB_RUNS", str(runs_root))
    return runs_root


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(str(APP_DIR / "streamlit_app.py"), default_timeout=60).run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_lab_server_draws_with_one_torch_thread(lab_env):
    torch.set_num_threads(2)
    open_page("views/learn.py")
    seen = []  # in a new thread, as each page run of the server: torch applies the setting per thread
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert seen == [1]  # two would spin OpenMP threads on the core that trains the run


def png_bytes(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def digit_on_white(size=(90, 60)) -> Image.Image:
    """A dark stroke (a '1') on a white page, off-centre, as a phone photo of a digit would be."""
    img = Image.new("L", size, 255)
    img.paste(0, (10, 5, 18, 45))
    return img


# ---- explorer --------------------------------------------------------------------------------------

def test_explorer_shows_augmentations_and_switches(lab_env):
    at = open_page("views/explorer.py")
    assert at.title[0].value == "Augmentation explorer"
    assert "none" in at.get("image")[0].captions[0]
    at.selectbox(key="x_augmentation").set_value("cutmix").run()
    assert not at.exception and len(at.get("image")) == 1
    assert "middle: after cutmix · bottom: |x̃ − x|" in at.get("image")[0].captions[0]
    at.selectbox(key="x_augmentation").set_value("cutmixpick").run()
    caption = at.get("image")[0].captions[0]
    assert not at.exception and "freshly initialised mlp" in caption
    # one account of what the rows are, agreeing with the Learn page: the candidates the two disagree on most
    assert caption.startswith("top: the test image each candidate was cut from · middle: the 8 of 16 CutMix")
    assert "teacher and student disagree most" in caption and "clean test images" not in caption
    at.selectbox(key="x_dataset").set_value("mnist1d").run()  # 1D: line plots, no image-only augmentations
    assert not at.exception and len(at.get("image")) == 0
    assert "randaugment" not in at.selectbox(key="x_augmentation").options
    assert at.get("plotly_chart")  # the signals
    at.button(key="x_rank").click().run()  # 1D ranks in about a second (the 40x40 CNN takes ~30 s)
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    ranked = [c for c in charts if c["layout"]["uirevision"] == "tstddev"]
    assert not at.exception and len(ranked) == 1 and len(ranked[0]["data"][0]["y"]) == 5
    at.selectbox(key="x_augmentation").set_value("shift").run()  # the ranking stays on screen
    assert len([c for c in at.get("plotly_chart") if '"tstddev"' in c.proto.spec]) == 1


def test_explorer_lists_the_finished_hard_run(lab_env):
    at = open_page("views/explorer.py")
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
    at = open_page("views/explorer.py")
    at.selectbox(key="x_augmentation").set_value(explore.HARD).run()
    assert not at.exception and "No finished HARD run" in at.info[0].value and not at.get("image")


def test_rank_orders_by_tstddev_lowest_first_and_is_kept_per_teacher(tmp_path, monkeypatch):
    monkeypatch.setenv("HARD_LAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("HARD_CACHE", str(tmp_path / "cache"))
    ranking = explore.rank("mnist1d", batches=2, batch_size=16)
    names, scores = [n for n, _ in ranking], [s for _, s in ranking]
    assert scores == sorted(scores) and all(s > 0 for s in scores)
    assert set(names) == {"none", "shift", "mixup", "cutmix", "cutmixpick"}  # image-only ones left out
    [kept] = (tmp_path / "cache").glob("tstddev-*.json")
    assert json.loads(kept.read_text())["ranking"] == [[n, s] for n, s in ranking]

    def no_second_computation(*args, **kw):
        raise AssertionError("ranked again although the ranking was kept")

    monkeypatch.setattr(explore, "rank_augmentations", no_second_computation)
    assert explore.rank("mnist1d", batches=2, batch_size=16) == ranking  # read back
    with pytest.raises(AssertionError, match="ranked again"):  # other settings: another entry
        explore.rank("mnist1d", batches=3, batch_size=16)
    kept.write_text("{ half a file")  # a broken entry is computed again, not trusted
    with pytest.raises(AssertionError, match="ranked again"):
        explore.rank("mnist1d", batches=2, batch_size=16)


def test_shipped_rankings_belong_to_the_shipped_teachers():
    """A fresh clone ranks at once: each explorer data set's shipped teacher has its ranking next to it,
    computed for exactly these weights and the explorer's settings (a retrained teacher fails here until
    `docs/bench/explorer_ranking.py --ship` is run again)."""
    for label in explore.DATASETS:
        key = explore.ranking_key(explore.teacher(label), label, batches=20, batch_size=128, seed=0)
        shipped, cache = explore.kept_rankings(label, "default", key)
        kept = json.loads(shipped.read_text())
        assert kept["key"] == key and kept["batches"] == 20 and len(kept["ranking"]) >= 5, label
        assert cache.name == f"tstddev-{key}.json"


# ---- inspector -------------------------------------------------------------------------------------

def pick_run(at: AppTest, name: str) -> AppTest:
    box = at.selectbox(key="i_run")
    return box.set_value(next(o for o in box.options if o.startswith(name))).run()


def test_inspector_predicts_and_maps_a_test_image(lab_env):
    at = pick_run(open_page("views/inspector.py"), "hard-affine-20")
    assert [m.label for m in at.metric] == ["teacher", "student"]
    assert all("%" in m.value for m in at.metric)
    assert "test image 0, label 0" in at.get("image")[0].captions[0]
    at.slider(key="i_index").set_value(500).run()
    assert not at.exception and "label 5" in at.get("image")[0].captions[0]
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [t["type"] for t in chart["data"]] == ["heatmap", "heatmap"]
    assert [t["name"] for t in chart["data"]] == ["teacher", "student"]
    assert "KL(clean" in chart["layout"]["title"]["text"]
    assert at.radio(key="i_grid").options == ["shift"]  # a shift-world run's one grid (other worlds: their curve)


def test_inspector_on_a_1d_run_plots_lines_and_takes_no_upload(lab_env):
    at = pick_run(open_page("views/inspector.py"), "hard-1d-20")
    assert not at.exception and at.radio(key="i_source").disabled and len(at.metric) == 2
    assert any("uploads are for image runs" in c.value for c in at.caption) and not at.get("image")
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert [c["layout"]["uirevision"] for c in charts] == ["disagreement-1d", "invariance-shift-kl"]
    assert [t["name"] for t in charts[1]["data"]] == ["teacher", "student"] and len(charts[1]["data"][0]["x"]) == 17


def test_inspector_refuses_a_bad_upload_and_takes_a_good_one(lab_env):
    at = pick_run(open_page("views/inspector.py"), "hard-affine-20")
    at.radio(key="i_source").set_value("upload").run()
    # the uploader itself takes any file (its own refusal is a red chip with the reason in a tooltip), so
    # every refusal is the inspector's, in words, right under the uploader
    assert not list(at.file_uploader(key="i_upload").proto.type)
    at.file_uploader(key="i_upload").set_value(("notes.txt", b"hello, this is text\n", "text/plain")).run()
    assert [e.value for e in at.error] == ["Cannot use notes.txt: the file is not a readable PNG or JPEG image."]
    big = b"\x89PNG\r\n\x1a\n" + bytes(6 * 2**20)
    at.file_uploader(key="i_upload").set_value(("photo.png", big, "image/png")).run()
    assert [e.value for e in at.error] == ["Cannot use photo.png: the file is 6.0 MB; the limit is 2 MB."]
    at.file_uploader(key="i_upload").set_value(("digit.png", b"not an image at all", "image/png")).run()
    assert not at.exception and len(at.error) == 1
    assert at.error[0].value == "Cannot use digit.png: the file is not a readable PNG or JPEG image."
    assert not at.metric
    at.file_uploader(key="i_upload").set_value(("digit.png", png_bytes(digit_on_white()), "image/png")).run()
    assert not at.exception and not at.error and len(at.metric) == 2
    assert "inverted" in at.get("image")[0].captions[0]


# ---- upload validation -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def canvas40():
    return explore.dataset("mnist5k · canvas 40")


def test_read_upload_refusals(canvas40):
    cases = {b"hello, this is text\n": "not a readable PNG or JPEG",
             png_bytes(digit_on_white())[:40]: "not a readable PNG or JPEG",  # truncated
             b"\x89PNG\r\n\x1a\n" + bytes(3 * 2**20): "the limit is 2 MB",
             png_bytes(digit_on_white(), "GIF"): "GIF, not PNG or JPEG",
             b"": "empty"}
    for data, message in cases.items():
        with pytest.raises(inspection.UploadError, match=message):
            inspection.read_upload(data, canvas40)
    with pytest.raises(inspection.UploadError, match="1D signals"):
        inspection.read_upload(png_bytes(digit_on_white()), explore.dataset("mnist1d"))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_read_upload_fits_the_digit_onto_the_canvas(canvas40, fmt):
    x, note = inspection.read_upload(png_bytes(digit_on_white(), fmt), canvas40)
    assert x.shape == (1, 1, 40, 40) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert "inverted" in note  # dark ink on white -> light ink on black, as the digits are
    ink = (x[0, 0] > 0.5).nonzero().float()
    assert len(ink) > 10 and (ink.max(0).values - ink.min(0).values).max() <= 20  # MNIST's 20 px box
    assert np.allclose(ink.mean(0).numpy(), [19.5, 19.5], atol=1.5)  # centred, though drawn off-centre
    assert x[0, 0, :5].max() < 0.05 and x[0, 0, :, :5].max() < 0.05  # black border


def test_read_upload_colour_image_on_a_colour_run():
    rgb = Image.new("RGB", (64, 32), (200, 30, 30))
    ds = type("DS", (), {"is_1d": False, "input_shape": (3, 32, 32), "info": {}})()
    x, note = inspection.read_upload(png_bytes(rgb), ds)
    assert x.shape == (1, 3, 32, 32) and "inverted" not in note
    assert x[0, 0, 16, 16] > 0.7 and x[0, 1, 16, 16] < 0.2 and x[0, :, 2, 16].max() == 0  # letterboxed
