"""The shipped teachers load, fit their datasets, and score what their cards say."""
import json

import pytest

from hard_core.assets import ASSETS, shipped_teacher
from hard_core.checkpoint import load_model
from hard_core.config import RunConfig
from hard_core.errors import UserError
from hard_core.train import accuracy, dataset_for

CARDS = sorted(ASSETS.glob("teacher-*.json"))


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
    assert shipped_teacher(card["dataset"], card["canvas"]) == weights
    dataset = dataset_for(RunConfig(dataset=card["dataset"], canvas=card["canvas"]))
    acc, _, _ = accuracy(teacher, {"test": dataset.test})
    assert acc["test"] == pytest.approx(card["test_accuracy"], abs=0.002)
    assert acc["test"] > 0.95
    assert card["command"].startswith("python -m hard_core assets")


def test_missing_shipped_teacher_says_what_exists():
    with pytest.raises(UserError, match="shipped: .*teacher-mnist5k-c40"):
        shipped_teacher("mnist5k", 36)
