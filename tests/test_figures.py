"""The lab's composed images (lab.images) and plotly figures (lab.figures), on synthetic events and
snapshots shaped like the engine's (see hard_core/train/loop.py `_snapshot`, hard_core/probes/live.py)."""

import numpy as np
import pytest
import torch

from hard_core.augment.hard import build_augmentor
from hard_core.worlds import WORLDS
from lab import augmentor, figures, images


def tile_centre(img, row, col, side, scale=3, pad=2):
    """RGB of the centre pixel of tile (row, col) in an image_grid of side x side images."""
    step = side * scale + pad
    return np.asarray(img)[pad + row * step + side * scale // 2, pad + col * step + side * scale // 2]


# ---- images ----------------------------------------------------------------------------------------

def test_image_grid_size_and_nearest_upscaling():
    x = torch.zeros(16, 1, 40, 40, dtype=torch.uint8)
    x[0, 0, 5, 7] = 255
    img = images.image_grid(x, nrow=8, scale=3, pad=2)
    assert img.size == (8 * 120 + 9 * 2, 2 * 120 + 3 * 2) and img.mode == "RGB"
    a = np.asarray(img)
    assert (a[2 + 15:2 + 18, 2 + 21:2 + 24] == 255).all()  # one pixel -> a sharp 3x3 block
    assert a[2 + 14, 2 + 21].max() == 0 and a[2 + 18, 2 + 21].max() == 0


def test_image_grid_float_and_colour_match_uint8():
    torch.manual_seed(0)
    x = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    a, b = images.image_grid(x, nrow=3), images.image_grid(x.float() / 255, nrow=3)
    assert a.size == b.size == (3 * 24 + 4 * 2, 2 * 24 + 3 * 2)
    assert np.abs(np.asarray(a).astype(int) - np.asarray(b).astype(int)).max() <= 1
    with pytest.raises(ValueError):
        images.image_grid(torch.zeros(4, 1, 40))  # 1D signals are plotted, not tiled


def test_gallery_rows_clean_augmented_and_change():
    clean = torch.stack([torch.full((1, 10, 10), 10 + i, dtype=torch.uint8) for i in range(16)])
    augmented = torch.stack([torch.full((1, 10, 10), 200 + i, dtype=torch.uint8) for i in range(16)])
    augmented[3] = clean[3]  # one image the augmentation left alone
    img = images.gallery({"clean": clean, "augmented": augmented}, n=8)
    assert img.size == (8 * 30 + 9 * 2, 3 * 30 + 4 * 2 + images.BAR_HEIGHT)  # three rows, then the colour bar
    for j in range(8):
        assert tile_centre(img, 0, j, 10)[0] == 10 + j
        if j != 3:
            assert tile_centre(img, 1, j, 10)[0] == 200 + j
    changed, untouched = tile_centre(img, 2, 0, 10), tile_centre(img, 2, 3, 10)
    expected = (images.colormap(torch.tensor(190 / 255)) * 255).round().numpy()
    assert np.abs(changed.astype(int) - expected).max() <= 1  # |x̃ - x| on the inferno scale
    assert untouched.max() <= 5  # no change: inferno's black
    twelve = images.gallery({"clean": clean, "augmented": augmented}, n=12)  # two blocks of three rows
    assert twelve.size == (8 * 30 + 9 * 2, 6 * 30 + 7 * 2 + images.BAR_HEIGHT)
    assert [tile_centre(twelve, r, 1, 10)[0] for r in (0, 1, 3, 4)] == [11, 201, 19, 209]
    plain = images.gallery({"clean": clean, "augmented": augmented}, n=8, change=False)
    assert plain.size == (8 * 30 + 9 * 2, 2 * 30 + 3 * 2)


def test_overlay_colours_the_top_share_on_one_scale_with_a_colour_bar():
    x = torch.full((2, 1, 20, 20), 0.5)
    heat = torch.zeros(2, 20, 20)
    heat[0, 10, 10] = 3.0  # one hot pixel in image 0; image 1 has no disagreement at all
    img = images.overlay(x, heat, nrow=2)
    grid = images.image_grid(x, nrow=2)
    assert img.size == (grid.width, grid.height + images.BAR_HEIGHT)
    a = np.asarray(img)
    hot, cold, other = tile_centre(img, 0, 0, 20), a[2 + 1, 2 + 1], tile_centre(img, 0, 1, 20)
    assert hot[0] > hot[2] + 40  # inferno's warm end, not grey
    assert (cold == 128).all() and (other == 128).all()  # no disagreement: the plain grey image
    near = a[2 + 11 * 3 + 1, 2 + 10 * 3 + 1]  # the pixel below the hot one: smoothed, so it is coloured too
    assert not (near[0] == near[1] == near[2])
    bar = a[grid.height + 8]  # a row through the colour bar: dark purple on the left, pale yellow on the right
    coloured = bar[(bar != 255).any(1)]
    assert coloured[0].sum() < coloured[-1].sum() and coloured[-1][0] > 200
    # one scale for the whole grid: a weak map stays faint next to a strong one (no per-image stretch)
    strong = torch.zeros(2, 20, 20)
    strong[0, 4:8, 4:8], strong[1, 4:8, 4:8] = 10.0, 1.0
    two = np.asarray(images.overlay(x, strong, nrow=2))
    loud, faint = two[2 + 6 * 3, 2 + 6 * 3], two[2 + 6 * 3, 2 + 60 + 2 + 6 * 3]
    assert int(loud[0]) > int(faint[0])
    _, floor, peak = images.evidence(strong)
    assert 0 <= floor < peak
    rgb = torch.rand(3, 3, 9, 9)
    assert images.overlay(rgb, torch.rand(3, 9, 9), with_images=True, nrow=6).width == \
        images.image_grid(torch.rand(6, 3, 9, 9), nrow=6).width
    with pytest.raises(ValueError):
        images.overlay(x, torch.zeros(2, 10, 10))


def test_colormap_runs_dark_to_bright():
    c = images.colormap(torch.linspace(0, 1, 11))
    assert c.shape == (11, 3) and c.sum(1).diff().min() > -0.05 and c[0].sum() < 0.1 and c[-1].sum() > 2.5


# ---- figures ---------------------------------------------------------------------------------------

def step_events(n, hard=True):
    extra = lambda i: {"disagreement": 1.0 / i, "consistency": 0.1} if hard else {}  # noqa: E731
    return [{"kind": "step", "step": i, "loss": 2.0 / i, "lr": 1e-3, "temperature": 4.0, "alpha": 1.0,
             "steps_per_s": 10.0, "elapsed_s": i / 10, "extra": extra(i)} for i in range(1, n + 1)]


def assert_framed(fig):
    assert fig.layout.title.text and fig.layout.uirevision and fig.layout.height <= 420


def test_loss_figure_hard_terms_and_downsampling():
    fig = figures.loss_figure(step_events(1200))
    assert [t.name for t in fig.data] == ["student loss (KD)", "disagreement", "consistency"]
    assert all(len(t.x) <= figures.MAX_POINTS for t in fig.data)
    assert fig.data[0].x[0] == 1 and fig.data[0].x[-1] == 1200
    assert fig.data[1].yaxis == "y2" and fig.layout.xaxis.title.text == "step"
    assert fig.layout.legend.y >= 1 and fig.layout.yaxis2.side == "right"  # legend above: off the right axis
    assert_framed(fig)
    plain = figures.loss_figure(step_events(30, hard=False) + [{"kind": "status", "step": 30}])
    assert [t.name for t in plain.data] == ["student loss (KD)"] and len(plain.data[0].x) == 30


def accuracy_events(finished=False):
    suites = ("test", "shift", "rotation", "noise")
    events = [{"kind": "eval", "step": 100, "model": "teacher", "acc": dict(zip(suites, (0.96, 0.95, 0.7, 0.9))),
               "agree": {}}]
    events += [{"kind": "eval", "step": s, "model": "student", "agree": {},
                "acc": {"shift": s / 1000, "test": 0.5 + s / 1000, "rotation": 0.2, "noise": 0.4}} for s in (100, 200, 300)]
    return events + ([{"kind": "status", "step": 300, "state": "finished"}] if finished else [])


def test_accuracy_figure_focuses_on_test_and_the_world_suite():
    fig = figures.accuracy_figure(accuracy_events(), focus="shift")
    student = {t.name: t for t in fig.data if not t.name.startswith("teacher")}
    teacher = {t.name: t for t in fig.data if t.name.startswith("teacher")}
    assert list(student) == ["shift", "test", "rotation", "noise"]  # the story's suite first
    assert student["shift"].visible is True and student["test"].visible is True
    assert student["rotation"].visible == student["noise"].visible == "legendonly"  # one click away
    assert teacher["teacher · rotation"].visible == "legendonly" and not teacher["teacher · shift"].showlegend
    assert teacher["teacher · shift"].legendgroup == "shift"  # one legend entry toggles both lines
    assert student["shift"].line.width > student["test"].line.width  # the student · world line stands out
    assert len({t.line.color for t in student.values()}) == 4  # distinct colours
    assert list(student["shift"].y) == [0.1, 0.2, 0.3] and list(teacher["teacher · shift"].y) == [0.95, 0.95]
    assert teacher["teacher · test"].line.dash == "dash"
    assert list(student["shift"].text) == ["", "", "30%"]  # the latest number at the end of the line
    assert list(teacher["teacher · shift"].text) == ["", "teacher 95%"]  # the level the story aims at
    assert list(teacher["teacher · test"].text) == ["", ""]  # one teacher label: they would overlap
    assert fig.layout.legend.x >= 1 and fig.layout.legend.xanchor == "left"  # beside the plot, not over it
    assert "Final" not in fig.layout.title.text
    assert_framed(fig)
    done = figures.accuracy_figure(accuracy_events(finished=True), focus="shift")
    assert done.layout.title.text == "Final accuracy at step 300: shift 30%, test 80%"
    everything = figures.accuracy_figure(accuracy_events(), focus="rotation", show=["test", "rotation", "noise"])
    assert [t.visible for t in everything.data if t.name == "shift"] == ["legendonly"]
    assert figures.world_suite({"world": "polarity"}) == "polarity" and figures.world_suite({}) == "shift"
    assert figures.world_suite({"world": "scarce"}) == "test"


def test_charts_without_points_are_none_for_the_page_to_say_what_they_wait_for():
    assert figures.accuracy_figure(accuracy_events()[:1]) is None  # the teacher's evaluation alone
    assert figures.loss_figure([]) is None
    assert figures.accuracy_figure(accuracy_events()[:2]) is not None


def test_loss_axis_goes_logarithmic_over_decades():
    steep = [{**e, "loss": 50.0 / e["step"] ** 2} for e in step_events(100, hard=False)]
    assert figures.loss_figure(steep).layout.yaxis.type == "log"
    flat = [{**e, "loss": 2.0 + 1 / e["step"]} for e in step_events(100, hard=False)]
    fig = figures.loss_figure(flat)
    assert fig.layout.yaxis.type == "linear" and fig.layout.yaxis.tickformat


def invariance_snapshot(one_d=False):
    g = torch.Generator().manual_seed(0)
    if one_d:
        snap = {"invariance.shift.axis.shift": torch.arange(-8, 9).float()}
        shape = (17,)
    else:
        snap = {"invariance.shift.axis.dy": torch.arange(-6, 7, 2).float(),
                "invariance.shift.axis.dx": torch.arange(-6, 7, 2).float()}
        shape = (7, 7)
    for model in ("teacher", "student"):
        snap[f"invariance.shift.{model}.acc"] = torch.rand(shape, generator=g)
        snap[f"invariance.shift.{model}.kl"] = 3 * torch.rand(shape, generator=g)
    return snap


def test_invariance_figure_heatmaps_side_by_side():
    snap = invariance_snapshot()
    fig = figures.invariance_figure(snap, "shift", "acc")
    teacher, student = fig.data
    assert teacher.type == student.type == "heatmap" and (teacher.xaxis, student.xaxis) == ("x", "x2")
    assert np.allclose(teacher.z, snap["invariance.shift.teacher.acc"].numpy())
    assert np.allclose(student.z, snap["invariance.shift.student.acc"].numpy())
    assert list(teacher.x) == [-6, -4, -2, 0, 2, 4, 6]
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (0, 1)
    assert "dx" in fig.layout.xaxis.title.text and "dy" in fig.layout.yaxis.title.text
    assert "accuracy" in fig.layout.coloraxis.colorbar.title.text
    kl = figures.invariance_figure(snap, "shift", "kl")
    tiny = {k: v / 100 if k.endswith(".kl") else v for k, v in snap.items()}  # a near-invariant pair of models
    for f in (kl, figures.invariance_figure(tiny, "shift", "kl")):  # one fixed scale, not the maps' maximum
        assert (f.layout.coloraxis.cmin, f.layout.coloraxis.cmax) == (0, figures.KL_TOP)
        assert "nats" in f.layout.coloraxis.colorbar.title.text and f.data[0].coloraxis == f.data[1].coloraxis
    assert_framed(fig)
    assert figures.invariance_figure(snap, "rotation-scale", "acc") is None
    assert figures.invariance_figure({}, "shift") is None


def test_invariance_figure_1d_is_two_lines():
    fig = figures.invariance_figure(invariance_snapshot(one_d=True), "shift", "acc")
    assert [(t.type, t.name) for t in fig.data] == [("scatter", "teacher"), ("scatter", "student")]
    assert list(fig.data[0].x)[:2] == [-8, -7] and "shift" in fig.layout.xaxis.title.text


def test_invariance_figure_draws_a_worlds_curve_with_its_units():
    """The polarity and thickness grids are curves: two lines against the nuisance's strength, titled in words."""
    for grid, axis, values, unit in (("polarity", "blend", torch.linspace(0, 1, 9), "1 − x"),
                                     ("thickness", "thickness", torch.arange(-1, 3.0), "pixels")):
        snap = {f"invariance.{grid}.axis.{axis}": values}
        snap |= {f"invariance.{grid}.{m}.{k}": torch.rand(len(values))
                 for m in ("teacher", "student") for k in ("acc", "kl")}
        fig = figures.invariance_figure(snap, grid, "acc")
        assert [t.type for t in fig.data] == ["scatter", "scatter"] and list(fig.data[0].x) == values.tolist()
        assert unit in fig.layout.xaxis.title.text and figures.GRID_NAMES[grid] in fig.layout.title.text
        assert tuple(fig.layout.yaxis.range) == (0, 1.02)
    assert figures.invariance_figure(snap, "thickness", "kl").layout.title.text.startswith("KL(clean")


def hard_steps(values):
    return [{**e, "extra": {**e["extra"], "hardness": v}} for e, v in zip(step_events(len(values)), values)]


def test_hardness_figure_and_reading():
    events = [{**e, "step": 10 * e["step"]} for e in hard_steps([1.0 + i / 100 for i in range(1, 301)])]
    fig = augmentor.hardness_figure(events)
    assert [t.name for t in fig.data] == ["hardness"] and len(fig.data[0].x) <= figures.MAX_POINTS
    assert fig.data[0].y[-1] == 4.0 and sorted(s.y0 for s in fig.layout.shapes) == [1.0, augmentor.HARDNESS_FOUND]
    assert "found where the student fails" in fig.layout.title.text
    assert_framed(fig)
    assert augmentor.hardness_figure(step_events(30, hard=False)) is None
    assert augmentor.hardness_reading(step_events(30, hard=False)) is None
    found = augmentor.hardness_reading(events)
    assert found["found"] is True and found["value"] == pytest.approx(3.99) and "3.99" in found["text"]
    flat = [{**e, "step": 10 * e["step"]} for e in hard_steps([1.05] * 30)]
    nothing = augmentor.hardness_reading(flat)
    assert nothing["found"] is False and "found nothing" in nothing["text"]
    assert "found nothing" in augmentor.hardness_figure(flat).layout.title.text
    early = augmentor.hardness_reading(hard_steps([1.05] * 5))  # step 5: still warming up
    assert early["found"] is None and "warming up" in early["text"]


def test_params_figure_per_augmentor_with_units_and_references():
    g = torch.Generator().manual_seed(0)
    affine = {"param.tx": torch.randn(64, generator=g), "param.ty": torch.randn(64, generator=g),
              "param.rotate": 10 * torch.randn(64, generator=g), "clean": torch.zeros(16, 1, 40, 40)}
    fig = augmentor.params_figure(affine)
    assert [t.type for t in fig.data] == ["scatter", "histogram"]
    assert np.allclose(fig.data[0].x, affine["param.tx"].numpy()) and "pixels" in fig.layout.xaxis.title.text
    assert "64 samples" in fig.layout.title.text
    box = fig.layout.shapes[0]  # the default translate bound: 15% of 40 px
    assert (box.x0, box.x1) == (-6, 6) and tuple(fig.layout.xaxis.range) == pytest.approx((-6.9, 6.9))
    bounded = augmentor.params_figure(affine, {"affine": "translate:4,rotate:20"})
    assert bounded.layout.shapes[0].x1 == 4 and {s.x0 for s in bounded.layout.shapes[1:]} == {-20, 20}
    assert "±20" in bounded.layout.xaxis2.title.text and "degrees" in bounded.layout.xaxis2.title.text
    mix = augmentor.params_figure({"param.weight": 0.2 * torch.rand(16), "param.partner": torch.arange(16).float()})
    assert [t.name for t in mix.data] == ["weight"]  # the partner index is not histogrammed
    assert {s.x0 for s in mix.layout.shapes} == {0.0, 1.0} and mix.layout.xaxis.range[1] >= 1.0  # its maximum
    vae = {"param.latent_norm": torch.rand(8), "param.pixel_change": torch.rand(8) / 10,
           "clean": torch.full((8, 1, 40, 40), 51, dtype=torch.uint8)}
    fig = augmentor.params_figure(vae, {"hard": "vae", "world": "thickness", "vae": "default"})
    assert sorted(t.name for t in fig.data) == ["latent_norm", "pixel_change"]
    eps, size = augmentor.vae_latent({"hard": "vae", "world": "thickness"})
    assert 0.1 < eps < 10 and size == 400  # the shipped VAE: a 4 x 10 x 10 latent
    shipped = build_augmentor("vae", input_shape=(1, 40, 40), vae=WORLDS["thickness"].vae)
    assert eps == pytest.approx(shipped.eps)  # the bound the run's augmentor really has
    lines = sorted(s.x0 for s in fig.layout.shapes)
    assert lines == pytest.approx(sorted([0.2, eps * 20]))  # a clean image's brightness; the largest edit
    assert augmentor.vae_latent({"hard": "vae", "vae": "some/folder"}) is None
    assert augmentor.params_figure({"clean": torch.zeros(2, 1, 4, 4)}) is None


def test_signal_figures_1d():
    clean = torch.randint(0, 256, (16, 1, 40), dtype=torch.uint8)
    snap = {"clean": clean, "augmented": clean.flip(-1), "label": torch.arange(16) % 10,
            "disagreement": torch.rand(16, 40) * 7}
    fig = figures.signals_figure(snap, n=4)
    assert len(fig.data) == 8 and [t.name for t in fig.data[:2]] == ["clean", "augmented"]
    assert np.allclose(fig.data[0].y, clean[0, 0].float().numpy() / 255)
    assert fig.data[2].xaxis == "x2" and sum(t.showlegend for t in fig.data) == 2
    dis = figures.disagreement_1d_figure(snap, n=3)
    heat = [t for t in dis.data if t.name == "disagreement"]
    assert len(heat) == 3 and all(max(t.y) == pytest.approx(1.0) for t in heat)
    assert_framed(fig)
    assert_framed(dis)


def test_temperature_and_tstddev_figures():
    logits = [0.5, 4.0, 0.2, 9.0]
    cold, warm = figures.temperature_figure(logits, 1.0).data[1].y, figures.temperature_figure(logits, 8.0).data[1].y
    axis = figures.temperature_figure(logits, 4.0).layout.xaxis
    assert axis.type == "category" and list(axis.tickvals) == ["0", "1", "2", "3"]  # every class labelled
    assert sum(warm) == pytest.approx(1.0) and max(warm) < max(cold) and np.argmax(warm) == 3
    with pytest.raises(ValueError):
        figures.softmax(logits, 0)
    fig = figures.tstddev_figure([("cutout", 0.02), ("none", 0.03), ("mixup", 0.05)])
    assert list(fig.data[0].y) == ["cutout", "none", "mixup"]
    assert fig.data[0].marker.color[0] != fig.data[0].marker.color[1]  # the best one stands out


def test_latest_and_downsample():
    events = [{"kind": "eval", "model": m, "step": s} for s in (1, 2) for m in ("teacher", "student")]
    assert figures.latest(events, "eval", model="teacher")["step"] == 2 and figures.latest(events, "step") is None
    thin = figures.downsample(list(range(10_001)), cap=500)
    assert len(thin) <= 500 and thin[0] == 0 and thin[-1] == 10_000 and thin == sorted(thin)
