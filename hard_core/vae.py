"""A small diffusers `AutoencoderKL` for the built-in digits: build, train, save, load; plus `load_vae`,
which also opens a local diffusers folder or (online) a Hugging Face Hub id.

Images outside this module are float [0, 1]; diffusers VAEs expect [-1, 1], so `encode` / `decode`
convert, and they pad H and W up to the VAE's downsampling factor (cropping the decoded image back).

>>> vae = load_vae("default")                          # assets/vae-mnist5k.safetensors, eval mode, frozen
>>> x = load_dataset("mnist5k", canvas=40).test.x[:8]  # 8 x 1 x 40 x 40
>>> z = encode(vae, x)                                 # posterior mean, 8 x 4 x 10 x 10
>>> decode(vae, z, x.shape[-2:]).shape                 # torch.Size([8, 1, 40, 40]), ~x
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from .assets import ASSETS, VAE_NAME
from .checkpoint import atomic_write, write_json
from .errors import UserError
from .jsonfile import parse

# Tiny on purpose: 60k parameters (0.25 MB in float32), a 4 x 10 x 10 latent at canvas 40 (two 2x
# downsamplings). Its passes are nearly all of a HARD-vae step's cost: 8-16-16 channels encode 64 digits
# in 16 ms and decode them in 38 ms on 2 CPU threads, against 49 and 108 ms with twice the channels (test
# MSE 0.0015 against 0.0011). No attention in the mid block: on 10 x 10 latents it cost ~35% more time
# for no visible gain. 4 groups divide 8 and 16.
CONFIG = dict(in_channels=1, out_channels=1, down_block_types=["DownEncoderBlock2D"] * 3,
              up_block_types=["UpDecoderBlock2D"] * 3, block_out_channels=[8, 16, 16], layers_per_block=1,
              latent_channels=4, norm_num_groups=4, sample_size=40, mid_block_add_attention=False)


@dataclass
class VAETrainConfig:
    steps: int = 800        # ~13 epochs of 4,000 digits; ~3 min on 2 shared CPU cores
    batch: int = 64
    lr: float = 2e-3        # peak of a one-cycle schedule (10% warm-up)
    beta: float = 1e-3      # KL weight per pixel: keeps the posterior std ~0.3 of a latent std ~1
    max_shift: int = 6      # canvas-40 digits shifted by up to 6 px: what the shift suites and HARD produce
    max_shift_28: int = 2   # every other batch is canvas-28 digits (borders near the edge), shifted <= 2 px
    augment: str = ""       # a world's nuisance on top (e.g. "polarity"): a VAE for that world's teacher data
    seed: int = 0
    threads: int = 2


def build_vae(**overrides) -> AutoencoderKL:
    """The shipped architecture (`CONFIG`) with any config keys overridden, randomly initialised."""
    return AutoencoderKL(**{**CONFIG, **overrides})


def _factor(vae: AutoencoderKL) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)


def encode(vae: AutoencoderKL, x: Tensor) -> Tensor:
    """Posterior mean of [0, 1] images `x` (N x C x H x W); H, W are padded up to the VAE's factor."""
    f = _factor(vae)
    pad_h, pad_w = -x.shape[-2] % f, -x.shape[-1] % f
    if pad_h or pad_w:  # replicate: black digit borders stay black, natural images get no artificial edge
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return vae.encode(x * 2 - 1).latent_dist.mean


def decode(vae: AutoencoderKL, z: Tensor, size: tuple[int, int] | None = None) -> Tensor:
    """Images in [0, 1] units (not clamped) decoded from latents `z`, cropped to `size` (H, W)."""
    x = (vae.decode(z).sample + 1) / 2
    return x if size is None else x[..., : size[0], : size[1]]


@torch.no_grad()
def reconstruction_mse(vae: AutoencoderKL, x: Tensor, batch: int = 250) -> float:
    """Mean squared error per pixel, in [0, 1] units, of decode(posterior mean) clamped to [0, 1]."""
    total = 0.0
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        total += (decode(vae, encode(vae, xb), xb.shape[-2:]).clamp(0, 1) - xb).pow(2).sum().item()
    return total / x.numel()


@torch.no_grad()
def latent_stats(vae: AutoencoderKL, x: Tensor, batch: int = 500) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the posterior means of `x`."""
    z = torch.cat([encode(vae, x[i:i + batch]) for i in range(0, len(x), batch)])
    return z.mean((0, 2, 3)).tolist(), z.std((0, 2, 3)).tolist()


def train_vae(cfg: VAETrainConfig = VAETrainConfig(), log: Callable[[str], None] = print
              ) -> tuple[AutoencoderKL, dict]:
    """Train the shipped VAE on mnist5k train digits (CPU, deterministic for a fixed seed and threads).

    Returns the eval-mode VAE, with the latent statistics written into its config, and a card dict:
    config, test MSE at canvas 40 and 28, latent std, seconds.
    """
    from .augment import Shift, build_augment  # lazy: hard_core.augment is not needed just to load a VAE
    from .data import load_dataset

    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        torch.manual_seed(cfg.seed)
        data = {k: load_dataset("mnist5k", canvas=k) for k in (40, 28)}
        vae = build_vae().train()
        opt = torch.optim.Adam(vae.parameters(), lr=cfg.lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.steps, pct_start=0.1)
        extra = build_augment(cfg.augment, num_classes=10) if cfg.augment else None
        start = time.time()
        for step in range(1, cfg.steps + 1):
            canvas, shift = (40, cfg.max_shift) if step % 2 else (28, cfg.max_shift_28)
            x = data[canvas].train.x[torch.randint(0, len(data[canvas].train), (cfg.batch,))]
            x = Shift.apply_params(x, Shift(num_classes=10, max_shift=shift).make_params(x))
            if extra is not None:
                x = extra(x, torch.zeros(len(x), dtype=torch.long))[0]
            post = vae.encode(x * 2 - 1).latent_dist
            mse = (decode(vae, post.sample()) - x).pow(2).mean()
            loss = mse + cfg.beta * post.kl().mean() / x[0].numel()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if step % 100 == 0 or step == cfg.steps:
                log(f"vae{' + ' + cfg.augment if cfg.augment else ''}: step {step}/{cfg.steps}  train mse {mse.item():.4f}  ({time.time() - start:.0f} s)")
        seconds = time.time() - start
        vae.eval()
        mean, std = latent_stats(vae, data[40].train.x)
        config = {**CONFIG, "latents_mean": mean, "latents_std": std, "scaling_factor": len(std) / sum(std)}
        final = AutoencoderKL(**config)
        final.load_state_dict(vae.state_dict())
        freeze(final)
        card = {"config": config, "train": asdict(cfg), "train_seconds": round(seconds, 1),
                "latent_std": sum(std) / len(std),
                "test_mse": {str(k): reconstruction_mse(final, d.test.x) for k, d in data.items()}}
        return final, card
    finally:
        torch.set_num_threads(threads)


def freeze(vae: AutoencoderKL) -> AutoencoderKL:
    """Eval mode, no gradients for its parameters."""
    vae.eval().requires_grad_(False)
    return vae


def save_vae(vae: AutoencoderKL, path: str | Path, card: dict) -> None:
    """Write `path` (.safetensors, float32 weights, the config JSON in its metadata) and the JSON card
    beside it (`card` plus the config, dtype and parameter count)."""
    path = Path(path)
    config = {k: v for k, v in vae.config.items() if not k.startswith("_")}
    tensors = {k: v.detach().float().contiguous().cpu() for k, v in vae.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"config": json.dumps(config)}))
    write_json(path.with_suffix(".json"), {**card, "config": config, "dtype": "float32",
                                           "parameters": sum(v.numel() for v in tensors.values())})


def load_vae_file(path: str | Path) -> AutoencoderKL:
    """A VAE written by `save_vae`: `AutoencoderKL(**config)` plus its safetensors weights (no pickle)."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            config, _ = parse((f.metadata() or {})["config"])
            if not isinstance(config, dict):
                raise KeyError("config")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except KeyError:
        raise UserError(f"{path} is not a VAE written by hard_core (no VAE config in its metadata)") from None
    except (SafetensorError, OSError) as e:
        raise UserError(f"{path} is not a VAE written by hard_core ({str(e).splitlines()[0] if str(e) else e!r})"
                        ) from None
    try:  # a config diffusers rejects (unknown keys, not a mapping, bad sizes) is the file's fault, not a bug
        vae = AutoencoderKL(**config)
    except (TypeError, ValueError) as e:
        raise UserError(f"{path}: its metadata config is not a valid AutoencoderKL config ({str(e).splitlines()[0]})"
                        ) from None
    try:
        vae.load_state_dict(tensors)
    except RuntimeError as e:
        raise UserError(f"{path}: weights do not match its config ({str(e).splitlines()[0]})") from None
    return vae


def load_vae(spec: str = "default", device: str | torch.device = "cpu") -> AutoencoderKL:
    """A frozen, eval-mode AutoencoderKL on `device`.

    spec: "default" (the shipped `assets/vae-mnist5k.safetensors`), the name of another shipped VAE
    (`vae-mnist5k-polarity`: trained on a world's teacher distribution), a .safetensors file written by
    `save_vae`, a local diffusers folder (with config.json and safetensors weights), or a Hugging Face
    Hub id such as "stabilityai/sd-vae-ft-mse" (optionally "owner/name/subfolder"; needs the network or
    the local Hub cache).

    >>> load_vae("default").config.latent_channels   # 4
    """
    shipped = ASSETS / f"{VAE_NAME if spec == 'default' else spec}.safetensors"
    path = shipped if spec == "default" or ("/" not in spec and shipped.is_file()) else Path(spec).expanduser()
    if path.is_file():
        vae = load_vae_file(path)
    elif path.is_dir():
        try:
            vae = AutoencoderKL.from_pretrained(str(path), use_safetensors=True, low_cpu_mem_usage=False)
        except (OSError, ValueError) as e:
            raise UserError(f"cannot load a diffusers AutoencoderKL from {path}: {str(e).splitlines()[0]}"
                            ) from None
    elif spec == "default":
        raise UserError(f"the shipped VAE {path} is missing; regenerate it with "
                        f"`python -m hard_core assets --only {VAE_NAME}`")
    elif _looks_like_hub_id(spec):
        parts = spec.split("/")
        repo, sub = "/".join(parts[:2]), "/".join(parts[2:]) or None
        try:
            vae = AutoencoderKL.from_pretrained(repo, subfolder=sub, use_safetensors=True, low_cpu_mem_usage=False)
        except (OSError, ValueError) as e:
            raise UserError(f"could not download the VAE '{spec}' from the Hugging Face Hub (offline, or no "
                            f"such AutoencoderKL with safetensors weights: {str(e).splitlines()[0]}); "
                            "download it elsewhere and pass its local folder") from None
    else:
        raise UserError(f"VAE '{spec}': no such file or folder (and not a Hub id like 'owner/name')")
    return freeze(vae.to(device))


def _looks_like_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    # a path to a .safetensors file is never a Hub id: a missing one is a missing file, not a download
    return (len(parts) >= 2 and not spec.startswith((".", "/", "~")) and not spec.endswith(".safetensors")
            and all(parts) and all(c.isalnum() or c in "-_." for c in "".join(parts)))
