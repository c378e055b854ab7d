"""hard_core: the engine of HARD Lab (knowledge distillation with hard augmentations).

>>> import hard_core
>>> run = hard_core.distil(teacher="timm:resnet18@teacher.safetensors", student="mlp", train=my_train_set,
...                        test=my_test_set, hard="affine", steps=600, out="runs/mine")   # see hard_core.distillation
>>> student = hard_core.load_student("runs/R")   # eval-mode nn.Module, .input_shape, [0,1] -> logits
"""
__version__ = "0.1.0"
__all__ = ["distil", "as_dataset", "load_student", "__version__"]


def __getattr__(name):  # lazy, so `import hard_core.config` stays light
    if name == "load_student":
        from .runs.reader import load_student

        return load_student
    if name in ("distil", "as_dataset"):
        from . import distillation as module

        return getattr(module, name)
    raise AttributeError(f"module 'hard_core' has no attribute {name!r}")
