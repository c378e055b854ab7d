"""A CIFAR-style ResNet-18 (3x3 stem, no max-pool), for 32x32 inputs.

torchvision's and timm's own architectures are sources (`torchvision:resnet18`, `timm:resnet18`, see
`external.py`), and a teacher of theirs comes with its weights: `--teacher torchvision:resnet18@FILE`.
"""
from torch import nn
from torchvision import models as tvm

from .registry import register_model


@register_model("resnet18-cifar")
def cifar_resnet18(input_shape, num_classes):
    net = tvm.resnet18(num_classes=num_classes)
    # 32x32 inputs: a 3x3 stride-1 stem and no max-pool keep spatial detail (the usual CIFAR variant).
    net.conv1 = nn.Conv2d(input_shape[0], 64, 3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net
