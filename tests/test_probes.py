"""Probes: invariance maps, disagreement maps, the maps a KD run puts in its snapshots, and `probe`."""
import json

import pytest
import torch
from torch import nn

from hard_core.assets import shipped_teacher
from hard_core.checkpoint import load_model
from hard_core.cli import main
from hard_core.config import RunConfig
from hard_core.data import load_dataset
from hard_core.models import build_model
from hard_core.probes import (InvarianceProbe, disagreement_map, invariance_maps, make_grid, rotation_scale_grid,
                              shift_1d_grid, shift_grid)
from hard_core.probes.invariance import rotate_scale
from hard_core.probes.live import RunProbe
from hard_core.runs import RunReader, load_student, run_to_dir


class SumModel(nn.Module):
    """Logits from the pixel sum only: exactly invariant to shifts that keep the content on the canvas."""

    def __init__(self):
        super().__init__()
        self.w, self.b = torch.linspace(-1, 1, 10), torch.linspace(0, 3, 10)

    def forward(self, x):
        return (x.double().flatten(1).sum(1, keepdim=True) / 20 * self.w + self.b).float()


class PatchModel(nn.Module):
    """A seeded linear read-out of the central 8 x 8 patch: not shift invariant."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(64, 10)

    def forward(self, x):
        return self.lin(x[..., 16:24, 16:24].flatten(1)) * 10


def is_flat(m):
    return bool((m["acc"] == m["acc"].flatten()[0]).all()) and float(m["kl"].abs().max()) < 1e-6


@pytest.fixture(scope="module")
def digits():
    return load_dataset("mnist5k", canvas=40).test


def test_shift_invariant_model_has_a_flat_map_and_a_patch_reader_does_not(digits):
    """Digits on a 40 canvas never reach the 6 px border, so zero-fill shifts keep the pixel sum."""
    border = torch.ones(40, 40, dtype=torch.bool)
    border[6:34, 6:34] = False
    assert digits.x[..., border].abs().sum() == 0  # precondition: nothing can leave the canvas
    torch.manual_seed(0)
    maps = invariance_maps(SumModel(), PatchModel(), digits.x, digits.y, "shift", images=64, max_shift=6)
    assert maps["teacher"]["acc"].shape == (7, 7) and is_flat(maps["teacher"])
    assert 0 < float(maps["teacher"]["acc"][3, 3]) < 1  # a real, non-trivial accuracy, the same everywhere
    patch = maps["student"]
    assert not is_flat(patch) and patch["kl"][3, 3] == 0 and patch["kl"][0, 0] > 0.1


def test_shift_invariant_1d_model_has_a_flat_line():
    """1D shifts replicate the end values: signals that are zero near both ends keep their sum."""
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(50, 1, 40)
    x[..., 8:32] = torch.rand(50, 1, 24, generator=g)
    y = torch.randint(0, 10, (50,), generator=g)
    flat = InvarianceProbe(x, y, shift_1d_grid(8))(SumModel())
    assert flat["acc"].shape == (17,) and flat["shift"].tolist() == list(range(-8, 9)) and is_flat(flat)
    x[..., 0] = 1.0  # a non-zero end value is replicated by a right shift: no longer invariant
    assert not is_flat(InvarianceProbe(x, y, shift_1d_grid(8))(SumModel()))


def test_grid_axes_and_shapes():
    """Axes as documented; odd rotation-scale grids contain the identity; 1D grids have no rotations."""
    g = shift_grid(6)
    assert g.names == ("dy", "dx") and g.shape == (7, 7) and len(g) == 49
    assert g.axes[0].tolist() == [-6, -4, -2, 0, 2, 4, 6] == g.axes[1].tolist()
    assert shift_grid(3).axes[0].tolist() == [-3, -2, -1, 0, 1, 2, 3]
    rs = rotation_scale_grid()
    assert rs.names == ("angle", "scale") and rs.shape == (7, 7)
    assert rs.axes[0][3] == 0 and rs.axes[1][3] == pytest.approx(1.0)
    assert rs.axes[0][0] == -30 and rs.axes[1][-1] == pytest.approx(1.25)
    assert make_grid("shift", True).shape == (17,)
    with pytest.raises(ValueError, match="1D signals have only"):
        make_grid("rotation-scale", True)


def test_grid_apply_matches_hand_made_shifts():
    """Cells are row-major (dy, dx), output is cell-major, zero fill in 2D and end replication in 1D."""
    x = torch.arange(2 * 16, dtype=torch.float32).view(2, 1, 4, 4) + 1
    g = shift_grid(2, step=1)  # 5 x 5 cells, -2..2
    out = g.apply(x, range(15, 17))  # cells 15, 16: dy = 1, dx = -2 and dx = -1
    assert out.shape == (4, 1, 4, 4)
    for k, (dy, dx) in enumerate([(1, -2), (1, -1)]):
        want = torch.zeros_like(x)
        for i in range(4):
            for j in range(4):
                if 0 <= i - dy < 4 and 0 <= j - dx < 4:
                    want[..., i, j] = x[..., i - dy, j - dx]
        assert torch.equal(out[2 * k:2 * k + 2], want)
    s = torch.tensor([[[1.0, 2, 3, 4, 5]]])
    out = shift_1d_grid(2).apply(s, range(5))
    assert out[0, 0].tolist() == [3, 4, 5, 5, 5] and out[3, 0].tolist() == [1, 1, 2, 3, 4]


def test_rotation_is_clockwise_and_zoom_enlarges():
    """Identity cell returns the image; +90 degrees moves the top to the right; zoom 2 moves content outwards."""
    x = torch.zeros(2, 1, 5, 5)
    x[0, 0, 0, 2] = x[1, 0, 2, 3] = 1  # top centre; one pixel right of the centre
    assert torch.allclose(rotate_scale(x, torch.zeros(2), torch.ones(2)), x, atol=1e-6)
    out = rotate_scale(x, torch.tensor([90.0, 0.0]), torch.tensor([1.0, 2.0]))
    assert out[0, 0].argmax() == 2 * 5 + 4 and out[1, 0, 2, 4] == pytest.approx(1.0)


class Spy(nn.Module):
    """Wraps a model; counts its forward calls and remembers the train/eval flag it last ran with."""

    def __init__(self, model):
        super().__init__()
        self.model, self.calls, self.seen_training = model, 0, None

    def forward(self, x):
        self.calls, self.seen_training = self.calls + 1, self.training
        return self.model(x)


def test_disagreement_of_linear_models_matches_the_analytic_gradient():
    """For logits a = A x, b = B x: dKL/dx = A^T p*(log p - log q - KL)/T + B^T (q - p)/T, |.| summed over
    channels; also per image (batch-independent), no parameter .grad, flags restored, eval during the call."""
    torch.manual_seed(0)
    T = 2.0
    teacher = Spy(nn.Sequential(nn.Flatten(), nn.Linear(2 * 3 * 4, 5, bias=False))).train()
    student = Spy(nn.Sequential(nn.Flatten(), nn.Linear(2 * 3 * 4, 5, bias=False), nn.Dropout(0.5))).train()
    student.model[2].eval()  # a mixed state that must come back exactly
    x = torch.rand(3, 2, 3, 4)
    got = disagreement_map(teacher, student, x, T)
    assert got.shape == (3, 3, 4)
    A, B = teacher.model[1].weight.double(), student.model[1].weight.double()
    xf = x.double().flatten(1)
    lp, lq = torch.log_softmax(xf @ A.T / T, 1), torch.log_softmax(xf @ B.T / T, 1)
    p, q = lp.exp(), lq.exp()
    kl = (p * (lp - lq)).sum(1, keepdim=True)
    grad = (p * (lp - lq - kl) / T) @ A + ((q - p) / T) @ B
    want = grad.view(3, 2, 3, 4).abs().sum(1)
    assert torch.allclose(got.double(), want, rtol=1e-4, atol=1e-7)
    assert torch.allclose(disagreement_map(teacher, student, x[1:2], T)[0], got[1], atol=1e-7)
    assert not teacher.seen_training and not student.seen_training
    assert teacher.training and student.training and student.model[1].training and not student.model[2].training
    assert all(p.grad is None for p in [*teacher.parameters(), *student.parameters()])
    assert not got.requires_grad and x.grad is None
    with pytest.raises(ValueError, match="temperature"):
        disagreement_map(teacher, student, x, 0.0)


def test_disagreement_is_zero_for_a_model_and_itself_and_has_input_shape(digits):
    """Image maps are N x H x W, 1D maps N x L; a model never disagrees with itself."""
    teacher = load_model(shipped_teacher("mnist5k", 40))
    x = digits.x[:8]
    assert disagreement_map(teacher, teacher, x, 4.0).abs().max() == 0
    torch.manual_seed(0)
    student = build_model("mlp", input_shape=(1, 40, 40), num_classes=10)
    m = disagreement_map(teacher, student, x, 4.0)
    assert m.shape == (8, 40, 40) and m.max() > 0 and torch.isfinite(m).all()
    teacher_1d = load_model(shipped_teacher("mnist1d", None))
    student_1d = build_model("mlp", input_shape=(1, 40), num_classes=10)
    x1 = load_dataset("mnist1d").test.x[:8]
    assert disagreement_map(teacher_1d, student_1d, x1, 4.0).shape == (8, 40)


def test_run_probe_computes_the_frozen_teachers_maps_once():
    """After the first call the teacher runs only for the disagreement map (one forward per call)."""
    dataset = load_dataset("mnist5k", canvas=40)
    teacher = Spy(load_model(shipped_teacher("mnist5k", 40)))
    torch.manual_seed(0)
    student = build_model("mlp", input_shape=(1, 40, 40), num_classes=10)
    probe = RunProbe(teacher, dataset, "cpu", images=8)
    first = probe(student, dataset.test.x[:4], 4.0)
    calls = teacher.calls
    second = probe(student, dataset.test.x[:4], 4.0)
    assert calls > 2 and teacher.calls == calls + 1
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    assert first["disagreement"].shape == (4, 40, 40) and first["invariance.shift.student.acc"].shape == (7, 7)


def snapshots(run_dir):
    reader = RunReader(run_dir)
    return {e["step"]: reader.snapshot(e) for e in reader.poll() if e["kind"] == "snapshot"}


COMMON = dict(teacher="default", student="mlp", device="cpu", seed=0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A 20-step KD run probed every 10 steps, a short HARD-affine run, a 1D run and a pretrain run."""
    root = tmp_path_factory.mktemp("probe_runs")
    run_to_dir(RunConfig(dataset="mnist5k", canvas=40, steps=20, probe_every=10, eval_every=20, snapshot_every=10,
                         suites="shift:6", **COMMON), root / "kd")
    run_to_dir(RunConfig(dataset="mnist5k", canvas=40, hard="affine", steps=2, probe_every=2, eval_every=2,
                         suites="shift:6", **COMMON), root / "affine")
    run_to_dir(RunConfig(dataset="mnist1d", steps=4, probe_every=4, eval_every=4, suites="shift:8", **COMMON),
               root / "1d")
    run_to_dir(RunConfig(kind="pretrain", loss="ce", dataset="mnist1d", student="mlp", steps=2, eval_every=2,
                         suites="none", device="cpu"), root / "pretrain")
    return root


def test_kd_run_snapshots_carry_the_probe_maps(runs, digits):
    """Maps at steps 10 and 20 (not at step 1); the teacher's map is computed once; the shift-trained
    teacher is flatter than the 20-step MLP; the step-20 maps are exactly what the probes give offline."""
    snaps = snapshots(runs / "kd")
    assert "disagreement" not in snaps[1]
    for step in (10, 20):
        s = snaps[step]
        assert s["disagreement"].shape == (16, 40, 40) and (s["disagreement"] >= 0).all()
        for who in ("teacher", "student"):
            for what in ("acc", "kl"):
                assert s[f"invariance.shift.{who}.{what}"].shape == (7, 7)
        assert s["invariance.shift.axis.dy"].tolist() == [-6, -4, -2, 0, 2, 4, 6]
        assert s["invariance.shift.axis.dx"].tolist() == [-6, -4, -2, 0, 2, 4, 6]
        assert {k.split(".")[1] for k in s if k.startswith("invariance.")} == {"shift"}  # the shift world's one grid
    for key in ("invariance.shift.teacher.acc", "invariance.shift.teacher.kl"):
        assert torch.equal(snaps[10][key], snaps[20][key])
    assert not torch.equal(snaps[10]["invariance.shift.student.kl"], snaps[20]["invariance.shift.student.kl"])
    teacher_acc, student_acc = snaps[20]["invariance.shift.teacher.acc"], snaps[20]["invariance.shift.student.acc"]
    assert teacher_acc.min() > 0.9 and student_acc.min() < teacher_acc.min() - 0.3

    teacher, student = load_model(shipped_teacher("mnist5k", 40)), load_student(runs / "kd")
    s = snaps[20]
    assert torch.allclose(disagreement_map(teacher, student, s["augmented"], 4.0), s["disagreement"], atol=1e-6)
    again = InvarianceProbe(digits.x, digits.y, shift_grid(6), images=64)(student)
    assert torch.equal(again["acc"], s["invariance.shift.student.acc"])


def test_hard_and_1d_snapshots(runs):
    """HARD-affine snapshots add the augmentor's params; 1D runs get a shift line and nothing else."""
    s = snapshots(runs / "affine")[2]
    assert "param.tx" in s and "param.ty" in s and "disagreement" in s and torch.isfinite(s["param.tx"]).all()
    s = snapshots(runs / "1d")[4]
    assert s["disagreement"].shape == (16, 40)
    assert s["invariance.shift.teacher.acc"].shape == (17,) == s["invariance.shift.student.kl"].shape
    assert s["invariance.shift.axis.shift"].tolist() == list(range(-8, 9))
    assert {k.split(".")[1] for k in s if k.startswith("invariance.")} == {"shift"}


def test_probe_cli_prints_both_maps_as_json(runs, capsys):
    """`probe RUN --json`: teacher and student maps over the grid, the teacher the flatter one."""
    assert main(["probe", str(runs / "kd"), "--json", "--images", "48"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "shift" and out["images"] == 48 and out["axes"]["dx"] == [-6, -4, -2, 0, 2, 4, 6]
    t, s = torch.tensor(out["teacher"]["acc"]), torch.tensor(out["student"]["acc"])
    assert t.shape == s.shape == (7, 7) and t.min() > s.min() + 0.3
    assert out["disagreement"]["kl"] > 0 and out["disagreement"]["temperature"] == 4.0
    weights = out["teacher_weights"]  # which teacher it asked: the run's own, by content
    assert weights["ref"] == "default" and weights["sha256"] and weights["sha256"] == weights["trained_with"]
    assert main(["probe", str(runs / "kd"), "--kind", "rotation-scale", "--images", "16"]) == 0
    text = capsys.readouterr().out
    assert "teacher: accuracy % under rotation-scale" in text and "student:" in text and "disagreement" in text
    assert main(["probe", str(runs / "kd"), "--kind", "polarity", "--images", "16", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)  # any grid, not only the run's: the shift teacher fails inverted digits
    assert out["axes"]["blend"][0] == 0 and out["axes"]["blend"][-1] == 1 and out["teacher"]["acc"][-1] < 0.5


@pytest.mark.parametrize("args,message", [
    (["{root}/missing"], "not found"),
    (["{root}/kd/config.json"], "is not a run directory"),
    (["{root}/pretrain"], "is a pretrain run"),
    (["{root}/1d", "--kind", "rotation-scale"], "1D signals have only: shift"),
    (["{root}/1d", "--kind", "polarity"], "1D signals have only: shift"),
    (["{root}/kd", "--images", "0"], "--images must be at least 1"),
])
def test_probe_cli_user_errors_are_one_line(runs, capsys, args, message):
    code = main(["probe", *[a.format(root=runs) for a in args]])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error:"), err
