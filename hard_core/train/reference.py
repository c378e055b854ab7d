"""The frozen teacher's reference: its accuracy and predictions on every suite, and its invariance maps.

Every distillation run needs them at its first evaluation and probe (the student's agreement is measured
against the teacher's predictions; the maps are drawn side by side). They depend only on the teacher's
weights, the suites, the probe images and the arithmetic (device, autocast, torch version), and for the
shipped MNIST CNN they cost ~13 s of CPU against ~0.5 s for an MLP student's. So they are computed once
and kept in a safetensors file named by a hash of all those inputs: a KD twin, a rerun or another
session with the same teacher and data reads them in milliseconds. Files are looked for where
`assets.kept` says (shipped for each shipped teacher's worlds, then the cache folder); an unreadable one
is recomputed and a cache that cannot be written is skipped, so the cache never changes a result.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from ..assets import kept
from ..checkpoint import atomic_write
from ..data import Split
from ..probes.live import RunProbe, run_grids
from .evaluate import accuracy
from .setup import PROBE_IMAGES, Session, held

MAX_HASHED = 512e6  # bytes of suites and probe images worth hashing; larger data computes every time


class FirstEvaluation(NamedTuple):
    accuracy: dict[str, float] | None  # the teacher's, per suite (None without a teacher)
    predictions: dict[str, Tensor] | None  # the teacher's, per suite: the student's agreement is measured against them
    probe: RunProbe | None  # disagreement and invariance maps, with the teacher's maps in place


def first_evaluation(s: Session, keep: Path | None = None) -> FirstEvaluation:
    """What a session's first evaluation and probe need: the suites (built here), the probe set and the
    teacher's reference. keep: a folder to write the reference to, computed anew (`assets` ships them)."""
    suites = s.suites
    if s.teacher is None:
        return FirstEvaluation(None, None, None)
    probes = held(s.dataset, PROBE_IMAGES)  # the grids: the world's own, shift, and for a teacher of one's own more
    probe = RunProbe(s.teacher, probes, s.device, grids=run_grids(probes, s.cfg.world, s.cfg.teacher))
    acc, predictions = teacher_reference(s.teacher, suites, probe, s.autocast, keep)
    return FirstEvaluation(acc, predictions, probe)


def teacher_reference(teacher: nn.Module, suites: dict[str, Split], probe: RunProbe | None, autocast,
                      keep: Path | None = None) -> tuple[dict[str, float], dict[str, Tensor]]:
    """(accuracy per suite, predictions per suite on the suites' device); fills `probe`'s teacher maps.
    Read from a kept file when one matches, else computed (under `autocast`) and kept (in `keep`, if given)."""
    key = reference_key(teacher, suites, probe, autocast)
    found = _read(key, suites, probe) if key and keep is None else None
    if found is not None:
        return found
    with autocast:
        acc, _, predictions = accuracy(teacher, suites)
        maps = probe.teacher_maps() if probe is not None else {}
    if key:
        _write(Path(keep) / _name(key) if keep is not None else kept(_name(key))[-1], acc, predictions, maps)
    return acc, predictions


def reference_key(teacher: nn.Module, suites: dict[str, Split], probe: RunProbe | None, autocast) -> str | None:
    """A hash of everything the reference depends on, or None when the data is too large to hash."""
    tensors = [(f"teacher.{k}", v) for k, v in sorted(teacher.state_dict().items())]
    for name, split in suites.items():
        if not isinstance(split, Split):  # streamed from disk: not hashed, computed every time
            return None
        tensors += [(f"suite.{name}.x", split.x), (f"suite.{name}.y", split.y)]
    for name, p in (probe.probes.items() if probe is not None else ()):  # the kind names the transform
        tensors += [(f"probe.{name}.{p.grid.kind}.x", p.x), (f"probe.{name}.y", p.y)]
        tensors += [(f"probe.{name}.{axis}", a) for axis, a in zip(p.grid.names, p.grid.axes)]
    if sum(t.numel() * t.element_size() for name, t in tensors if not name.startswith("teacher.")) > MAX_HASHED:
        return None
    device = next(iter(suites.values())).x.device
    temperatures = [p.temperature for p in probe.probes.values()] if probe is not None else []
    arithmetic = [torch.__version__, device.type, str(getattr(autocast, "fast_dtype", None)), temperatures]
    if any(p.dim() == 4 and not p.is_contiguous() for p in teacher.parameters()):
        arithmetic.append("channels_last")  # convolutions in another layout round differently
    if getattr(autocast, "_enabled", False):  # a disabled autocast keeps the key of the shipped references
        arithmetic.append("autocast")
    h = hashlib.sha256(json.dumps(arithmetic).encode())
    for name, t in tensors:
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:24]


def _name(key: str) -> str:
    return f"reference-{key}.safetensors"


def _read(key: str, suites: dict[str, Split], probe: RunProbe | None):
    for path in kept(_name(key)):
        try:
            tensors = load_file(str(path))
            acc = {name: float(tensors[f"acc.{name}"]) for name in suites}
            predictions = {name: tensors[f"pred.{name}"].long().to(split.y.device) for name, split in suites.items()}
            maps = {name: {k.split(".", 2)[2]: v for k, v in tensors.items() if k.startswith(f"map.{name}.")}
                    for name in (probe.probes if probe is not None else ())}
            if any(len(predictions[n]) != len(s.y) for n, s in suites.items()) or not all(maps.values()):
                continue
        except (OSError, SafetensorError, KeyError, ValueError, RuntimeError):
            continue  # not there, unreadable or incomplete: look further, else compute
        if probe is not None:
            probe.use_teacher_maps(maps)
        return acc, predictions
    return None


def _write(path: Path, acc: dict, predictions: dict, maps: dict) -> None:
    tensors = {f"acc.{n}": torch.tensor(a) for n, a in acc.items()}
    tensors |= {f"pred.{n}": p.to(torch.int32).cpu().contiguous() for n, p in predictions.items()}
    tensors |= {f"map.{g}.{k}": v.cpu().contiguous() for g, m in maps.items() for k, v in m.items()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: save_file(tensors, tmp))
    except OSError:
        pass  # read-only or full: the next run computes it again
