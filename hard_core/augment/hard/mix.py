"""HARD-mix: learned mixing of each image with a partner from the batch, through predicted patch weights.

    x_aug = (1 - m) * x + m * partner,   m = max_weight * clamp(mask(x, partner, noise), 0, 1)

`mask` predicts one weight per patch (a `patches` x `patches` grid, or `patches` segments in 1D),
upsampled to pixels. Its last layer starts at zero, so m = 0 and the augmentor is the identity at init.
The clamp is straight-through: its forward pass bounds the weights, its backward pass is the identity,
so a patch pushed below 0 (no mixing) still gets the gradient that tells it when mixing starts to pay.
(A first version gated the mask by one learned scalar from 0, projected to [0, 1]: early in training
mixing lowers the disagreement, the scalar was pinned at 0 on the first step and the mask never got a
gradient again; a plain clamp died the same way.)

>>> aug = MixAugmentor((1, 40, 40))
>>> x_aug, p = aug(torch.rand(4, 1, 40, 40))   # p["weight"]: mean mixing weight, p["partner"]: index
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import HardAugmentor, register_augmentor


@register_augmentor("mix")
class MixAugmentor(HardAugmentor):
    def __init__(self, input_shape, patches: int = 4, max_weight: float = 0.5, noise_dim: int = 16,
                 hidden: int = 64):
        super().__init__(input_shape)
        self.one_d = len(input_shape) == 2
        self.patches, self.max_weight, self.noise_dim = patches, max_weight, noise_dim
        cells = patches if self.one_d else patches * patches
        self.net = nn.Sequential(nn.Linear(2 * input_shape[0] * cells + noise_dim, hidden), nn.ReLU(),
                                 nn.Linear(hidden, cells))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        n = x.shape[0]
        partner_idx = (torch.arange(n, device=x.device) + torch.randint(1, max(n, 2), (), device=x.device)) % n
        partner = x[partner_idx]
        pool = F.adaptive_avg_pool1d if self.one_d else F.adaptive_avg_pool2d
        z = torch.cat([pool(x, self.patches).flatten(1), pool(partner, self.patches).flatten(1),
                       self.noise(n, self.noise_dim, x)], 1)
        raw = self.net(z)
        cells = raw + (raw.clamp(0, 1) - raw).detach()  # straight-through clamp
        shape = (n, 1, self.patches) if self.one_d else (n, 1, self.patches, self.patches)
        mask = F.interpolate(cells.view(shape), size=x.shape[2:], mode="nearest")
        m = self.max_weight * mask
        x_aug = (1 - m) * x + m * partner
        return x_aug, {"weight": m.flatten(1).mean(1), "partner": partner_idx}
