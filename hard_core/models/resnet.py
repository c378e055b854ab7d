"""ResNets: a CIFAR-style ResNet-18 (3x3 stem, no max-pool) and torchvision's ImageNet ResNets.

torchvision's models are built untrained here; users who bring weights load them as a checkpoint
(safetensors) through `--teacher FILE`.
"""
from torch import nn
from torchvision import models as tvm

from .registry import register_model


def _cifar_resnet18(input_shape, num_classes):
    net = tvm.resnet18(num_classes=num_classes)
    # 32x32 inputs: a 3x3 stride-1 stem and no max-pool keep spatial detail (the usual CIFAR variant).
    net.conv1 = nn.Conv2d(input_shape[0], 64, 3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net


register_model("resnet18-cifar")(_cifar_resnet18)


def _torchvision(arch):
    def build(input_shape, num_classes):
        net = getattr(tvm, arch)(num_classes=num_classes)
        if input_shape[0] != 3:
            net.conv1 = nn.Conv2d(input_shape[0], 64, 7, stride=2, padding=3, bias=False)
        return net

    return build


for _arch in ("resnet18", "resnet34", "resnet50"):
    register_model(_arch)(_torchvision(_arch))
