"""HARD's learned augmentors: `affine` (spatial transformer), `colour` (intensity maps), `mix` (a learned CutMix),
`vae` (latent edits)."""
from .base import HardAugmentor, build_augmentor, list_augmentors, register_augmentor, reverse_grad
from . import affine, colour, mix  # noqa: E402,F401  (register the augmentors)


@register_augmentor("vae")
def _vae(**options) -> HardAugmentor:
    from .vae import VAEAugmentor  # lazy: diffusers takes seconds to import, and only this one needs it

    return VAEAugmentor(**options)


__all__ = ["HardAugmentor", "build_augmentor", "list_augmentors", "register_augmentor", "reverse_grad"]
