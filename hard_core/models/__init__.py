"""Model registry: `@register_model("name")` on a builder, `build_model(name, ...)` to make one.

Every model maps float inputs in [0, 1] to logits, normalises inside (`Normalize`), and records
`input_shape` plus the exact arguments that built it (`spec`), so a checkpoint rebuilds it from JSON.
Models of other libraries are sources: `timm:<architecture>`, `torchvision:<architecture>` (`external.py`).

>>> m = build_model("mlp", input_shape=(1, 28, 28), num_classes=10)
>>> m(torch.rand(2, 1, 28, 28)).shape
torch.Size([2, 10])
>>> build_model("timm:resnet18", input_shape=(1, 40, 40), num_classes=10)   # untrained, 1 channel
"""
from __future__ import annotations

from .registry import Classifier, Normalize, build_model, eval_mode, list_models, register_model
from . import cnn, external, mlp, resnet  # noqa: E402,F401  (registers the built-in models and the sources)

__all__ = ["Classifier", "Normalize", "build_model", "eval_mode", "list_models", "register_model"]
