import pytest
import torch

from hard_core.checkpoint import load_checkpoint, load_model, save_checkpoint, save_model
from hard_core.errors import UserError
from hard_core.models import build_model


def test_model_round_trip_rebuilds_architecture(tmp_path):
    m = build_model("small-cnn", input_shape=(1, 28, 28), num_classes=10, mean=[0.1], std=[0.3])
    save_model(tmp_path / "m.safetensors", m, {"acc": 0.5})
    back = load_model(tmp_path / "m.safetensors")
    assert back.input_shape == (1, 28, 28) and not back.training
    x = torch.rand(4, 1, 28, 28)
    m.eval()
    assert torch.equal(m(x), back(x))
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves no temp file


def _trained(seed=0):
    torch.manual_seed(seed)
    m = build_model("mlp", input_shape=(1, 8), num_classes=3)
    opt = torch.optim.AdamW(m.parameters(), lr=0.01)
    m(torch.rand(5, 1, 8)).sum().backward()
    opt.step()
    return m, opt


def test_run_checkpoint_round_trip_in_one_file(tmp_path):
    m, opt = _trained()
    save_checkpoint(tmp_path / "c.safetensors", {"student": m, "optimizer": opt}, {"step": 7, "knobs": {"lr": 0.01}})
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]  # one file, no temp left behind
    m2, opt2 = _trained(seed=1)
    assert load_checkpoint(tmp_path / "c.safetensors", {"student": m2, "optimizer": opt2})["step"] == 7
    a, b = opt.state_dict(), opt2.state_dict()
    assert b["param_groups"][0]["lr"] == 0.01
    for k in a["state"]:
        assert torch.equal(a["state"][k]["exp_avg"], b["state"][k]["exp_avg"])
    assert all(torch.equal(p, q) for p, q in zip(m.parameters(), m2.parameters()))
    assert torch.equal(load_model(tmp_path / "c.safetensors")(torch.ones(1, 1, 8)), m.eval()(torch.ones(1, 1, 8)))


def test_run_checkpoint_refuses_missing_parts_other_shapes_and_non_finite_weights(tmp_path):
    m, opt = _trained()
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, {"student": m, "optimizer": opt}, {"step": 3})
    aug, aug_opt = _trained()
    with pytest.raises(UserError, match="this run needs"):  # e.g. resumed with --hard, saved without
        load_checkpoint(path, {"student": m, "optimizer": opt, "augmentor": aug, "augmentor_optimizer": aug_opt})
    wide = build_model("mlp", input_shape=(1, 9), num_classes=3)
    with pytest.raises(UserError, match="shape"):
        load_checkpoint(path, {"student": wide, "optimizer": torch.optim.AdamW(wide.parameters())})
    with torch.no_grad():
        next(m.parameters())[0, 0] = float("nan")
    save_checkpoint(path, {"student": m, "optimizer": opt}, {"step": 3})
    with pytest.raises(UserError, match="NaN or infinite"):
        load_checkpoint(path, {"student": m, "optimizer": opt})
    with pytest.raises(UserError, match="NaN or infinite"):  # as a teacher file too
        load_model(path)


def test_model_files_with_a_broken_spec_are_refused_in_one_line(tmp_path):
    from safetensors.torch import save_file

    weights = {"w": torch.zeros(2)}
    for meta, match in [({"spec": "[]"}, "malformed"), ({"spec": '{"model": "mlp"}'}, "lacks input_shape"),
                        ({}, "plain weights, with no spec naming their architecture"), ({"spec": "{bad json"}, "malformed")]:
        save_file(weights, tmp_path / "m.safetensors", metadata=meta)
        with pytest.raises(UserError, match=match):
            load_model(tmp_path / "m.safetensors")


def test_missing_corrupt_and_mismatched_checkpoints_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_model(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage, not a safetensors file")
    with pytest.raises(UserError, match="corrupt"):
        load_model(bad)
    # a file whose spec says one shape but whose weights are another
    m = build_model("mlp", input_shape=(1, 28, 28), num_classes=10)
    save_model(tmp_path / "m.safetensors", m)
    other = build_model("mlp", input_shape=(1, 40, 40), num_classes=10)
    from hard_core.checkpoint import load_into

    with pytest.raises(UserError, match="shape"):
        load_into(other, tmp_path / "m.safetensors")


def test_an_augmentor_spec_this_version_cannot_build_is_one_clear_line(tmp_path):
    """A run saved by an older HARD-mix (a grid of `patches`) or with a damaged spec: a UserError naming
    the file, not a TypeError from the constructor."""
    from hard_core.augment.hard import build_augmentor
    from hard_core.runs.models import load_augmentor

    m, _ = _trained()
    aug = build_augmentor("mix", input_shape=(1, 8))
    for spec in ({"patches": 4}, {"max_side": 7.0}):
        aug.spec = {"augmentor": "mix", "input_shape": [1, 8], **spec}
        save_checkpoint(tmp_path / "checkpoint.safetensors", {"student": m, "augmentor": aug}, {"step": 1})
        with pytest.raises(UserError, match="mix augmentor cannot be rebuilt by this version"):
            load_augmentor(tmp_path)
    aug.spec = {"augmentor": "mix", "input_shape": [1, 8]}
    save_checkpoint(tmp_path / "checkpoint.safetensors", {"student": m, "augmentor": aug}, {"step": 1})
    assert torch.equal(load_augmentor(tmp_path).net[0].weight, aug.net[0].weight)
