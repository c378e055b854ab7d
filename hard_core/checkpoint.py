"""Checkpoints as safetensors plus JSON: nothing here unpickles anything.

A model file (`save_model`: a teacher, a shipped asset) holds its weights and, in the safetensors
metadata, the JSON `spec` that rebuilds the architecture (`hard_core.models.build_model`). A run
checkpoint (`save_checkpoint`) is one file with every module and optimizer of a run (student, optimizer,
HARD augmentor and its optimizer) and the step, under name prefixes ("student/...", "optimizer/..."),
so its parts always come from the same step. Every write goes to a temporary file that is then renamed
into place; loading checks shapes and refuses NaN or infinite weights.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from .errors import UserError
from .jsonfile import parse
from .models import Classifier, build_model
from .weights import check_finite, load_weights, read_safetensors, read_weights, refuse_pickle  # noqa: F401


def atomic_write(path: Path, write, durable: bool = False, mode: int = 0o644) -> None:
    """Call `write(tmp_path)`, then rename the temporary file onto `path`: readers see the old file or the
    new one, never a mix. `durable` also flushes the file and the rename to disk (for checkpoints, so a
    power cut cannot leave a renamed but empty file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, mode)  # mkstemp makes 0600; readers may be other users (e.g. a dashboard); 0600 for keys
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
        if durable:
            _fsync(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _fsync(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, data, mode: int = 0o644) -> None:
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2) + "\n"), mode=mode)


def save_model(path: Path, model: nn.Module, extra: dict | None = None) -> None:
    """Save weights plus `model.spec` (and any `extra` JSON, e.g. accuracy) as one safetensors file."""
    meta = {"spec": json.dumps(model.spec), "extra": json.dumps(extra or {})}
    tensors = _module_tensors(model)
    atomic_write(Path(path), lambda tmp: save_file(tensors, tmp, metadata=meta))


def _module_tensors(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}


def _json(path, meta: dict, key: str) -> dict:
    """A JSON object from the metadata, or one line saying what the file is not."""
    value = parse(meta[key])[0] if isinstance(meta.get(key), str) else None
    if not isinstance(value, dict):
        raise UserError(f"{path} is not a hard_core checkpoint (its '{key}' metadata is missing or malformed)")
    return value


def _part(tensors: dict, name: str) -> dict:
    prefix = name + "/"
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def _model_file(path: Path, part: str = "student") -> tuple[dict, dict, dict]:
    """(spec, weights, extra) of a model file, or of one module of a run checkpoint (`part`)."""
    tensors, meta = read_safetensors(path)
    if meta.get("format") == FORMAT:
        layout = _json(path, meta, "parts")
        if not isinstance(layout.get(part), dict) or "spec" not in layout[part]:
            raise UserError(f"{path} holds no {part}")
        spec, tensors, extra = layout[part]["spec"], _part(tensors, part), _json(path, meta, "extra")
    elif "spec" not in meta:
        raise UserError(f"{path} holds plain weights, with no spec naming their architecture: name it, "
                        "timm:ARCH@FILE or torchvision:ARCH@FILE, or pass a Hub folder (config.json + model.safetensors)")
    else:
        spec, extra = _json(path, meta, "spec"), _json(path, meta, "extra") if "extra" in meta else {}
    if not isinstance(spec, dict):
        raise UserError(f"{path} is not a hard_core model checkpoint (its spec is not an object)")
    return spec, tensors, extra


def read_model_spec(path: Path, part: str = "student") -> dict:
    return _model_file(path, part)[0]


def load_model(path: Path, device="cpu", body: nn.Module | None = None) -> nn.Module:
    """Rebuild the architecture from the file's spec and load its weights, in eval mode. `path` is a model
    file (`save_model`) or a run checkpoint (`save_checkpoint`, whose student is loaded). A model that was a
    Python object (`hard_core.distil`) cannot be rebuilt from JSON: pass a fresh one as `body`."""
    spec, tensors, _ = _model_file(path)
    missing = [k for k in ("model", "input_shape", "num_classes") if k not in spec]
    if missing:
        raise UserError(f"{path} is not a hard_core model checkpoint (its spec lacks {', '.join(missing)})")
    name = str(spec["model"])
    if name.startswith("python:") and body is None:
        raise UserError(f"{path}: this model was a Python object ({name[7:]}); rebuild one and load the weights "
                        f"into it: hard_core.load_student(RUN, model={name[7:]}(...))")
    try:
        model = Classifier(body, spec["input_shape"], spec["mean"], spec["std"], spec) if body is not None else \
            build_model(name, input_shape=spec["input_shape"], num_classes=spec["num_classes"],
                        mean=spec.get("mean"), std=spec.get("std"), size=spec.get("size"), args=spec.get("args"))
    except (TypeError, ValueError, KeyError) as e:
        raise UserError(f"{path}: its spec does not build a model ({e})".splitlines()[0]) from None
    load_weights(model, tensors, path)
    return model.to(device).eval()


def load_into(model: nn.Module, path: Path, part: str = "student") -> nn.Module:
    """Load a file's weights into an existing model (strict, shape-checked, finite)."""
    load_weights(model, _model_file(path, part)[1], path)
    return model


# ---- the run checkpoint: every module and optimizer of a run, and its step, in ONE file ----

FORMAT = "hard_core.checkpoint/1"


def save_checkpoint(path: Path, parts: dict, extra: dict) -> None:
    """Write `parts` (name -> nn.Module with `.spec`, or torch.optim.Optimizer) and `extra` JSON (step,
    knobs, ...) as one safetensors file, replaced in one `os.replace`: a kill at any moment leaves the
    previous checkpoint or this one, whole, never a mix of steps."""
    tensors, layout = {}, {}
    for name, part in parts.items():
        if isinstance(part, torch.optim.Optimizer):
            flat, layout[name] = _flatten_optimizer(part)
        else:
            flat, layout[name] = _module_tensors(part), {"spec": part.spec}
        tensors.update({f"{name}/{k}": v for k, v in flat.items()})
    meta = {"format": FORMAT, "parts": json.dumps(layout), "extra": json.dumps(extra)}
    atomic_write(Path(path), lambda tmp: save_file(tensors, tmp, metadata=meta), durable=True)


def _metadata(path: Path) -> dict:
    refuse_pickle(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path} is corrupt or not a safetensors file: {str(e).splitlines()[0]}") from None


def read_checkpoint_extra(path: Path) -> dict:
    """The `extra` JSON of a run checkpoint (step, knobs, ...) without loading its tensors; {} for a model file."""
    meta = _metadata(path)
    return _json(path, meta, "extra") if meta.get("format") == FORMAT else {}


def checkpoint_parts(path: Path) -> list[str]:
    """The names of the parts a run checkpoint holds ("student", "optimizer", "augmentor", ...)."""
    meta = _metadata(path)
    return sorted(_json(path, meta, "parts")) if meta.get("format") == FORMAT else ["student"]


def load_checkpoint(path: Path, parts: dict) -> dict:
    """Restore every part of `parts` (as in `save_checkpoint`) from `path`; returns its `extra`. Refuses
    (one line) a file that lacks a part or holds one more, a shape that differs, or a non-finite value."""
    tensors, meta = read_safetensors(path)
    if meta.get("format") != FORMAT:
        raise UserError(f"{path} is not a hard_core run checkpoint")
    layout, extra = _json(path, meta, "parts"), _json(path, meta, "extra")
    if set(layout) != set(parts):
        raise UserError(f"{path} holds {', '.join(sorted(layout))}; this run needs {', '.join(sorted(parts))}")
    if not isinstance(extra.get("step"), int) or extra["step"] < 0:
        raise UserError(f"{path} records no step")
    for name, part in parts.items():
        flat = _part(tensors, name)
        if isinstance(part, torch.optim.Optimizer):
            check_finite(flat, path)
            _restore_optimizer(part, flat, layout[name], path)
        else:
            load_weights(part, flat, path)
    return extra


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """`optimizer.state_dict()` as tensors plus JSON (param groups and scalar state)."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for name, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{name}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{idx}.{name}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict, info: dict, path) -> None:
    params = [p for g in optimizer.param_groups for p in g["params"]]
    state: dict[int, dict] = {}
    try:
        for key, value in list(tensors.items()) + list(info["scalars"].items()):
            idx, name = key.split(".", 1)
            state.setdefault(int(idx), {})[name] = value
        for idx, entries in state.items():  # Adam's moments have their parameter's shape
            for name, value in entries.items():
                if torch.is_tensor(value) and value.dim() and value.shape != params[idx].shape:
                    raise ValueError(f"state '{idx}.{name}' has shape {tuple(value.shape)}, its parameter "
                                     f"{tuple(params[idx].shape)}")
        optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise UserError(f"{path} does not match the optimizer: {e}") from None
