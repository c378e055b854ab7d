"""Checkpoints as safetensors plus JSON: nothing here unpickles anything.

A model file holds its weights and, in the safetensors metadata, the JSON `spec` that rebuilds the
architecture (`hard_core.models.build_model`). Optimizer state is flattened to tensors plus JSON.
Every write goes to a temporary file first and is then renamed into place, so a reader never sees a
half-written checkpoint.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .errors import UserError
from .models import build_model


def atomic_write(path: Path, write) -> None:
    """Call `write(tmp_path)`, then rename the temporary file onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; readers may be other users (e.g. a dashboard)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: Path, data) -> None:
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2) + "\n"))


def save_model(path: Path, model: nn.Module, extra: dict | None = None) -> None:
    """Save weights plus `model.spec` (and any `extra` JSON, e.g. accuracy) as one safetensors file."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    meta = {"spec": json.dumps(model.spec), "extra": json.dumps(extra or {})}
    atomic_write(Path(path), lambda tmp: save_file(tensors, tmp, metadata=meta))


def _read(path: Path) -> tuple[dict, dict]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"corrupt checkpoint {path}: {str(e).splitlines()[0]}") from None
    return tensors, meta


def read_model_spec(path: Path) -> dict:
    _, meta = _read(path)
    return _spec(path, meta)


def _spec(path, meta) -> dict:
    try:
        return json.loads(meta["spec"])
    except (KeyError, json.JSONDecodeError):
        raise UserError(f"{path} is not a hard_core model checkpoint (no architecture spec)") from None


def load_model(path: Path, device="cpu") -> nn.Module:
    """Rebuild the architecture from the file's spec and load its weights, in eval mode."""
    tensors, meta = _read(path)
    spec = _spec(path, meta)
    model = build_model(spec["model"], input_shape=spec["input_shape"], num_classes=spec["num_classes"],
                        mean=spec.get("mean"), std=spec.get("std"))
    load_weights(model, tensors, path)
    return model.to(device).eval()


def load_into(model: nn.Module, path: Path) -> nn.Module:
    """Load a safetensors file's weights into an existing model (strict, shape-checked)."""
    tensors, _ = _read(path)
    load_weights(model, tensors, path)
    return model


def load_weights(model: nn.Module, tensors: dict, path) -> None:
    """Strict load with a one-line error naming the first mismatch."""
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    if missing or unexpected:
        key = (missing or unexpected)[0]
        raise UserError(f"{path} does not match the model: {'missing' if missing else 'unexpected'} tensor '{key}'")
    for k, v in tensors.items():
        if own[k].shape != v.shape:
            raise UserError(f"{path} does not match the model: '{k}' has shape {tuple(v.shape)}, "
                            f"expected {tuple(own[k].shape)}")
    model.load_state_dict(tensors)


def save_optimizer(path: Path, optimizer: torch.optim.Optimizer, extra: dict | None = None) -> None:
    """Flatten `optimizer.state_dict()`: tensors go to safetensors, the rest to JSON metadata."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for name, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{name}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{idx}.{name}"] = value
    meta = {"param_groups": json.dumps(sd["param_groups"]), "scalars": json.dumps(scalars),
            "extra": json.dumps(extra or {})}
    atomic_write(Path(path), lambda tmp: save_file(tensors, tmp, metadata=meta))


def load_optimizer(path: Path, optimizer: torch.optim.Optimizer) -> dict:
    """Restore an optimizer saved by `save_optimizer`; returns its `extra` JSON."""
    tensors, meta = _read(path)
    try:
        groups = json.loads(meta["param_groups"])
        scalars = json.loads(meta["scalars"])
    except (KeyError, json.JSONDecodeError):
        raise UserError(f"{path} is not an optimizer checkpoint") from None
    state: dict[int, dict] = {}
    for key, value in list(tensors.items()) + list(scalars.items()):
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as e:
        raise UserError(f"{path} does not match the optimizer: {e}") from None
    return json.loads(meta.get("extra", "{}"))
