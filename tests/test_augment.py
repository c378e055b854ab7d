"""Standard augmentations and CutMixPick: shapes, exact geometry of shift/CutMix/MixUp, top-k picking."""
import numpy as np
import pytest
import torch
from torch import nn

from hard_core.augment import AUGMENTATIONS, CRITERIA, build_augment, pick_top, score_candidates
from hard_core.errors import UserError

K = 10
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
IMAGE_ONLY = ("rotation", "polarity", "thickness", "flip-crop", "randaugment", "autoaugment", "cutout")


def weighted_mean(flat):
    """A position-weighted mean of each row: unlike the plain mean it differs between CutMix candidates
    that merely share their mixing fraction, so the scores below have no ties."""
    w = 1.0 + (torch.arange(flat.shape[1], dtype=flat.dtype, device=flat.device) * 0.37) % 1.0
    return (flat * w).sum(1, keepdim=True) / w.sum()


class MeanLogits(nn.Module):
    """Logits = f(weighted mean pixel value of each sample): outputs we can recompute by hand."""

    def __init__(self, kind: str, k: int = K):
        super().__init__()
        self.kind, self.k = kind, k
        self.seen_training: list[bool] = []
        self.bn = nn.BatchNorm1d(1)  # a submodule, to check that train/eval flags are restored
        self.scale = nn.Parameter(torch.ones(()))  # a parameter in the graph, to check no_grad scoring

    def forward(self, x):
        self.seen_training.append(self.training)
        return self.scale * self.logits(weighted_mean(x.flatten(1)))

    def logits(self, m):
        j = torch.arange(self.k, dtype=m.dtype, device=m.device)
        if self.kind == "teacher":
            return 6.0 * m * (j - self.k / 2) / self.k * 4
        return 3.0 * torch.cos(7.0 * m * (j + 1))  # student: some other smooth function of m


def constant_batch(n: int, shape=(1, 6, 6), device="cpu"):
    """Image i is filled with (i + 1) / (n + 1): every pixel tells its source. One-hot labels i."""
    vals = torch.arange(1, n + 1, dtype=torch.float32) / (n + 1)
    x = vals.view(n, *([1] * len(shape))).expand(n, *shape).contiguous().to(device)
    return x, torch.eye(K)[:n].to(device), vals.to(device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_shape_dtype_device_range(name, channels, device):
    torch.manual_seed(0)
    x, y = torch.rand(6, channels, 16, 16, device=device), torch.eye(K, device=device)[:6]
    aug = build_augment(name, num_classes=K, criterion="kl")
    xa, ya = aug(x, y, teacher=MeanLogits("teacher").to(device), student=MeanLogits("student").to(device))
    assert xa.shape == x.shape and xa.dtype == x.dtype and xa.device == x.device
    assert ya.shape == y.shape and ya.device == y.device
    assert xa.min() >= 0 and xa.max() <= 1
    assert torch.allclose(ya.sum(1), torch.ones(6, device=device))
    assert aug.name == name and aug.needs_models == (name == "cutmixpick")


def test_none_is_identity():
    x, y = torch.rand(4, 1, 8, 8), torch.eye(K)[:4]
    xa, ya = build_augment("none", num_classes=K)(x, y)
    assert xa is x and ya is y


def test_integer_labels_accepted_and_bad_labels_rejected():
    x = torch.rand(4, 1, 8, 8)
    _, ya = build_augment("mixup", num_classes=K)(x, torch.tensor([0, 1, 2, 3]))
    assert ya.shape == (4, K)
    with pytest.raises(ValueError, match="soft labels"):
        build_augment("mixup", num_classes=K)(x, torch.eye(5)[:4])


@pytest.mark.parametrize("device", DEVICES)
def test_shift_moves_one_hot_pixel_by_sampled_amount(device):
    n, h, m = 400, 15, 3
    x = torch.zeros(n, 1, h, h, device=device)
    x[:, 0, 7, 7] = 1.0
    aug = build_augment("shift", num_classes=K, max_shift=m)
    torch.manual_seed(1)
    params = aug.make_params(x)
    out = aug.apply_params(x, params)
    dx, dy = params["dx"], params["dy"]
    assert dx.abs().max() <= m and dy.abs().max() <= m
    assert set(dx.tolist()) == set(range(-m, m + 1)) == set(dy.tolist())  # uniform over the full range
    for i in range(n):
        expected = torch.zeros(h, h, device=device)
        expected[7 + dy[i], 7 + dx[i]] = 1.0
        assert torch.equal(out[i, 0], expected)
    torch.manual_seed(1)  # __call__ draws the same parameters from the same seed
    assert torch.equal(aug(x, torch.eye(K, device=device)[torch.zeros(n, dtype=torch.long)])[0], out)


def test_shift_zero_fills_images_and_replicates_1d_ends():
    aug = build_augment("shift", num_classes=K, max_shift=2)
    img = torch.ones(2, 1, 5, 5)
    out = aug.apply_params(img, {"dx": torch.tensor([2, -1]), "dy": torch.tensor([0, 1])})
    assert out[0, 0, :, :2].sum() == 0 and out[0, 0, :, 2:].min() == 1  # two zero columns on the left
    assert out[1, 0, 0].sum() == 0 and out[1, 0, :, -1].sum() == 0  # zero top row and right column
    sig = torch.tensor([[[0.1, 0.2, 0.3, 0.4, 0.5]]])
    assert torch.allclose(aug.apply_params(sig, {"dx": torch.tensor([2])}),
                          torch.tensor([[[0.1, 0.1, 0.1, 0.2, 0.3]]]))
    assert torch.allclose(aug.apply_params(sig, {"dx": torch.tensor([-1])}),
                          torch.tensor([[[0.2, 0.3, 0.4, 0.5, 0.5]]]))


@pytest.mark.parametrize("shape", [(1, 12, 9), (3, 8, 8), (1, 40)], ids=["gray", "rgb", "1d"])
def test_cutmix_box_area_matches_lambda(shape):
    n = 8
    x, y, vals = constant_batch(n, shape)
    aug = build_augment("cutmix", num_classes=K)
    for seed in range(15):
        torch.manual_seed(seed)
        xa, ya = aug(x, y)
        changed = xa != vals.view(n, *([1] * len(shape)))
        assert torch.equal(changed, changed[:1].expand_as(changed))  # one box for the whole batch
        for i in range(n):
            frac = changed[i].float().mean().item()
            assert frac == pytest.approx(1 - ya[i, i].item(), abs=1e-6)
            if frac > 0:
                src = xa[i][changed[i]].unique()
                assert len(src) == 1  # the pasted region comes from one partner
                p = int(torch.nonzero(vals == src).item())
                assert p != i and ya[i, p].item() == pytest.approx(frac, abs=1e-6)
        if len(shape) == 3:  # the changed region is a rectangle
            rows, cols = changed[0, 0].any(1), changed[0, 0].any(0)
            assert torch.equal(changed[0, 0], rows[:, None] & cols[None, :])


@pytest.mark.parametrize("shape", [(1, 6, 6), (1, 30)], ids=["image", "1d"])
def test_mixup_is_convex_combination_of_images_and_labels(shape):
    n = 8
    x, _, vals = constant_batch(n, shape)
    y = torch.softmax(torch.randn(n, K, generator=torch.Generator().manual_seed(0)), 1)  # soft labels
    aug = build_augment("mixup", num_classes=K)
    for seed in range(5):
        torch.manual_seed(seed)
        xa, ya = aug(x, y)
        assert torch.allclose(ya.sum(1), torch.ones(n))
        # partner p of i and lam: xa[i] = lam * v_i + (1 - lam) * v_p with lam shared by the batch
        lams = set()
        for i in range(n):
            v = xa[i].flatten()
            assert torch.allclose(v, v[0].expand_as(v))
            for p in range(n):
                if p == i:
                    continue
                lam = (v[0] - vals[p]) / (vals[i] - vals[p])
                if torch.allclose(ya[i], lam * y[i] + (1 - lam) * y[p], atol=1e-5):
                    lams.add(round(lam.item(), 4))
                    break
            else:
                pytest.fail(f"sample {i} is not a mix of itself and one partner")
        assert len(lams) == 1 and 0 <= lams.pop() <= 1


def test_per_sample_parameters_differ_within_a_batch():
    torch.manual_seed(0)
    img = torch.rand(1, 1, 16, 16).expand(32, 1, 16, 16)
    for name in IMAGE_ONLY:
        xa, _ = build_augment(name, num_classes=K)(img, torch.eye(K)[torch.zeros(32, dtype=torch.long)])
        outcomes = {"polarity": 2, "thickness": 3}.get(name, 5)  # discrete nuisances have few outcomes
        assert len({tuple(s.flatten().tolist()) for s in xa}) >= outcomes, name


def test_1d_paths_and_image_only_errors():
    x, y = torch.rand(6, 1, 40), torch.eye(K)[:6]
    for name in ("none", "shift", "mixup", "cutmix", "cutmixpick"):
        xa, ya = build_augment(name, num_classes=K)(x, y, teacher=MeanLogits("teacher"),
                                                   student=MeanLogits("student"))
        assert xa.shape == x.shape and ya.shape == y.shape and 0 <= xa.min() and xa.max() <= 1
    for name in IMAGE_ONLY:
        with pytest.raises(UserError, match=f"{name} needs images; this dataset is 1D"):
            build_augment(name, num_classes=K)(x, y)


def test_unknown_name_and_bad_arguments():
    with pytest.raises(UserError, match="choose one of: none, shift, rotation, polarity"):
        build_augment("jitter", num_classes=K)
    with pytest.raises(ValueError, match="rounds"):
        build_augment("cutmixpick", num_classes=K, rounds=0)
    with pytest.raises(ValueError, match="keep"):
        build_augment("cutmixpick", num_classes=K, keep=0)
    with pytest.raises(ValueError, match="teacher-entropy, student-entropy, kl"):
        build_augment("cutmixpick", num_classes=K, criterion="margin")
    with pytest.raises(ValueError, match="max_shift"):
        build_augment("shift", num_classes=K, max_shift=-1)
    with pytest.raises(UserError, match="1 or 3 channels, not 2"):
        build_augment("randaugment", num_classes=K)(torch.rand(2, 2, 8, 8), torch.eye(K)[:2])
    with pytest.raises(ValueError, match="alpha"):
        build_augment("mixup", num_classes=K, alpha=0)


def test_a_registered_augmentation_is_listed_by_strength_and_gets_only_its_options():
    from hard_core.augment import NoAugment, list_augments, register_augment, registry

    got = {}

    @register_augment("test-between", strength=15)
    def between(*, num_classes: int, alpha: float = 1.0):
        got.update(num_classes=num_classes, alpha=alpha)
        return NoAugment(num_classes=num_classes)

    try:
        assert list_augments()[:3] == ["none", "shift", "test-between"]  # none 0, shift 10, rotation 20
        assert isinstance(build_augment("test-between", num_classes=K, alpha=0.3, max_shift=2), NoAugment)
        assert got == {"num_classes": K, "alpha": 0.3}
    finally:
        registry._AUGMENTS.pop("test-between")
    assert "test-between" not in list_augments() and list(AUGMENTATIONS) == list_augments()


def test_pick_top_is_exact():
    scores = torch.tensor([0.3, 0.9, 0.1, 0.9, 0.5])
    assert pick_top(scores, 3).tolist() == [1, 3, 4]  # ties: lower index first
    assert pick_top(scores, 5).tolist() == [1, 3, 4, 0, 2]
    with pytest.raises(ValueError):
        pick_top(scores, 6)


def numpy_scores(x: torch.Tensor, criterion: str, t: float) -> np.ndarray:
    """Independent recomputation (float64, numpy softmax) of the CutMixPick scores of a batch: entropies at
    T = 1, the KL at T (the paper's public code)."""
    t = t if criterion == "kl" else 1.0
    m = weighted_mean(x.flatten(1).double())
    lt = MeanLogits("teacher").logits(m).numpy() / t
    ls = MeanLogits("student").logits(m).numpy() / t

    def log_softmax(z):
        z = z - z.max(1, keepdims=True)
        return z - np.log(np.exp(z).sum(1, keepdims=True))

    lpt, lps = log_softmax(lt), log_softmax(ls)
    if criterion == "teacher-entropy":
        return -(np.exp(lpt) * lpt).sum(1)
    if criterion == "student-entropy":
        return -(np.exp(lps) * lps).sum(1)
    return (np.exp(lpt) * (lpt - lps)).sum(1)


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 32)], ids=["image", "1d"])
@pytest.mark.parametrize("criterion", CRITERIA)
def test_cutmixpick_keeps_exactly_the_top_scored_candidates(criterion, shape):
    n, keep, rounds, t = 8, 5, 3, 4.0
    x, y, _ = constant_batch(n, shape)
    teacher, student = MeanLogits("teacher"), MeanLogits("student")
    aug = build_augment("cutmixpick", num_classes=K, criterion=criterion, rounds=rounds, keep=keep,
                        temperature=t)
    for seed in range(4):
        torch.manual_seed(seed)
        xc, yc = aug.candidates(x, y)
        assert xc.shape == (rounds * n, *shape)
        expected = numpy_scores(xc, criterion, t)
        got = score_candidates(xc, criterion, t, teacher, student)
        np.testing.assert_allclose(got.double().numpy(), expected, rtol=1e-4, atol=1e-6)
        top = np.argsort(-expected, kind="stable")[:keep]
        assert expected[top].min() > np.delete(expected, top).max() + 1e-6  # no near-ties in this setup
        torch.manual_seed(seed)  # same seed -> same candidates inside the call
        xa, ya = aug(x, y, teacher=teacher, student=student)
        assert xa.shape == (keep, *shape) and ya.shape == (keep, K)
        kept = sorted(tuple(r.tolist()) for r in torch.cat([xa.flatten(1), ya], 1))
        want = sorted(tuple(r.tolist()) for r in torch.cat([xc[top].flatten(1), yc[top]], 1))
        assert kept == want
        assert np.all(np.diff(numpy_scores(xa, criterion, t)) <= 1e-6)
        torch.manual_seed(seed)  # pick says which candidates it kept: exactly the top ones, highest first
        picked = aug.pick(x, y, teacher=teacher, student=student)
        assert picked.index.tolist() == top.tolist() and torch.equal(picked.source, picked.index % n)
        assert torch.equal(picked.x, xc[top]) and torch.equal(picked.y, yc[top])
        np.testing.assert_allclose(picked.scores.double().numpy(), expected[top], rtol=1e-4, atol=1e-6)


def test_cutmixpick_entropies_ignore_the_temperature_and_the_kl_does_not():
    x = torch.rand(6, 1, 8, 8)
    teacher, student = MeanLogits("teacher"), MeanLogits("student")
    for criterion in ("teacher-entropy", "student-entropy"):
        assert torch.equal(score_candidates(x, criterion, 1.0, teacher, student),
                           score_candidates(x, criterion, 4.0, teacher, student))
    assert not torch.allclose(score_candidates(x, "kl", 1.0, teacher, student),
                              score_candidates(x, "kl", 4.0, teacher, student))


def test_cutmixpick_models_modes_gradients_and_errors():
    x, y, _ = constant_batch(8)
    teacher, student = MeanLogits("teacher"), MeanLogits("student")
    student.train()
    student.bn.eval()  # a mixed state must come back exactly
    teacher.eval()
    xa, ya = build_augment("cutmixpick", num_classes=K)(x, y, teacher=teacher, student=student)
    assert student.seen_training == [False] and teacher.seen_training == [False]  # scored in eval mode
    assert student.training and not student.bn.training and not teacher.training
    assert not xa.requires_grad and not ya.requires_grad
    assert not score_candidates(x, "kl", 4.0, teacher, student).requires_grad  # scored without a graph
    with pytest.raises(ValueError, match="needs the teacher"):
        build_augment("cutmixpick", num_classes=K)(x, y, student=student)
    with pytest.raises(ValueError, match="needs the student"):
        build_augment("cutmixpick", num_classes=K, criterion="kl")(x, y, teacher=teacher)
    build_augment("cutmixpick", num_classes=K, criterion="teacher-entropy")(x, y, teacher=teacher)
    with pytest.raises(ValueError, match="exceeds"):
        build_augment("cutmixpick", num_classes=K, rounds=2, keep=17)(x, y, teacher=teacher, student=student)
