"""HARD's unconstrained augmentor: move each image's latent in a FROZEN diffusers AutoencoderKL, then decode.

x_aug = clamp(x + decode(z + delta) - decode(z), 0, 1),   z = posterior mean of x,
delta = eps * sin(head(noise, z) + spread * noise),       head's last conv zero-initialised.

Adding the decoded *change* to x (rather than using decode(z + delta) itself) keeps every detail the VAE
cannot reconstruct, and makes the augmentor exactly the identity with spread 0 (delta = 0). sin bounds
every latent element by eps and never saturates: with tanh, 20% of the elements sat above 0.9 eps by
step 40 and the pixel change stayed near 0.01. The default spread starts every sample at a random edit.

Only the head is trainable; the VAE is neither in `parameters()` nor
in `state_dict()` (a checkpoint holds the head; the VAE comes from the `vae` spec) but moves with `.to()`.
z and decode(z) depend on the image alone, so they are cached per image (`encoding`).

>>> aug = build_augmentor("vae", input_shape=(1, 40, 40))      # the shipped mnist5k VAE
>>> x = torch.rand(8, 1, 40, 40)
>>> x_aug, params = aug(x)
>>> torch.equal(x_aug, x), params["latent_norm"].shape         # (True, torch.Size([8])) at init
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict

import torch
from diffusers import AutoencoderKL
from torch import Tensor, nn

from ...assets import latent_scale, vae_edit_bound
from ...errors import UserError
from ...vae import decode, encode, freeze, load_vae
from .base import HardAugmentor


class VAEAugmentor(HardAugmentor):
    """Options:
    vae: "default" (shipped mnist5k VAE), a VAE .safetensors file, a local diffusers folder, a Hub id
        (see `hard_core.vae.load_vae`), or an `AutoencoderKL` instance.
    eps: bound on every latent element of delta. Default: `VAE_EDIT` (3) times the VAE's latent std. At
        1 std random-sign edits restyle a digit but keep it readable; at 3 they can turn one digit into
        another, which the teacher relabels and the consistency term keeps in check. On scarce data, with
        an 8-16-16 VAE, 3 stds gave the student 91.8% against 89.5% at 1 and 90.6% at 2 (lr 1e-3, λ 1;
        docs/results.md).
    noise_dim: size of the per-sample noise vector, broadcast over the latent grid.
    use_latent: condition the head on z (per-image perturbations) besides the noise.
    hidden: channels of the head's two hidden 3x3 convs.
    spread: starting width of the learned exploration noise on each latent element (0: the identity).
    cache_mb: memory for the per-image cache of z and decode(z) (see `encoding`); 0 turns it off.
    """

    def __init__(self, input_shape, *, vae: str | AutoencoderKL = "default", eps: float | None = None,
                 noise_dim: int = 16, use_latent: bool = True, hidden: int = 32, spread: float = 1.0,
                 candidates: int = 1, share: float = 0.5, cache_mb: float = 256):
        super().__init__(input_shape, spread, candidates=candidates, share=share)
        if len(self.input_shape) != 3:
            raise UserError(f"the vae augmentor needs images (C x H x W); got input shape {self.input_shape}")
        model = freeze(vae) if isinstance(vae, AutoencoderKL) else load_vae(vae)
        name = vae if isinstance(vae, str) else type(vae).__name__
        if model.config.in_channels != self.input_shape[0] or model.config.out_channels != self.input_shape[0]:
            raise UserError(f"VAE '{name}' maps {model.config.in_channels}-channel images but the data has "
                            f"{self.input_shape[0]} channel(s); pass a VAE made for this data")
        if noise_dim < 1 or hidden < 1 or (eps is not None and eps <= 0) or cache_mb < 0:
            raise ValueError(f"need noise_dim >= 1, hidden >= 1, eps > 0, cache_mb >= 0; "
                             f"got {noise_dim}, {hidden}, {eps}, {cache_mb}")
        object.__setattr__(self, "vae", model)  # not a submodule: kept out of parameters() and state_dict()
        self.cache_bytes = int(cache_mb * 2**20)
        self._cache: OrderedDict[bytes, tuple[Tensor, Tensor]] = OrderedDict()  # image bytes -> (z, decode(z))
        self.eps = float(eps) if eps is not None else vae_edit_bound(model.config)
        self.scale = latent_scale(model.config)  # z / scale ~ unit variance at the head's input
        self.noise_dim, self.use_latent = noise_dim, use_latent
        c = model.config.latent_channels
        self.head = nn.Sequential(
            nn.Conv2d(noise_dim + (c if use_latent else 0), hidden, 3, padding=1), nn.SiLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.SiLU(),
            nn.Conv2d(hidden, c, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)  # delta = 0 at init: the identity
        nn.init.zeros_(self.head[-1].bias)

    def _apply(self, fn, *args, **kwargs):  # .to() / .cuda() / .double() also move the hidden VAE
        super()._apply(fn, *args, **kwargs)
        self.vae._apply(fn, *args, **kwargs)
        self._cache.clear()  # its tensors would be on the old device or dtype
        return self

    def train(self, mode: bool = True) -> "VAEAugmentor":
        super().train(mode)
        self.vae.eval()  # frozen: never in training mode
        return self

    def sample_delta(self, z: Tensor) -> Tensor:
        """A latent perturbation for each latent in `z` (N x c x h x w), every element in [-eps, eps]."""
        n, _, h, w = z.shape
        feats = self.noise(n, self.noise_dim, z)[:, :, None, None].expand(-1, -1, h, w)
        if self.use_latent:
            feats = torch.cat([feats, z / self.scale], 1)
        return self.eps * torch.sin(self.explore(self.head(feats)))

    def apply_delta(self, x: Tensor, z: Tensor, delta: Tensor, base: Tensor | None = None) -> Tensor:
        """x plus the decoded change that `delta` makes to `z`, clamped to [0, 1]; `base` is decode(z)."""
        size = x.shape[-2:]
        if base is None:
            with torch.no_grad():
                base = decode(self.vae, z, size)
        return (x + (decode(self.vae, z + delta, size) - base)).clamp(0, 1)

    @torch.no_grad()
    def encoding(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(z, decode(z)) of a batch, from a cache keyed by each image's bytes; least recently used images
        leave it first once it holds `cache_mb`. The VAE is frozen, so both depend on the image alone, and
        a training set that fits is encoded and decoded once: from its second epoch on, a HARD-vae step
        decodes only the edits, one VAE pass instead of three. The alternating schedule's two draws of a
        batch share one encoding too. (Keying costs a copy to the CPU on GPUs, a hash per image.)"""
        rows = x.detach().cpu().contiguous().view(x.shape[0], -1).numpy()
        keys = [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in rows]
        cache, missing = self._cache, {}
        for i, key in enumerate(keys):
            if key not in cache:
                missing.setdefault(key, i)
        if missing:
            z = encode(self.vae, x[list(missing.values())])
            base = decode(self.vae, z, x.shape[-2:])
            for j, key in enumerate(missing):
                cache[key] = (z[j].clone(), base[j].clone())
        pairs = [cache[key] for key in keys]
        for key in keys:
            cache.move_to_end(key)
        per_image = sum(t.numel() * t.element_size() for t in pairs[0])
        while cache and len(cache) * per_image > self.cache_bytes:
            cache.popitem(last=False)
        return torch.stack([z for z, _ in pairs]), torch.stack([b for _, b in pairs])

    def forward(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        z, base = self.encoding(x)
        delta = self.sample_delta(z)
        x_aug = self.apply_delta(x, z, delta, base)
        return x_aug, {"latent_norm": delta.detach().flatten(1).norm(dim=1),
                       "pixel_change": (x_aug - x).detach().abs().flatten(1).mean(1)}
