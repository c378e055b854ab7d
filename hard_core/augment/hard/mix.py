"""HARD-mix: learned mixing of each image with a partner from the batch, through per-patch weights.

    x_aug = (1 - m) * x + m * partner,   m = max_weight * (1 - cos r) / 2,   r = net(x, partner, noise) + spread * noise

`net` predicts one raw value per patch (a `patches` x `patches` grid, or `patches` segments in 1D),
upsampled to pixels. Its last layer starts at zero, so with spread 0 every weight is 0: the identity. The
map `(1 - cos r) / 2` keeps each weight in [0, max_weight] without a clamp and never saturates, so no
patch dies. (An earlier straight-through clamp let the raw values run away: mean -0.8 at step 10, -226 at
step 296, and a cell pushed below 0 never mixed again.) The default spread 1 starts every sample with a
random mixing pattern over the whole image, from which the game keeps the hard ones.

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
    def __init__(self, input_shape, patches: int = 4, max_weight: float = 1.0, noise_dim: int = 16,
                 hidden: int = 64, spread: float = 1.0, candidates: int = 1, share: float = 0.5):
        super().__init__(input_shape, spread, candidates=candidates, share=share)
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
        cells = (1 - torch.cos(self.explore(self.net(z)))) / 2
        shape = (n, 1, self.patches) if self.one_d else (n, 1, self.patches, self.patches)
        mask = F.interpolate(cells.view(shape), size=x.shape[2:], mode="nearest")
        m = self.max_weight * mask
        x_aug = (1 - m) * x + m * partner
        return x_aug, {"weight": m.flatten(1).mean(1), "partner": partner_idx}
