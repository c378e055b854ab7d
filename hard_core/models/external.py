"""Models from the ecosystem: timm and torchvision architectures, and Hugging Face Hub folders.

    --student timm:resnet18                       untrained, built for the data's channels and classes
    --teacher timm:resnet18@weights.safetensors   an architecture and a plain state dict in safetensors
    --teacher torchvision:resnet18@weights.safetensors
    --teacher DIR                                 config.json + model.safetensors, as timm's `save_for_hf`
                                                  or transformers' `save_pretrained` writes them
    --teacher timm:hf-hub:timm/resnet18.a1_in1k   timm:NAME or torchvision:NAME alone: the library's own
                                                  pretrained weights, downloaded (online only)

Every model keeps its own preprocessing: the engine hands it the batch in [0, 1] and the model's
`Classifier` resizes it to the model's input size (when the model declares one) and normalises it with the
model's mean and std (timm's `pretrained_cfg`, transformers' preprocessor_config.json, ImageNet statistics
for torchvision), so teacher and student need not agree. Nothing is unpickled: weights come from
safetensors, configs from JSON; a pickle is refused with the line that converts it.
"""
from __future__ import annotations

import logging
from pathlib import Path

from torch import nn

from ..weights import load_weights, read_weights
from ..errors import UserError
from ..jsonfile import load
from .registry import Classifier, build_model, register_model

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # torchvision's weights' statistics
SOURCES = ("timm", "torchvision")


@register_model("timm:")
def timm_model(arch: str, input_shape, num_classes: int, **args) -> nn.Module:
    """An untrained timm architecture for the data's channels (unless `args` say otherwise) and classes."""
    import timm

    args.setdefault("in_chans", input_shape[0])
    return timm.create_model(arch, pretrained=False, num_classes=num_classes, **args)


@register_model("torchvision:")
def torchvision_model(arch: str, input_shape, num_classes: int, **args) -> nn.Module:
    """An untrained torchvision classifier (3 channels: grey data is repeated into them by `Classifier`)."""
    from torchvision import models

    return models.get_model(arch, weights=None, num_classes=num_classes, **args)


def is_external(ref: str) -> bool:
    """Whether a teacher reference names a model of another library or a Hub folder, not a hard_core file."""
    path = Path(ref)
    if path.is_dir():  # a run directory has a config.json too, beside its events
        return (path / "config.json").is_file() and not (path / "events.jsonl").exists()
    return ref.split(":", 1)[0] in SOURCES + ("hf-hub",)


def load_external(ref: str, input_shape, num_classes: int) -> Classifier:
    """A model of another library with its weights, fed `input_shape` batches in [0, 1], checked against
    `num_classes`: a Hub folder, `timm:NAME@FILE`, `torchvision:NAME@FILE`, or (online) a library's own
    pretrained `timm:NAME`, `torchvision:NAME`, `hf-hub:ID`."""
    input_shape = tuple(int(s) for s in input_shape)
    if Path(ref).is_dir():
        return _hub_folder(Path(ref), input_shape, num_classes)
    source, _, name = ref.partition(":")
    if source == "hf-hub":
        source, name = "timm", ref
    name, _, weights = name.partition("@")
    if not name:
        raise UserError(f"'{ref}' names no architecture: write {source}:NAME, e.g. {source}:resnet18")
    if weights:
        return _with_weights(source, name, Path(weights), input_shape, num_classes, ref)
    return _downloaded(source, name, input_shape, num_classes, ref)


def _with_weights(source: str, arch: str, path: Path, input_shape, num_classes: int, ref: str) -> Classifier:
    """`source:arch` loaded with a plain state dict from `path` (safetensors, no metadata needed)."""
    tensors = read_weights(path)
    args = {}
    if source == "timm":  # the weights say how many channels the first layer takes
        args["in_chans"] = _first_conv_channels(tensors) or input_shape[0]
    mean, std = _library_stats(source, arch)
    model = build_model(f"{source}:{arch}", input_shape=input_shape, num_classes=num_classes, mean=mean, std=std,
                        args=args)
    _check_classes(ref, _classes_in(model.body, tensors), num_classes)
    load_weights(model.body, tensors, path)
    return model


def _hub_folder(folder: Path, input_shape, num_classes: int) -> Classifier:
    """A folder in the Hugging Face Hub layout: timm's (config.json with `architecture`, `model_args`,
    `pretrained_cfg`) or transformers' (config.json with `architectures`)."""
    config = _read_config(folder / "config.json")
    path = folder / "model.safetensors"
    if not path.is_file():
        pickled = [p for p in ("pytorch_model.bin", "model.pth", "model.pt") if (folder / p).is_file()]
        if pickled:
            read_weights(folder / pickled[0])  # refused, with the line that converts it
        raise UserError(f"{folder} holds no model.safetensors (a Hub folder: config.json + model.safetensors)")
    try:
        if "architecture" in config:
            return _timm_folder(folder, config, path, input_shape, num_classes)
        if "architectures" in config:
            return _transformers_folder(folder, config, path, input_shape, num_classes)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as e:  # a value of the wrong type or shape
        raise UserError(f"{folder}/config.json is malformed ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:100] if str(e) else ''})") from None
    raise UserError(f"{folder}/config.json is neither timm's layout ('architecture') nor transformers' "
                    "('architectures')")


def _timm_folder(folder: Path, config: dict, path: Path, input_shape, num_classes: int) -> Classifier:
    pretrained = config.get("pretrained_cfg") if isinstance(config.get("pretrained_cfg"), dict) else config
    args = dict(config.get("model_args") or {})
    classes = config.get("num_classes", pretrained.get("num_classes"))
    _check_classes(str(folder), classes, num_classes)
    args.pop("num_classes", None)
    size = pretrained.get("input_size") or [3, 224, 224]
    args.setdefault("in_chans", int(size[0]))
    size = [int(args["in_chans"]), *[int(s) for s in size[1:]]]
    model = build_model(f"timm:{config['architecture']}", input_shape=input_shape, num_classes=num_classes,
                        mean=pretrained.get("mean", IMAGENET_MEAN), std=pretrained.get("std", IMAGENET_STD),
                        size=size, args=args)
    load_weights(model.body, read_weights(path), path)
    return model


def _transformers_folder(folder: Path, config: dict, path: Path, input_shape, num_classes: int) -> Classifier:
    """A transformers image classifier (`save_pretrained`): built from config.json by AutoConfig (JSON only),
    weights loaded strictly from model.safetensors, preprocessing from preprocessor_config.json (`size`,
    `image_mean`, `image_std`) when the folder has one."""
    try:
        import transformers
    except ImportError:
        raise UserError(f"{folder} is a transformers folder: pip install transformers (or '.[hf]')") from None
    labels = config.get("id2label")
    _check_classes(str(folder), len(labels) if isinstance(labels, dict) and labels else config.get("num_labels"),
                   num_classes)
    transformers.logging.set_verbosity_error()
    try:
        hf_config = transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True)
        body = transformers.AutoModelForImageClassification.from_config(hf_config)
    except (ValueError, KeyError, OSError, TypeError) as e:
        raise UserError(f"{folder}: transformers cannot build {config['architectures']} "
                        f"({str(e).splitlines()[0][:200] if str(e) else type(e).__name__})") from None
    load_weights(body, read_weights(path), path)
    prep = _read_config(folder / "preprocessor_config.json") if (folder / "preprocessor_config.json").is_file() else {}
    channels = int(getattr(hf_config, "num_channels", 3))
    normalise = prep.get("do_normalize", True)
    mean = prep.get("image_mean", IMAGENET_MEAN) if normalise else [0.0] * channels
    std = prep.get("image_std", IMAGENET_STD) if normalise else [1.0] * channels
    side = prep.get("size") or getattr(hf_config, "image_size", None)
    if isinstance(side, dict):
        side = (side.get("height"), side.get("width")) if "height" in side else (side.get("shortest_edge"),) * 2
    elif isinstance(side, int):
        side = (side, side)
    size = (channels, *[int(v) for v in side]) if side and None not in side else None
    spec = dict(model=f"transformers:{config['architectures'][0]}", input_shape=list(input_shape),
                num_classes=num_classes, mean=list(mean), std=list(std))
    if size is None and channels != input_shape[0]:
        size = (channels, *input_shape[1:])
    if size is not None:
        spec["size"] = list(size)
    return Classifier(body, input_shape, mean, std, spec, size)


def _downloaded(source: str, name: str, input_shape, num_classes: int, ref: str) -> Classifier:
    """A library's own pretrained weights (timm: its Hub; torchvision: its URLs): online only."""
    hub_log = logging.getLogger("huggingface_hub")  # offline, it logs each failed request before raising
    level = hub_log.level
    hub_log.setLevel(logging.CRITICAL)
    try:
        if source == "timm":
            import timm

            body = timm.create_model(name, pretrained=True)
            cfg = timm.data.resolve_model_data_config(body)
            mean, std, size = cfg["mean"], cfg["std"], cfg["input_size"]
        else:
            from torchvision import models

            weights = models.get_model_weights(name).DEFAULT
            body = models.get_model(name, weights=weights)
            preset = weights.transforms()
            mean, std, size = preset.mean, preset.std, (3, *([preset.crop_size[0]] * 2))
    except (RuntimeError, ValueError, OSError, KeyError) as e:
        raise UserError(f"--teacher {ref}: cannot fetch its pretrained weights ({str(e).splitlines()[0][:200]}); "
                        f"offline, give them as a file: {ref}@weights.safetensors, or a Hub folder") from None
    finally:
        hub_log.setLevel(level)
    classes = _classes_in(body, body.state_dict())
    _check_classes(ref, classes, num_classes)
    spec = dict(model=f"{source}:{name.split('@')[0]}", input_shape=list(input_shape), num_classes=num_classes,
                mean=list(mean), std=list(std), size=list(size))
    return Classifier(body, input_shape, mean, std, spec, size)


def _read_config(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{path.parent} has no config.json (a Hub folder: config.json + model.safetensors)")
    if path.stat().st_size > 4_000_000:
        raise UserError(f"{path} is {path.stat().st_size / 1e6:.0f} MB: too large for a model config")
    config, why = load(path)
    if why:
        raise UserError(f"{path} {why.split(' ', 1)[1]}")
    if not isinstance(config, dict):
        raise UserError(f"{path} must hold a JSON object")
    return config


def _first_conv_channels(tensors: dict) -> int | None:
    """Input channels of the first 4-D (conv) weight in the state dict's own order."""
    for value in tensors.values():
        if value.dim() == 4:
            return int(value.shape[1])
    return None


def _classes_in(body: nn.Module, tensors: dict) -> int | None:
    """How many classes `tensors` give the body's last linear layer (its classifier), if it has one."""
    linear = [name for name, m in body.named_modules() if isinstance(m, nn.Linear)]
    weight = tensors.get(f"{linear[-1]}.weight") if linear else None
    return int(weight.shape[0]) if weight is not None and weight.dim() == 2 else None


def _check_classes(ref: str, classes, num_classes: int) -> None:
    if classes is not None and int(classes) != num_classes:
        raise UserError(f"teacher {ref} has {classes} classes but the data set has {num_classes}: a teacher must "
                        "be trained on the data set's classes")


def _library_stats(source: str, arch: str) -> tuple[list[float], list[float]]:
    """The normalisation the library trains the architecture with (timm: its default `pretrained_cfg`)."""
    if source == "timm":
        from timm.models import get_pretrained_cfg_value

        try:
            mean, std = get_pretrained_cfg_value(arch, "mean"), get_pretrained_cfg_value(arch, "std")
        except RuntimeError:  # not a timm architecture: build_model says so in one line
            mean = std = None
        if mean and std:
            return list(mean), list(std)
    return list(IMAGENET_MEAN), list(IMAGENET_STD)


def describe(model: nn.Module) -> str:
    """`timm test_resnet, its own normalisation, 32 x 32` for a teacher's card line."""
    spec = model.spec
    source, _, arch = spec["model"].partition(":")
    size = spec.get("size") or spec["input_shape"]
    return f"{source} {arch} ({'x'.join(str(s) for s in size[1:])} input)"


__all__ = ["is_external", "load_external", "describe", "timm_model", "torchvision_model"]
