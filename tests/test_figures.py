"""The lab's composed images (lab.images) and plotly figures (lab.figures), on synthetic events and
snapshots shaped like the engine's (see hard_core/train/loop.py `_snapshot`, hard_core/probes/live.py)."""

import numpy as np
import pytest
import torch

from lab import figures, images


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


def test_gallery_puts_each_augmented_image_below_its_clean_one():
    clean = torch.stack([torch.full((1, 10, 10), 10 + i, dtype=torch.uint8) for i in range(16)])
    augmented = torch.stack([torch.full((1, 10, 10), 200 + i, dtype=torch.uint8) for i in range(16)])
    img = images.gallery({"clean": clean, "augmented": augmented}, n=8)
    assert img.size == (8 * 30 + 9 * 2, 2 * 30 + 3 * 2)
    for j in range(8):
        assert tile_centre(img, 0, j, 10)[0] == 10 + j
        assert tile_centre(img, 1, j, 10)[0] == 200 + j
    twelve = images.gallery({"clean": clean, "augmented": augmented}, n=12)  # two blocks of pairs
    assert twelve.size == (8 * 30 + 9 * 2, 4 * 30 + 5 * 2)
    assert [tile_centre(twelve, r, 1, 10)[0] for r in range(4)] == [11, 201, 19, 209]


def test_overlay_colours_only_where_the_models_disagree():
    x = torch.full((2, 1, 12, 12), 0.5)
    heat = torch.zeros(2, 12, 12)
    heat[0, 6, 6] = 3.0  # one hot pixel in image 0; image 1 has no disagreement at all
    img = images.overlay(x, heat, nrow=2)
    assert img.size == images.image_grid(x, nrow=2).size
    hot, cold, other = tile_centre(img, 0, 0, 12), np.asarray(img)[2 + 1, 2 + 1], tile_centre(img, 0, 1, 12)
    assert hot[0] > hot[2] + 40  # inferno's hot end: warm, not grey
    assert cold[0] == cold[1] == cold[2] == 128 and other[0] == other[1] == other[2] == 128
    rgb = torch.rand(3, 3, 9, 9)
    assert images.overlay(rgb, torch.rand(3, 9, 9), with_images=True, nrow=6).size == \
        images.image_grid(torch.rand(6, 3, 9, 9), nrow=6).size
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
    assert [t.name for t in fig.data] == ["student loss (KD)", "disagreement (augmentor)", "consistency (teacher)"]
    assert all(len(t.x) <= figures.MAX_POINTS for t in fig.data)
    assert fig.data[0].x[0] == 1 and fig.data[0].x[-1] == 1200
    assert fig.data[1].yaxis == "y2" and fig.layout.xaxis.title.text == "step"
    assert_framed(fig)
    plain = figures.loss_figure(step_events(30, hard=False) + [{"kind": "status", "step": 30}])
    assert [t.name for t in plain.data] == ["student loss (KD)"] and len(plain.data[0].x) == 30
    empty = figures.loss_figure([])
    assert len(empty.data) == 0 and empty.layout.title.text == "Loss"


def test_accuracy_figure_student_lines_and_teacher_references():
    events = [{"kind": "eval", "step": 100, "model": "teacher", "acc": {"test": 0.96, "shift": 0.95}, "agree": {}}]
    events += [{"kind": "eval", "step": s, "model": "student", "acc": {"shift": s / 1000, "test": 0.5 + s / 1000},
                "agree": {}} for s in (100, 200, 300)]
    fig = figures.accuracy_figure(events)
    names = [t.name for t in fig.data]
    assert names == ["student · test", "teacher · test", "student · shift", "teacher · shift"]
    student_test, teacher_test, student_shift, teacher_shift = fig.data
    assert student_test.line.width > student_shift.line.width  # test in bold
    assert list(student_shift.y) == [0.1, 0.2, 0.3] and list(teacher_shift.y) == [0.95, 0.95]
    assert teacher_test.line.dash == "dash" and teacher_test.line.color == student_test.line.color
    assert_framed(fig)
    assert len(figures.accuracy_figure(events[:1]).data) == 0  # no student evaluation yet


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
    kl = figures.invariance_figure(snap, "shift", "kl")
    top = max(snap["invariance.shift.teacher.kl"].max(), snap["invariance.shift.student.kl"].max())
    assert kl.layout.coloraxis.cmax == pytest.approx(float(top))
    assert_framed(fig)
    assert figures.invariance_figure(snap, "rotation-scale", "acc") is None
    assert figures.invariance_figure({}, "shift") is None


def test_invariance_figure_1d_is_two_lines():
    fig = figures.invariance_figure(invariance_snapshot(one_d=True), "shift", "acc")
    assert [(t.type, t.name) for t in fig.data] == [("scatter", "teacher"), ("scatter", "student")]
    assert list(fig.data[0].x)[:2] == [-8, -7] and "shift" in fig.layout.xaxis.title.text


def test_hardness_figure_for_hard_runs_only():
    events = [{**e, "extra": {**e["extra"], "hardness": 1.0 + e["step"] / 100}} for e in step_events(300)]
    fig = figures.hardness_figure(events)
    assert [t.name for t in fig.data] == ["hardness"] and len(fig.data[0].x) <= figures.MAX_POINTS
    assert fig.data[0].y[-1] == 4.0 and fig.layout.shapes[0].y0 == 1.0  # the "as hard as clean" line
    assert_framed(fig)
    assert figures.hardness_figure(step_events(30, hard=False)) is None


def test_params_figure_per_augmentor():
    g = torch.Generator().manual_seed(0)
    affine = {"param.tx": torch.randn(64, generator=g), "param.ty": torch.randn(64, generator=g),
              "param.rotate": torch.randn(64, generator=g), "clean": torch.zeros(16, 1, 40, 40)}
    fig = figures.params_figure(affine)
    assert [t.type for t in fig.data] == ["scatter", "histogram"]
    assert np.allclose(fig.data[0].x, affine["param.tx"].numpy()) and "pixels" in fig.layout.xaxis.title.text
    assert "64 samples" in fig.layout.title.text
    mix = figures.params_figure({"param.weight": torch.rand(16), "param.partner": torch.arange(16).float()})
    assert [t.name for t in mix.data] == ["weight"]  # the partner index is not histogrammed
    vae = figures.params_figure({"param.latent_norm": torch.rand(8), "param.pixel_change": torch.rand(8)})
    assert sorted(t.name for t in vae.data) == ["latent_norm", "pixel_change"]
    assert figures.params_figure({"clean": torch.zeros(2, 1, 4, 4)}) is None


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
