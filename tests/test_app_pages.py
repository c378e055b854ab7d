"""The Invariance inspector (and the Learn page's thread count), driven through Streamlit's AppTest (each
AppTest is its own session), plus the inspector's upload check. The explorer: tests/test_app_explorer.py."""
import io
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest


APP_DIR = Path(__file__).resolve().parents[1] / "app"
from lab import explore, inspection


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


# ---- explorer: tests/test_app_explorer.py -----------------------------------------------------


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
    bomb = io.BytesIO()
    Image.new("L", (6000, 6000)).save(bomb, "PNG")  # 36 MB decoded from a few KB: past the engine's cap
    cases[bomb.getvalue()] = "6000×6000 pixels; at most 33.6 megapixels"
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
