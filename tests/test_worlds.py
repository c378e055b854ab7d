"""Worlds: each one's nuisance, suite, oracle and teacher; the teacher really holds the invariance."""
import pytest
import torch

from hard_core.augment import build_augment
from hard_core.checkpoint import load_model
from hard_core.config import RunConfig
from hard_core.data import load_dataset, make_suites
from hard_core.data.nuisance import thicken
from hard_core.errors import UserError
from hard_core.train.evaluate import accuracy
from hard_core.teacher import teacher_path
from hard_core.train.setup import suite_spec, train_split
from hard_core.worlds import METHODS, WORLDS, get_world, method_config


@pytest.fixture(scope="module")
def digits():
    return load_dataset("mnist5k", canvas=40)


def test_polarity_and_thickness_suites_are_exact(digits):
    suites = make_suites(digits, {"polarity": 1.0, "thickness": 1})
    assert torch.equal(suites["polarity"].x, 1 - digits.test.x)
    assert torch.equal(suites["thickness"].x, torch.nn.functional.max_pool2d(digits.test.x, 3, 1, 1))
    assert torch.equal(thicken(suites["thickness"].x, 0), suites["thickness"].x)


def test_world_augmentations_draw_per_sample():
    torch.manual_seed(0)
    x, y = torch.rand(200, 1, 12, 12), torch.zeros(200, dtype=torch.long)
    flipped = (build_augment("polarity", num_classes=10)(x, y)[0] - (1 - x)).abs().flatten(1).amax(1) < 1e-6
    assert 60 < flipped.sum() < 140  # about half inverted, the rest untouched
    thick = build_augment("thickness", num_classes=10)(x, y)[0]
    kinds = {(thick[i] - x[i]).sign().sum().sign().item() for i in range(200)}
    assert kinds == {-1.0, 0.0, 1.0}  # thinner, unchanged and thicker samples in one batch
    dot = torch.zeros(1, 1, 41, 41)
    dot[0, 0, 20, 35] = 1.0
    turned = build_augment("rotation", num_classes=10)(dot.expand(64, -1, -1, -1), y[:64])[0]
    rows = turned.flatten(1).argmax(1) // 41
    assert rows.min() < 12 and rows.max() > 28  # the dot swings up and down: angles spread over +-45


def test_worlds_set_suite_teacher_oracle_and_data(digits):
    rot = RunConfig(world="rotation", canvas=40, teacher="default")
    assert suite_spec(rot, digits)["rotation"] == 45 and teacher_path("default", rot).name.endswith("-rotation.safetensors")
    scarce = RunConfig(world="scarce", canvas=40)
    assert len(train_split(scarce, digits)) == 500 and train_split(scarce, digits).y.bincount().tolist() == [50] * 10
    assert len(train_split(RunConfig(**{**scarce.model_dump(), **method_config(get_world("scarce"), "oracle")}),
                           digits)) == 4000
    assert method_config(get_world("polarity"), "oracle") == {"world": "polarity", "augment": "polarity"}
    assert method_config(get_world("rotation"), "hard-affine") == {  # the world's own HARD-affine settings
        "world": "rotation", "hard": "affine", "affine": "rotate", "hard_lambda": 0.0, "hard_candidates": 4}
    assert method_config(get_world("shift"), "hard-affine") == {"world": "shift", "hard": "affine"}
    assert set(METHODS) >= {"kd", "oracle", "hard-colour"}
    with pytest.raises(UserError, match="unknown world 'moon'"):
        get_world("moon")


@pytest.mark.parametrize("world", [w for w in WORLDS if WORLDS[w].strength is not None])
def test_each_world_teacher_holds_its_invariance(world, digits):
    """The shipped teacher of a world reads its nuisance: above 90% on the world's own suite."""
    w = get_world(world)
    cfg = RunConfig(world=world, canvas=40, teacher="default")
    teacher = load_model(teacher_path("default", cfg)).eval()
    suites = make_suites(digits, {w.suite: w.strength}, seed=0)
    acc, _, _ = accuracy(teacher, {"test": digits.test, **suites})
    assert acc[w.suite] > 0.90 and acc["test"] > 0.95, acc
