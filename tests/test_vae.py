"""The shipped diffusers VAE: reconstructs digits as its card says, encodes any canvas, drives the `vae`
HARD augmentor (identity at init, bounded, head-only checkpoints), and fails with one-line UserErrors."""
import json

import huggingface_hub.constants
import pytest
import torch
from safetensors.torch import save_file

from hard_core.assets import ASSETS
from hard_core.augment.hard import build_augmentor
from hard_core.augment.hard.vae import VAEAugmentor
from hard_core.data import load_dataset
from hard_core.errors import UserError
from hard_core.vae import CONFIG, decode, encode, load_vae, load_vae_file, reconstruction_mse

CARD = json.loads((ASSETS / "vae-mnist5k.json").read_text())


@pytest.fixture(scope="module")
def vae():
    return load_vae("default")


@pytest.fixture(scope="module")
def data():
    return {c: load_dataset("mnist5k", canvas=c).test for c in (40, 28)}


def test_shipped_vae_is_frozen_in_eval_mode(vae):
    assert not vae.training and not any(p.requires_grad for p in vae.parameters())
    assert vae.config.latent_channels == 4 and vae.config.in_channels == 1


@pytest.mark.parametrize("canvas,bound", [(40, 0.003), (28, 0.006)])
def test_reconstruction_error_is_small_and_matches_the_card(vae, data, canvas, bound):
    """Per-pixel MSE on all 1,000 mnist5k test digits: below the bound and within 5% of the card."""
    mse = reconstruction_mse(vae, data[canvas].x)
    assert mse < bound
    assert mse == pytest.approx(CARD["test_mse"][str(canvas)], rel=0.05)
    blank = float(data[canvas].x.pow(2).mean())  # predicting an empty canvas: the error to beat
    assert mse < blank / 20


def test_latent_shapes_and_padding(vae, data):
    """4 x 10 x 10 latents at canvas 40 (the card's shape); 28 x 28 gives 7 x 7; sizes that are not a
    multiple of 4 are padded for the encoder and cropped back by decode, still reconstructing well."""
    x40, x28 = data[40].x[:16], data[28].x[:16]
    z = encode(vae, x40)
    assert z.shape == (16, 4, 10, 10) and list(z.shape[1:]) == CARD["latent_shape"]
    assert torch.equal(encode(vae, x40), z)  # the posterior mean: deterministic
    assert decode(vae, z, x40.shape[-2:]).shape == x40.shape
    z28 = encode(vae, x28)
    assert z28.shape == (16, 4, 7, 7) and decode(vae, z28, (28, 28)).shape == (16, 1, 28, 28)
    x38 = x40[..., 1:39, 1:39]
    z38 = encode(vae, x38)
    assert z38.shape == (16, 4, 10, 10)
    out = decode(vae, z38, (38, 38))
    assert out.shape == (16, 1, 38, 38) and (out.clamp(0, 1) - x38).pow(2).mean() < 0.003


def test_vae_augmentor_is_the_identity_with_spread_zero(data):
    torch.manual_seed(0)
    aug = build_augmentor("vae", input_shape=(1, 40, 40), spread=0.0)
    x = data[40].x[:8]
    x_aug, params = aug(x)
    assert torch.equal(x_aug, x)
    assert params["latent_norm"].shape == (8,) and params["latent_norm"].max() == 0


def test_vae_augmentor_output_stays_in_range_and_delta_is_bounded(data):
    """With a randomised head (far from init) and a large eps: x_aug changes, yet stays in [0, 1], and
    every latent element of delta is within eps."""
    torch.manual_seed(0)
    aug = VAEAugmentor((1, 40, 40), eps=3.0)
    with torch.no_grad():
        for p in aug.head.parameters():
            p.normal_(0, 1)
    x = data[40].x[:8]
    x_aug, params = aug(x)
    assert x_aug.min() >= 0 and x_aug.max() <= 1
    assert params["pixel_change"].min() > 0.01
    delta = aug.sample_delta(encode(aug.vae, x))
    assert delta.abs().max() <= 3.0 + 1e-6 and delta.abs().max() > 2.0


def test_vae_augmentor_checkpoints_hold_only_the_head_and_to_moves_the_vae():
    aug = VAEAugmentor((1, 40, 40))
    keys = list(aug.state_dict())
    assert keys and all(k.startswith("head.") or k == "spread" for k in keys)  # the head and its spread
    assert sum(p.numel() for p in aug.parameters()) == sum(p.numel() for p in aug.head.parameters()) + 1
    assert sum(p.numel() for p in aug.parameters()) < 0.5 * CARD["parameters"]  # the VAE (60k) is not in it
    aug.train()
    assert aug.training and not aug.vae.training  # the frozen VAE never trains
    aug.double()
    assert next(aug.vae.parameters()).dtype == torch.float64 and aug.head[0].weight.dtype == torch.float64
    x_aug, _ = aug(torch.rand(2, 1, 40, 40, dtype=torch.float64))
    assert x_aug.dtype == torch.float64


def test_encodings_are_cached_per_image_by_content_and_bounded(data):
    """The cache returns what a fresh encoding gives, encodes only images it has not seen (by their bytes,
    not by tensor identity), forgets the least recently used beyond `cache_mb`, and empties on `.to()`."""
    aug = VAEAugmentor((1, 40, 40))
    x = data[40].x[:16]
    z, base = aug.encoding(x)
    assert torch.allclose(z, encode(aug.vae, x), atol=1e-5) and torch.allclose(base, decode(aug.vae, z, (40, 40)))
    calls = []
    real_encode = aug.vae.encode
    aug.vae.encode = lambda images: calls.append(len(images)) or real_encode(images)
    z2, _ = aug.encoding(torch.cat([x[8:].clone(), data[40].x[16:24]]))  # 8 seen (a copy), 8 new
    assert calls == [8] and torch.equal(z2[:8], z[8:]) and len(aug._cache) == 24
    edited = x[:1].clone()
    edited[0, 0, 20, 20] += 0.5  # one pixel changed: a different image
    assert not torch.equal(aug.encoding(edited)[0], z[:1]) and calls == [8, 1]
    small = VAEAugmentor((1, 40, 40), cache_mb=10 * 8000 / 2**20)  # 10 images of 4x10x10 + 1x40x40 floats
    small.encoding(x)
    assert len(small._cache) == 10
    aug.double()
    assert not aug._cache


def one_line(excinfo):
    message = str(excinfo.value)
    assert message and "\n" not in message, message
    return message


def test_bad_vae_files_are_one_line_user_errors(tmp_path):
    """Corrupt bytes, a plain safetensors file, a config diffusers rejects, weights that do not fit."""
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"definitely not a safetensors file")
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(3)}, str(plain))
    bad_config = tmp_path / "bad_config.safetensors"
    save_file({"w": torch.zeros(3)}, str(bad_config), metadata={"config": json.dumps({"wobble": 1})})
    wrong_weights = tmp_path / "wrong_weights.safetensors"
    save_file({"w": torch.zeros(3)}, str(wrong_weights), metadata={"config": json.dumps(CONFIG)})
    cases = [(corrupt, "is not a VAE written by hard_core"), (plain, "no VAE config in its metadata"),
             (bad_config, "not a valid AutoencoderKL config"), (wrong_weights, "weights do not match its config")]
    for path, message in cases:
        for load in (load_vae, load_vae_file):
            with pytest.raises(UserError) as e:
                load(str(path))
            assert message in one_line(e) and str(path) in one_line(e)


@pytest.mark.parametrize("spec", ["/no/such/vae.safetensors", "missing-vae.safetensors",
                                  "runs/typo/vae.safetensors"])
def test_missing_vae_paths_are_not_found_errors(spec):
    """A missing file is 'no such file', never an attempt to download it from the Hub."""
    with pytest.raises(UserError) as e:
        load_vae(spec)
    assert "no such file or folder" in one_line(e)


def test_hub_id_offline_fails_fast_with_one_clear_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import time
    with pytest.raises(UserError) as e:
        load_vae("someone/some-vae")
    message = one_line(e)
    assert "someone/some-vae" in message and "offline" in message and "download" in message


def test_vae_for_other_data_is_a_user_error():
    """The 1-channel digit VAE cannot serve 3-channel images; 1D signals cannot use a VAE at all."""
    with pytest.raises(UserError) as e:
        VAEAugmentor((3, 32, 32))
    assert "1-channel" in one_line(e) and "3 channel" in one_line(e)
    with pytest.raises(UserError) as e:
        build_augmentor("vae", input_shape=(1, 40))
    assert "needs images" in one_line(e)
