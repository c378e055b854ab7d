import math

import pytest
import torch

from hard_core.losses import ce_loss, kd_loss, kl_div


def _softmax(v, t):
    e = [math.exp(a / t) for a in v]
    return [a / sum(e) for a in e]


def test_kd_loss_matches_hand_computation():
    s = [[1.0, 2.0, 0.5]]
    t = [[3.0, -1.0, 0.0]]
    T = 2.0
    p, q = _softmax(t[0], T), _softmax(s[0], T)
    kl = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    got = kd_loss(torch.tensor(s), torch.tensor(t), None, temperature=T, alpha=1.0)
    assert got.item() == pytest.approx(kl * T * T, rel=1e-5)


def test_kd_loss_mixes_cross_entropy_by_alpha():
    s, t = torch.tensor([[1.0, 2.0, 0.5]]), torch.tensor([[3.0, -1.0, 0.0]])
    y = torch.tensor([2])
    T, alpha = 4.0, 0.3
    q = _softmax([1.0, 2.0, 0.5], 1.0)
    ce = -math.log(q[2])
    soft = kl_div(t, s, T).item() * T * T
    got = kd_loss(s, t, torch.nn.functional.one_hot(y, 3).float(), temperature=T, alpha=alpha)
    assert got.item() == pytest.approx(alpha * soft + (1 - alpha) * ce, rel=1e-5)


def test_kd_is_zero_when_student_equals_teacher_and_grows_otherwise():
    t = torch.randn(8, 10)
    assert kd_loss(t.clone(), t, None).item() == pytest.approx(0.0, abs=1e-6)
    assert kd_loss(t + torch.randn(8, 10), t, None).item() > 0.01


def test_soft_and_hard_cross_entropy_agree():
    logits = torch.randn(5, 4)
    y = torch.tensor([0, 3, 1, 1, 2])
    assert ce_loss(logits, y).item() == pytest.approx(ce_loss(logits, torch.eye(4)[y]).item(), rel=1e-6)


def test_hards_label_term_stays_on_the_clean_images():
    """HARD's student loss: alpha * KD + (1 - alpha) * CE on the clean part, KD alone on the augmentor's
    images, so what reaches the augmented images' logits is the disagreement's gradient whatever the labels
    and alpha; with alpha 1 it is kd_loss."""
    from hard_core.losses import hard_kd

    torch.manual_seed(0)
    s, t = torch.randn(8, 5, requires_grad=True), torch.randn(8, 5)
    y, other = torch.randint(0, 5, (8,)), torch.randint(0, 5, (8,))
    T, alpha, clean = 4.0, 0.3, 3
    soft = kl_div(t, s, T, "none") * T**2
    ce = torch.nn.functional.cross_entropy(s[:clean], y[:clean], reduction="sum")
    expected = (alpha * soft[:clean].sum() + soft[clean:].sum() + (1 - alpha) * ce) / 8
    assert hard_kd(s, t, y, clean, T, alpha).item() == pytest.approx(expected.item(), rel=1e-5)
    grads = [torch.autograd.grad(hard_kd(s, t, labels, clean, T, a), s)[0][clean:]
             for labels, a in ((y, alpha), (other, 0.7), (None, 1.0))]
    assert torch.allclose(grads[0], grads[1]) and torch.allclose(grads[0], grads[2])
    assert hard_kd(s, t, y, clean, T, 1.0).item() == kd_loss(s, t, y, T, 1.0).item()
