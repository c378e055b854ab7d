import pytest
import torch

from hard_core.errors import UserError
from hard_core.models import build_model, list_models


@pytest.mark.parametrize("shape", [(1, 40, 40), (1, 40)])
@pytest.mark.parametrize("name", ["cnn", "mlp", "small-cnn"])
def test_models_map_2d_and_1d_inputs_to_logits(name, shape):
    m = build_model(name, input_shape=shape, num_classes=10)
    assert m.input_shape == shape
    assert m(torch.rand(3, *shape)).shape == (3, 10)


def test_resnets_and_registry():
    assert {"cnn", "mlp", "small-cnn", "resnet18-cifar", "timm:<architecture>",
            "torchvision:<architecture>"} <= set(list_models())
    m = build_model("resnet18-cifar", input_shape=(3, 32, 32), num_classes=100)
    assert m(torch.rand(2, 3, 32, 32)).shape == (2, 100)
    m = build_model("torchvision:resnet18", input_shape=(1, 64, 64), num_classes=5)  # grey fed into 3 channels
    assert m.spec["size"] == [3, 64, 64] and m(torch.rand(2, 1, 64, 64)).shape == (2, 5)


def test_normalization_lives_inside_the_model():
    m = build_model("mlp", input_shape=(1, 4, 4), num_classes=2, mean=[0.2], std=[0.5])
    x = torch.rand(2, 1, 4, 4)
    assert torch.allclose(m.normalize(x), (x - 0.2) / 0.5)
    assert "normalize.mean" in m.state_dict()  # travels with checkpoints


def test_unknown_model_is_a_user_error():
    with pytest.raises(UserError, match="unknown model 'vit'"):
        build_model("vit", input_shape=(1, 28, 28), num_classes=10)
