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
    "alternate" schedule (the paper's): an augmentor update on its own pass (`losses.augmentor_objective`:
        teacher on x[c:] and x_aug, student on x_aug, gradients only into the augmentor), then a student
        update with KD on x[:c] and those same x_aug, with the teacher's outputs on them reused (the
        teacher's forward pass is most of a step's cost: 21 of KD's 29 ms on the toy, 2 CPU threads).

    In both schedules the student's loss is `losses.hard_kd`: the label term (weight 1 - alpha) on x[:c] only,
    the augmented images distilled alone, so the augmentor's objective never holds the labels or alpha and an
    image the augmentor changed is never trained towards its old label (HARD-mix's pastes).

    The augmentor updates on every `hard_every`-th step; on the others it only draws fresh augmentations
    (no gradients), and the teacher runs on x[:c] and x_aug only: each image once, as under KD.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..augment.hard import reverse_grad
from ..losses import augmentor_objective, ce_loss, game_metrics, hard_kd, hard_loss, kd_loss
from ..models import eval_mode
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


def distil_step(s: Session, x: Tensor, y: Tensor, knobs: dict, step: int, measure: bool = False,
                known: Tensor | None = None) -> StepResult:
    """One optimiser step on batch (x, y); `measure` adds HARD's game metrics (an extra student pass).
    known: the teacher's outputs on x when they are kept (`targets.TeacherTargets`: only for `--augment
    none`, where x is what the teacher would be asked about), so the step need not run the teacher on it."""
    with s.autocast:  # CutMixPick scores its candidates with the models: the same arithmetic as the step
        x_aug, y_aug = s.augment(x, y, s.teacher, s.student)
    if s.cfg.views == "original+augmented":  # paper 2: KD on the originals and their augmented views
        x, y = torch.cat([x, x_aug]), torch.cat([y, y_aug])
    else:
        x, y = x_aug, y_aug
    if known is not None and s.cfg.views == "original+augmented":
        known = torch.cat([known, known])
    if s.augmentor is not None:
        return _hard_step(s, x, y, knobs, step, measure, known)
    with s.autocast:
        if known is not None:
            t_logits = known
        elif s.teacher is not None:
            with torch.no_grad():
                t_logits = s.teacher_step(x)
        s_logits = s.student_ddp(x)
        if s.cfg.loss == "kd":
            loss = kd_loss(s_logits, t_logits, y, knobs["temperature"], knobs["alpha"])
        else:
            loss, t_logits = ce_loss(s_logits, y), None
    descend(loss, s.scaler, s.optimizer)
    return StepResult(loss.detach(), x, x, y, t_logits, s_logits.detach())


def descend(loss: Tensor, scaler, *optimizers, inputs=None) -> None:
    """One gradient step of `optimizers` on `loss` (only into `inputs`, if given); through the fp16
    GradScaler when there is one, which skips the step if a gradient overflowed."""
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward(inputs=inputs)
        for optimizer in optimizers:
            optimizer.step()
        return
    scaler.scale(loss).backward(inputs=inputs)
    for optimizer in optimizers:
        scaler.step(optimizer)
    scaler.update()


def _draw(s: Session, src: Tensor, t_src: Tensor, knobs: dict, grad: bool):
    """The augmentor's draw for `src`: (x_aug, params, the teacher on x_aug or None).

    With k = `augmentor.candidates` > 1 the augmentor draws k candidates per image and keeps, per image,
    the one that scores highest on its own objective (`losses.augmentor_objective`, no gradients): per-sample
    restarts, which reach hard modes that the learned distribution only visits now and then (an inverted
    digit behind the grey barrier). The kept candidates carry the augmentor's graph, and the teacher's
    outputs on them are returned so the step need not run the teacher again.
    """
    k, m = s.augmentor.candidates, src.shape[0]
    # The augmentor runs in float32 even under bf16 autocast: it is tiny, and in bf16 its game died on
    # CUDA (within 100 steps every sample got the same shift and its gradients were exactly 0).
    with (contextlib.nullcontext() if grad else torch.no_grad()), torch.autocast(s.device.type, enabled=False):
        augmentor = s.augmentor_ddp if grad else s.augmentor  # gradients all-reduced under torchrun
        x_aug, params = augmentor(src if k == 1 else src.repeat(k, *[1] * (src.dim() - 1)))
    if k == 1:
        return x_aug, params, None
    with torch.no_grad(), eval_mode(s.student):  # scoring leaves the student's BatchNorm statistics alone
        t_aug = s.teacher_step(x_aug)
        score = augmentor_objective(t_aug, s.student(x_aug), t_src.repeat(k, 1), knobs["temperature"],
                                    knobs["hard_lambda"], reduction="none")
        keep = score.view(k, m).argmax(0) * m + torch.arange(m, device=src.device)
    # mix's "partner" indexes the k-fold batch; modulo m it names the same source image
    params = {name: v[keep] % m if name == "partner" else v[keep] for name, v in params.items()}
    return x_aug[keep], params, t_aug[keep]


def _hard_step(s: Session, x: Tensor, y: Tensor, knobs: dict, step: int, measure: bool,
               known: Tensor | None) -> StepResult:
    n = x.shape[0]
    m = max(1, round(s.augmentor.share * n))
    c = n - m
    src, temperature = x[c:], knobs["temperature"]
    update = step % s.cfg.hard_every == 0
    single = update and s.cfg.hard_schedule == "reverse"  # both players in one pass
    game = update or measure or s.augmentor.candidates > 1  # steps that need the teacher on the sources
    with s.autocast:
        if known is not None:  # the kept outputs on the clean batch: KD targets and the game's reference
            t_x = known
        else:
            with torch.no_grad():  # KD targets for x[:c]; and where the game is scored, its reference T(x[c:])
                t_x = s.teacher_step(x if game else x[:c])
        t_clean, t_src = t_x[:c], (t_x[c:] if game else None)
        if update and not single:  # the student then learns from the images of the augmentor's update
            x_aug, params, t_aug = _augmentor_update(s, src, t_src, knobs)
        else:
            x_aug, params, t_aug = _draw(s, src, t_src, knobs, grad=single)
        x_in = reverse_grad(x_aug) if single else x_aug
        if single:
            t_aug = s.teacher_step(x_in)  # with the graph: the consistency term's gradient reaches the augmentor
        elif t_aug is None:
            with torch.no_grad():
                t_aug = s.teacher_step(x_aug)
        s_logits = s.student_ddp(torch.cat([x[:c], x_in]))
        if single:
            loss, kd = hard_loss(s_logits, t_clean, t_aug, t_src, y, temperature, knobs["alpha"],
                                 knobs["hard_lambda"])
        else:
            loss = kd = hard_kd(s_logits, torch.cat([t_clean, t_aug]), y, c, temperature, knobs["alpha"])
        extra = {}
        if measure:  # the game in numbers, with the student as it was on this batch (before its update), in
            # eval mode on both sides: measuring leaves its BatchNorm statistics alone
            with torch.no_grad(), eval_mode(s.student):
                extra = game_metrics(t_src, s.student(src), t_aug, s.student(x_aug), temperature)
            extra["spread"] = s.augmentor.spread.detach().clone()
    descend(loss, s.scaler, *([s.optimizer, s.augmentor_optimizer] if single else [s.optimizer]))
    if single:
        s.augmentor.project_()
    # for display, pair each source image with its augmented version and the models' outputs on it
    return StepResult(kd.detach(), src, x_aug.detach(), y[c:], t_aug.detach(), s_logits[c:].detach(),
                      {k: v.detach() for k, v in params.items()}, extra)


def _augmentor_update(s: Session, src: Tensor, t_src: Tensor, knobs: dict):
    """The alternating schedule's augmentor step: ascend `augmentor_objective` on its own forward pass. Only
    the augmentor's parameters receive gradients (the teacher and the student are passed through).
    Returns its draw, detached, and the teacher's outputs on it, for the student's update that follows.
    The student here is the unwrapped module: its weights get no gradient from this pass, so under DDP
    there is nothing of it to all-reduce (the augmentor's own gradients are, through its wrapper)."""
    x_aug, params, _ = _draw(s, src, t_src, knobs, grad=True)
    t_aug = s.teacher_step(x_aug)
    with eval_mode(s.student):  # the augmentor's pass leaves the student's BatchNorm statistics alone
        score = augmentor_objective(t_aug, s.student(x_aug), t_src, knobs["temperature"], knobs["hard_lambda"])
    trainable = [p for p in s.augmentor.parameters() if p.requires_grad]
    descend(-score, s.augmentor_scaler, s.augmentor_optimizer, inputs=trainable)
    s.augmentor.project_()
    return x_aug.detach(), {k: v.detach() for k, v in params.items()}, t_aug.detach()
