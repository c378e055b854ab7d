"""hard_core: the engine of HARD Lab (knowledge distillation with hard augmentations).

>>> import hard_core
>>> student = hard_core.load_student("runs/R")   # eval-mode nn.Module, .input_shape, [0,1] -> logits
"""
__version__ = "0.1.0"
__all__ = ["load_student", "__version__"]


def __getattr__(name):  # lazy, so `import hard_core.config` stays light
    if name == "load_student":
        from .runs.reader import load_student

        return load_student
    raise AttributeError(f"module 'hard_core' has no attribute {name!r}")
