"""Reading weights safely: safetensors only (a pickle is refused with the line that converts it), every
load strict, shape-checked and finite, each failure one line. Below `models` and `checkpoint`, which use it.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor, nn

from .errors import UserError

PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".pkl", ".pickle")


def refuse_pickle(path: Path) -> None:
    """A pickle (torch.save, a .pth / .bin / .ckpt file) is never loaded: one line that says so and gives the
    one-line conversion to safetensors for the user to run on a file they trust. The content decides: a
    safetensors file (an 8-byte length, then its JSON header) passes whatever its name."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None
    if head[8:9] == b"{":
        return
    if path.suffix.lower() in PICKLE_SUFFIXES or head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        out = path.with_suffix(".safetensors")  # torch.save's zip archive, or a bare pickle
        raise UserError(
            f"{path} is a pickle (torch.save), which could run code when loaded, so hard_core never loads one. "
            f"If you trust it, convert it once: python -c \"import torch; from safetensors.torch import save_file; "
            f"sd = torch.load('{path}', map_location='cpu', weights_only=True); sd = sd.get('state_dict', sd); "
            f"save_file({{k: v.contiguous() for k, v in sd.items()}}, '{out}')\" and pass {out}", whole=True)


def read_weights(path: Path) -> dict[str, Tensor]:
    """The tensors of a safetensors file (a plain state dict needs no metadata); pickles are refused."""
    return read_safetensors(path)[0]


def read_safetensors(path: Path) -> tuple[dict, dict]:
    """(tensors, metadata) of a safetensors file, or one line saying why it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    refuse_pickle(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path} is corrupt or not a safetensors file: {str(e).splitlines()[0]}") from None
    return tensors, meta


def load_weights(model: nn.Module, tensors: dict, path) -> None:
    """Strict load with a one-line error naming the first mismatch, or the first non-finite weight."""
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    if missing or unexpected:
        parts = [f"{len(names)} tensor{'s' * (len(names) > 1)} {what} (first '{names[0]}')"
                 for names, what in ((missing, "missing"), (unexpected, "unexpected")) if names]
        raise UserError(f"{path} does not match the model: {', '.join(parts)}")
    for k, v in tensors.items():
        if own[k].shape != v.shape:
            raise UserError(f"{path} does not match the model: '{k}' has shape {tuple(v.shape)}, "
                            f"expected {tuple(own[k].shape)}")
    check_finite(tensors, path)
    model.load_state_dict(tensors)


def check_finite(tensors: dict[str, Tensor], path) -> None:
    bad = {k: int((~torch.isfinite(v)).sum()) for k, v in tensors.items() if v.is_floating_point()}
    bad = {k: n for k, n in bad.items() if n}
    if bad:
        first = next(iter(bad))
        raise UserError(f"{path} is corrupt: {sum(bad.values())} weights are NaN or infinite (first in '{first}')")


def content_hash(module: nn.Module) -> str:
    """A short sha256 of a module's weights and buffers (names, dtypes, bytes): what a run records of its
    teacher and VAE, so that a resume or a probe can tell a replaced file from the one it trained with."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]
