"""Invariance for every world (issue 23, item 3): each world's own curve beside the shift grid, through
the probes, a run's snapshots, the Live page's headline and the inspector; and the upload limit stated once."""
import json
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from hard_core.assets import shipped_teacher
from hard_core.checkpoint import load_model
from hard_core.config import RunConfig
from hard_core.data import load_dataset
from hard_core.data.nuisance import invert, thicken
from hard_core.probes import InvarianceProbe
from hard_core.probes.invariance import rotate_scale
from hard_core.probes.live import RunProbe, probe_grid, run_grids
from hard_core.runs import RunReader, run_to_dir

from lab import headline, inspection

APP_DIR = Path(__file__).resolve().parents[1] / "app"


@pytest.fixture(scope="module")
def digits():
    return load_dataset("mnist5k", canvas=40)


def test_each_world_is_probed_on_its_own_curve_and_shift(digits):
    """The world's own grid first, then shift; a teacher of one's own gets the generic curves; 1D: shift."""
    assert list(run_grids(digits)) == ["shift"]  # the default run pays for one grid only
    assert list(run_grids(digits, "rotation")) == ["rotation", "shift"]
    assert list(run_grids(digits, "polarity")) == ["polarity", "shift"]
    assert list(run_grids(digits, "thickness")) == ["thickness", "shift"]
    assert list(run_grids(digits, "scarce")) == ["shift"]  # its measure is in-domain accuracy
    assert list(run_grids(digits, "shift", "runs/my-teacher")) == ["shift", "rotation", "polarity"]
    assert list(run_grids(digits, "thickness", "python:Net")) == ["thickness", "shift", "rotation", "polarity"]
    assert list(run_grids(load_dataset("mnist1d"), "shift", "runs/mine")) == ["shift"]
    assert [headline.grid_for({"world": w}) for w in ("shift", "rotation", "polarity", "thickness", "scarce", "?")] \
        == ["shift", "rotation", "polarity", "thickness", "shift", "shift"]


def test_curves_apply_the_worlds_own_nuisance(digits):
    """Cell-major images: blend 0 is x and blend 1 exactly the polarity world's inversion (0.5: flat grey);
    thickness cells are the thickness suite's `thicken`; the rotation curve holds the identity at 0."""
    x = digits.test.x[:3]
    blend = probe_grid("polarity", digits)
    assert blend.shape == (9,) and blend.axes[0][0] == 0 and blend.axes[0][-1] == 1
    out = blend.apply(x, range(9)).view(9, *x.shape)
    assert torch.equal(out[0], x) and torch.equal(out[8], invert(x, torch.ones(3, dtype=torch.bool)))
    assert torch.allclose(out[4], torch.full_like(x, 0.5))
    thick = probe_grid("thickness", digits)
    assert thick.axes[0].tolist() == [-1, 0, 1, 2]
    out = thick.apply(x, range(4)).view(4, *x.shape)
    assert all(torch.equal(out[i], thicken(x, r)) for i, r in enumerate([-1, 0, 1, 2]))
    turn = probe_grid("rotation", digits)
    assert turn.axes[0].tolist() == list(range(-90, 91, 15))
    out = turn.apply(x, range(len(turn))).view(len(turn), *x.shape)
    assert torch.allclose(out[6], x, atol=1e-6)
    assert torch.allclose(out[-1], rotate_scale(x, torch.full((3,), 90.0), torch.ones(3)))


def test_the_worlds_teachers_hold_their_own_nuisance_and_the_shift_teacher_does_not(digits):
    """The shipped polarity teacher reads inverted digits (blend 1), the shift teacher collapses from blend
    0.5 on; the rotation teacher reads 45 degrees, the thickness teacher thinner strokes."""
    def curve(world, kind):
        probe = InvarianceProbe(digits.test.x, digits.test.y, probe_grid(kind, digits), images=64)
        return probe(load_model(shipped_teacher("mnist5k", 40, world)))["acc"]

    shift_teacher, polarity_teacher = curve("", "polarity"), curve("polarity", "polarity")
    assert polarity_teacher[0] > 0.9 and polarity_teacher[-1] > 0.9 and polarity_teacher[4] < 0.3  # 0.5: grey
    assert shift_teacher[0] > 0.9 and shift_teacher[4:].max() < 0.3
    rotated = {w: curve(w, "rotation") for w in ("", "rotation")}  # cells 3 and 9: -45 and +45 degrees
    assert min(rotated["rotation"][3], rotated["rotation"][9]) > 0.9 > 0.6 > max(rotated[""][3], rotated[""][9])
    assert curve("thickness", "thickness")[0] > 0.8 > 0.4 > curve("", "thickness")[0]  # one pixel thinner


@pytest.fixture(scope="module")
def polarity_runs(tmp_path_factory):
    """A finished 20-step plain-KD run of the polarity world, probed at its last step."""
    root = tmp_path_factory.mktemp("worlds")
    run_to_dir(RunConfig(dataset="mnist5k", canvas=40, world="polarity", teacher="default", student="mlp",
                         steps=20, eval_every=20, probe_every=20, suites="polarity:1", device="cpu"),
               root / "kd-polarity-20")
    return root


def last_probe(run_dir):
    reader = RunReader(run_dir)
    snaps = [e for e in reader.poll() if e["kind"] == "snapshot"]
    return {**reader.snapshot(snaps[-1]), "_step": snaps[-1]["step"]}


def test_a_polarity_runs_headline_is_the_polarity_curve_not_the_shift_grid(polarity_runs):
    """The snapshot carries the blend curve and the shift grid; the headline draws the curve: three lines
    (teacher dashed), accuracy 0..1 against the blend, and says which model has no curve yet."""
    snap = last_probe(polarity_runs / "kd-polarity-20")
    assert snap["invariance.polarity.teacher.acc"].shape == (9,) == snap["invariance.polarity.student.kl"].shape
    assert snap["invariance.polarity.axis.blend"].tolist()[::4] == [0, 0.5, 1]
    assert snap["invariance.shift.student.acc"].shape == (7, 7)
    cfg = RunReader(polarity_runs / "kd-polarity-20").config()  # as the Live page reads it
    grid = headline.grid_for(cfg)
    fig = headline.maps_figure(snap, snap, grid, "KD student", cfg["world"])
    assert grid == "polarity" and [t.type for t in fig.data] == ["scatter"] * 3
    assert [t.name for t in fig.data] == ["teacher", "KD student (twin)", "KD student"]
    assert fig.data[0].line.dash == "dash" and list(fig.data[0].x) == [i / 8 for i in range(9)]
    assert "1 − x" in fig.layout.xaxis.title.text and tuple(fig.layout.yaxis.range) == (0, 1.02)
    assert "shift" not in fig.layout.title.text
    assert fig.data[0].y[-1] > 0.9  # the polarity teacher reads inverted digits
    alone = headline.maps_figure(snap, None, grid, "KD student", cfg["world"])
    assert [a.text for a in alone.layout.annotations] == ["no curve yet: KD student (twin)"]
    scarce = headline.maps_figure(snap, None, "shift", "KD student", "scarce")
    assert "in-domain test accuracy" in scarce.layout.title.text and scarce.data[0].type == "heatmap"
    older = {k: v for k, v in snap.items() if ".polarity." not in k}  # probed before the world had its curve
    assert "shift grid" in headline.maps_figure(older, None, grid, "KD student", "polarity").layout.title.text
    line = {"invariance.shift.axis.shift": torch.arange(-8, 9.0)}  # a 1D run: its shift is a curve too
    line |= {f"invariance.shift.{m}.acc": torch.rand(17) for m in ("teacher", "student")}
    fig = headline.maps_figure(line, line, "shift", "HARD student")
    assert [t.type for t in fig.data] == ["scatter"] * 3 and "samples" in fig.layout.xaxis.title.text


def test_the_inspector_offers_the_worlds_curve_first(polarity_runs, monkeypatch):
    monkeypatch.setenv("HARD_LAB_RUNS", str(polarity_runs))
    at = AppTest.from_file(str(APP_DIR / "streamlit_app.py"), default_timeout=60).run()
    at.switch_page("views/inspector.py").run()
    assert not at.exception, [e.value for e in at.exception]
    radio = at.radio(key="i_grid")
    assert radio.options == ["polarity blend", "shift"] and radio.value == "polarity"
    chart = json.loads(at.get("plotly_chart")[-1].proto.spec)
    assert [t["name"] for t in chart["data"]] == ["teacher", "student"] and len(chart["data"][0]["x"]) == 9
    assert "blend" in chart["layout"]["xaxis"]["title"]["text"]
    radio.set_value("shift").run()
    chart = json.loads(at.get("plotly_chart")[-1].proto.spec)
    assert not at.exception and [t["type"] for t in chart["data"]] == ["heatmap", "heatmap"]
    # the upload limit: one number, in the label; the widget's own (larger, transport) line is hidden
    at.radio(key="i_source").set_value("upload").run()
    label = at.get("file_uploader")[0].proto.label
    assert label.count("MB") == 1 and f"at most {inspection.MAX_UPLOAD_MB} MB" in label
    assert any("stFileUploaderDropzoneInstructions" in str(h.proto) for h in at.get("html"))


def test_run_probe_cost_grows_only_with_the_worlds_curve(digits):
    """A curve is a handful of cells next to the shift grid's 49 (what keeps the default run's probe cheap)."""
    cells = {w: sum(len(g) for g in run_grids(digits, w).values()) for w in ("shift", "rotation", "polarity")}
    assert cells == {"shift": 49, "rotation": 49 + 13, "polarity": 49 + 9}
    probe = RunProbe(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(1600, 10)), digits, "cpu", images=4,
                     grids=run_grids(digits, "thickness"))
    out = probe(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(1600, 10)), digits.test.x[:2], 4.0)
    assert out["invariance.thickness.axis.thickness"].tolist() == [-1, 0, 1, 2]
    assert list(dict.fromkeys(k.split(".")[1] for k in out if k.startswith("invariance."))) == ["thickness", "shift"]
