import pytest
import torch

from hard_core.checkpoint import load_model, load_optimizer, save_model, save_optimizer
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


def test_optimizer_round_trip(tmp_path):
    m = build_model("mlp", input_shape=(1, 8), num_classes=3)
    opt = torch.optim.AdamW(m.parameters(), lr=0.01)
    m(torch.rand(5, 1, 8)).sum().backward()
    opt.step()
    save_optimizer(tmp_path / "o.safetensors", opt, {"step": 7})
    opt2 = torch.optim.AdamW(m.parameters(), lr=0.5)
    assert load_optimizer(tmp_path / "o.safetensors", opt2) == {"step": 7}
    a, b = opt.state_dict(), opt2.state_dict()
    assert b["param_groups"][0]["lr"] == 0.01
    for k in a["state"]:
        assert torch.equal(a["state"][k]["exp_avg"], b["state"][k]["exp_avg"])


def test_missing_corrupt_and_mismatched_checkpoints_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_model(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage, not a safetensors file")
    with pytest.raises(UserError, match="corrupt checkpoint"):
        load_model(bad)
    # a file whose spec says one shape but whose weights are another
    m = build_model("mlp", input_shape=(1, 28, 28), num_classes=10)
    save_model(tmp_path / "m.safetensors", m)
    other = build_model("mlp", input_shape=(1, 40, 40), num_classes=10)
    from hard_core.checkpoint import load_into

    with pytest.raises(UserError, match="shape"):
        load_into(other, tmp_path / "m.safetensors")
