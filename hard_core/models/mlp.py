"""MLP student: no convolution, so no built-in shift equivariance; it must learn it from data."""
from math import prod

from torch import nn

from .registry import register_model


@register_model("mlp")
def mlp(input_shape, num_classes, hidden: int = 512, depth: int = 2):
    """Flatten, then `depth` hidden layers of `hidden` units (works for 2D images and 1D signals)."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = prod(input_shape)
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
        width = hidden
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)
