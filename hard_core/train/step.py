"""One training step, plain (KD or CE) or HARD. The loop and the benchmark both call `distil_step`.

What each model sees per step, for a sampled batch of B distinct images (after `--augment`; with
`--views original+augmented` the batch is the B originals followed by their B augmented views):

- plain KD: the student and the teacher (no grad) see the batch.
- HARD, m = round(share * B), c = B - m: x[:c] stay clean, x[c:] are the augmentor's sources; no image is
  used twice or dropped, so the student sees B distinct images, as under KD.

    "reverse" schedule (one forward and one backward pass for both players, see `losses.hard_loss`):
        x_aug = augmentor(x[c:])
        teacher (no grad) on x                 KD targets for x[:c], the consistency reference T(x[c:])
        teacher, student on reverse_grad(x_aug) and the student on x[:c]
        L.backward(); student.step(); augmentor.step()    the augmentor's gradient arrives negated
    "alternate" schedule (the paper's): an augmentor update on its own pass (`losses.augmentor_loss`:
        teacher on x[c:] and x_aug, student on x_aug, gradients only into the augmentor), then a student
        update with KD on x[:c] and fresh augmentations of x[c:] from the updated augmentor.

    The augmentor updates on every `hard_every`-th step; on the others it only augments (no gradients).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..augment.hard import reverse_grad
from ..losses import augmentor_loss, ce_loss, game_metrics, hard_loss, kd_loss
from .setup import Session


@dataclass
class StepResult:
    loss: Tensor  # what the student minimised (KD or CE), for logging
    x: Tensor  # source images (after standard augmentation; with HARD, the ones the augmentor changed)
    x_seen: Tensor  # what the student saw of them (the augmentor's output, with HARD)
    y: Tensor
    teacher_logits: Tensor | None  # the teacher on x_seen
    student_logits: Tensor  # the student on x_seen
    params: dict[str, Tensor] = field(default_factory=dict)  # the augmentor's per-sample choices
    extra: dict[str, Tensor] = field(default_factory=dict)  # with HARD and `measure`: disagreement, ...


def distil_step(s: Session, x: Tensor, y: Tensor, knobs: dict, step: int, measure: bool = False) -> StepResult:
    """One optimiser step on batch (x, y); `measure` adds HARD's game metrics (an extra student pass)."""
    x_aug, y_aug = s.augment(x, y, s.teacher, s.student)
    if s.cfg.views == "original+augmented":  # paper 2: KD on the originals and their augmented views
        x, y = torch.cat([x, x_aug]), torch.cat([y, y_aug])
    else:
        x, y = x_aug, y_aug
    if s.augmentor is not None:
        return _hard_step(s, x, y, knobs, step, measure)
    with s.autocast:
        if s.teacher is not None:
            with torch.no_grad():
                t_logits = s.teacher(x)
        s_logits = s.student(x)
        if s.cfg.loss == "kd":
            loss = kd_loss(s_logits, t_logits, y, knobs["temperature"], knobs["alpha"])
        else:
            loss, t_logits = ce_loss(s_logits, y), None
    s.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    s.optimizer.step()
    return StepResult(loss.detach(), x, x, y, t_logits, s_logits.detach())


def _augment(s: Session, src: Tensor, grad: bool):
    # The augmentor runs in float32 even under bf16 autocast: it is tiny, and in bf16 its game died on
    # CUDA (within 100 steps every sample got the same shift and its gradients were exactly 0).
    with (contextlib.nullcontext() if grad else torch.no_grad()), torch.autocast(s.device.type, enabled=False):
        return s.augmentor(src)


def _hard_step(s: Session, x: Tensor, y: Tensor, knobs: dict, step: int, measure: bool) -> StepResult:
    n = x.shape[0]
    m = max(1, round(s.cfg.hard_share * n))
    c = n - m
    src, temperature = x[c:], knobs["temperature"]
    update = step % s.cfg.hard_every == 0
    single = update and s.cfg.hard_schedule == "reverse"  # both players in one pass
    t_src = None
    with s.autocast:
        if update and not single:
            _augmentor_update(s, src, knobs)
        x_aug, params = _augment(s, src, grad=single)
        if single:
            x_in = reverse_grad(x_aug)
            with torch.no_grad():
                t_all = s.teacher(x)
            t_clean, t_src = t_all[:c], t_all[c:]
            t_aug = s.teacher(x_in)
        else:
            x_in = x_aug
            with torch.no_grad():
                t_both = s.teacher(torch.cat([x[:c], x_aug]))
            t_clean, t_aug = t_both[:c], t_both[c:]
        s_logits = s.student(torch.cat([x[:c], x_in]))
        if single:
            loss, kd = hard_loss(s_logits, t_clean, t_aug, t_src, y, temperature, knobs["alpha"],
                                 knobs["hard_lambda"])
        else:
            loss = kd = kd_loss(s_logits, torch.cat([t_clean, t_aug]), y, temperature, knobs["alpha"])
        extra = {}
        if measure:  # the game in numbers, with the student as it was on this batch (before its update)
            with torch.no_grad():
                t_src = s.teacher(src) if t_src is None else t_src
                extra = game_metrics(t_src, s.student(src), t_aug, s_logits[c:], temperature)
            extra["spread"] = s.augmentor.spread.detach().clone()
    s.optimizer.zero_grad(set_to_none=True)
    if single:
        s.augmentor_optimizer.zero_grad(set_to_none=True)
    loss.backward()
    s.optimizer.step()
    if single:
        s.augmentor_optimizer.step()
        s.augmentor.project_()
    # for display, pair each source image with its augmented version and the models' outputs on it
    return StepResult(kd.detach(), src, x_aug.detach(), y[c:], t_aug.detach(), s_logits[c:].detach(),
                      {k: v.detach() for k, v in params.items()}, extra)


def _augmentor_update(s: Session, src: Tensor, knobs: dict) -> None:
    """The alternating schedule's augmentor step: descend `augmentor_loss` on its own forward pass. Only
    the augmentor's parameters receive gradients (the teacher and the student are passed through)."""
    x_aug, _ = _augment(s, src, grad=True)
    with torch.no_grad():
        t_src = s.teacher(src)
    loss = augmentor_loss(s.teacher(x_aug), s.student(x_aug), t_src, knobs["temperature"], knobs["hard_lambda"])
    trainable = [p for p in s.augmentor.parameters() if p.requires_grad]
    s.augmentor_optimizer.zero_grad(set_to_none=True)
    loss.backward(inputs=trainable)
    s.augmentor_optimizer.step()
    s.augmentor.project_()
