"""The shipped teachers and VAE load, fit their datasets, and match what their cards say."""
import json
import math

import pytest

from hard_core.assets import ASSETS, shipped_teacher
from hard_core.checkpoint import load_model
from hard_core.config import RunConfig
from hard_core.errors import UserError
from hard_core.train import accuracy, dataset_for

from hard_core.worlds import WORLDS

CARDS = sorted(ASSETS.glob("teacher-*.json"))
VAE_CARDS = sorted(ASSETS.glob("vae-*.json"))


def test_every_built_in_dataset_has_a_shipped_teacher():
    names = {p.stem for p in CARDS}
    assert {"teacher-mnist5k-c28", "teacher-mnist5k-c40", "teacher-mnist1d"} <= names


@pytest.mark.parametrize("card_path", CARDS, ids=[p.stem for p in CARDS])
def test_shipped_teacher_matches_its_card(card_path):
    card = json.loads(card_path.read_text())
    weights = card_path.with_suffix(".safetensors")
    assert weights.stat().st_size < 2_000_000
    teacher = load_model(weights)
    assert list(teacher.input_shape) == card["input_shape"]
    assert teacher.spec["model"] == card["architecture"]
    assert shipped_teacher(card["dataset"], card["canvas"], WORLDS[card.get("world", "shift")].teacher) == weights
    dataset = dataset_for(RunConfig(dataset=card["dataset"], canvas=card["canvas"]))
    acc, _, _ = accuracy(teacher, {"test": dataset.test})
    assert acc["test"] == pytest.approx(card["test_accuracy"], abs=0.002)
    assert acc["test"] > 0.95
    assert card["command"].startswith("python -m hard_core assets")


def test_missing_shipped_teacher_says_what_exists():
    with pytest.raises(UserError, match="shipped: .*teacher-mnist5k-c40"):
        shipped_teacher("mnist5k", 36)


@pytest.mark.parametrize("card_path", VAE_CARDS, ids=[p.stem for p in VAE_CARDS])
def test_shipped_vae_card_matches_its_file(card_path):
    """A VAE asset is small, its card says what it is and how it was made, and the card's config is the
    config stored in the safetensors metadata (the one `load_vae` builds from)."""
    from safetensors import safe_open

    weights = card_path.with_suffix(".safetensors")
    card = json.loads(weights.with_suffix(".json").read_text())
    assert weights.stat().st_size <= 2_000_000
    assert card["dataset"] == "mnist5k" and card["canvas"] == 40 and card["kind"] == "vae"
    assert "AutoencoderKL" in card["architecture"] and card["latent_shape"] == [4, 10, 10]
    assert card["command"] == f"python -m hard_core assets --only {card_path.stem}"
    assert set(card["test_mse"]) == {"40", "28"} and 0 < card["test_mse"]["40"] < card["test_mse"]["28"] < 0.01
    with safe_open(str(weights), framework="pt") as f:
        assert json.loads(f.metadata()["config"]) == card["config"]
        assert sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys()) == card["parameters"]


def test_assets_only_unknown_name_is_one_line(capsys, tmp_path):
    from hard_core.cli import main

    assert main(["assets", "--only", "nonsense", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "unknown asset 'nonsense'" in err and "vae-mnist5k" in err
    assert not (tmp_path / "out").exists()  # nothing written, nothing trained
