"""The frozen teacher's outputs on the un-augmented training images, each computed once and reused.

Plain KD shows the teacher the same training images every epoch, and a frozen teacher's answer never
changes, yet its forward pass is most of a KD step (34 of 46 ms on the toy, one CPU thread). So when the
student's batch is the training images themselves (`--augment none`: plain KD, and the clean share and the
consistency reference of HARD), the teacher runs on a batch only if it holds an image it has not seen yet,
and each image's logits are kept, on the device, for every later epoch. From the second epoch on a KD step
costs only the student.

Which batch computes an image's row is a function of (seed, step, rank) alone, so a resumed run that replays
those first sightings (`replay`) continues with bit-identical targets. The kept logits cost N x classes
numbers: data sets above MAX_BYTES (ImageNet's 1.28M x 1000) and streamed data are not kept.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..data.stream import EpochSampler, shard

MAX_BYTES = 512 << 20  # kept logits at most: CIFAR-100's 50k x 100 floats are 20 MB


class TeacherTargets:
    """`targets(step, x)`: the teacher's logits on step `step`'s batch `x` (this rank's part), from the kept
    rows where it has seen the images before. Build with `TeacherTargets.maybe(session)`."""

    def __init__(self, s):
        self.s, self.n = s, len(s.train)
        self.sampler = EpochSampler(self.n, s.cfg.batch_size, s.cfg.seed)  # on the CPU: no device sync per step
        self.known = torch.zeros(self.n, dtype=torch.bool)
        self.logits: Tensor | None = None

    @classmethod
    def maybe(cls, s) -> "TeacherTargets | None":
        """The session's kept targets, or None where they do not apply: no teacher, augmented batches
        (`--augment` other than none), streamed data, or more than MAX_BYTES of logits."""
        if s.teacher is None or s.cfg.augment != "none" or s.streamed:
            return None
        if len(s.train) * s.dataset.num_classes * 4 > MAX_BYTES:
            return None
        return cls(s)

    def _indices(self, step: int) -> Tensor:
        return shard(self.sampler.indices(step), self.s.dist.rank, self.s.dist.world)

    def __call__(self, step: int, x: Tensor) -> Tensor:
        idx = self._indices(step)
        new = ~self.known[idx]
        if bool(new.any()):
            with torch.no_grad(), self.s.autocast:
                out = self.s.teacher_step(x)  # the whole batch, as a step without kept targets runs it
            if self.logits is None:
                self.logits = torch.empty(self.n, out.shape[-1], dtype=out.dtype, device=out.device)
            fresh = idx[new]
            self.logits[fresh.to(out.device)] = out[new.to(out.device)]
            self.known[fresh] = True
        return self.logits[idx.to(self.logits.device)]

    def replay(self, start: int) -> None:
        """Fill the rows the steps up to `start` filled (on resume): the same batches, the same arithmetic."""
        for step in range(1, start + 1):
            if bool(self.known.all()):
                return
            idx = self._indices(step)
            if not bool(self.known[idx].all()):
                self(step, self.s.train.get(idx.to(self.s.train.x.device))[0])
