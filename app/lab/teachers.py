"""The run form's teachers and a run's teacher in words, Streamlit-free.

The form offers the world's shipped teacher, the lab's finished pretrain runs, and a teacher of your own:
a folder or file on the server in any form the CLI's `--teacher` takes (`hard_core.teacher.FORMS`),
checked by the engine itself (`load_teacher`: the same rules and the same one-line errors as the CLI),
once per reference, data and file times (`check`).

>>> choices("mnist5k", 40, "polarity")["default"]
'the shipped CNN of the polarity world (trained on white-on-black and black-on-white digits)'
>>> check(resolve("~/models/resnet-mnist"), "mnist5k", 40, "shift")   # Checked(description=..., error=None)

A path here makes the server read a model the user names, nothing else: safetensors and JSON only (pickles
are refused), the result of the read is a description or one error line. $HARD_LAB_TEACHERS (folders,
separated by os.pathsep) limits what may be named to those folders and the runs folder, for a lab that
others can reach; unset, any path the server can read (a lab on one's own machine).
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from hard_core.config import RunConfig
from hard_core.errors import UserError
from hard_core.models.external import SOURCES, is_external
from hard_core.runs import CHECKPOINT
from hard_core.teacher import FORMS, describe_teacher, load_teacher
from hard_core.train.setup import dataset_for

from .runs import finished, root

OWN = "own"  # the choice that reveals the path field
OWN_LABEL = "your own teacher: a folder or file on the server"
PLACEHOLDER = "/models/my-teacher or timm:resnet18@/models/weights.safetensors"
HELP = (f"what the CLI's --teacher takes: {FORMS}. The lab server reads it (safetensors and JSON only, never a "
        "pickle); downloads (timm:NAME alone, hf-hub:ID) belong to the CLI.")
ALLOWED = "HARD_LAB_TEACHERS"  # folders a typed teacher must lie in (unset: any)
CACHE = 32  # checked references kept per process


@dataclass(frozen=True)
class Checked:
    """A teacher reference as the engine reads it: its description, or the one line that says what is wrong."""

    description: str
    error: str | None = None


def choices(dataset: str, canvas: int | None, world: str) -> dict[str, str]:
    """--teacher value -> label: the world's shipped teacher first, the lab's finished pretrain runs, then
    `OWN` (a path the user types)."""
    out = {"default": describe_teacher(RunConfig(dataset=dataset, canvas=canvas, world=world, teacher="default"))}
    for row in finished():
        if row["kind"] == "pretrain" and (row["path"] / CHECKPOINT).is_file():
            out[str(row["path"])] = f"pretrain run {row['id']} ({row['student']}, {row['dataset']})"
    out[OWN] = OWN_LABEL
    return out


def resolve(ref: str | None) -> str:
    """The reference as the engine reads it from any working directory: spaces trimmed, `~` expanded and a
    path made absolute, also the FILE of `timm:NAME@FILE` (a run's config then names it wherever it is opened)."""
    ref = (ref or "").strip()
    if not ref or ref == "default":
        return ref
    source, sep, rest = ref.partition(":")
    if sep and source in SOURCES:
        name, at, file = rest.partition("@")
        return f"{source}:{name}@{_absolute(file)}" if at and file else ref
    if sep and source == "hf-hub":
        return ref
    return _absolute(ref)


def _absolute(path: str) -> str:
    return str(Path(path.strip()).expanduser().absolute())


def _files(ref: str) -> list[Path]:
    """The files a reference reads (those outside the shipped assets)."""
    if ref.partition(":")[0] in SOURCES:
        file = ref.partition("@")[2]
        return [Path(file)] if file else []
    return [] if ref == "default" else [Path(ref)]


def lab_refusal(ref: str) -> str | None:
    """What the lab refuses that the CLI would try: nothing named, a download, a path outside $HARD_LAB_TEACHERS."""
    if not ref:
        return f"name a teacher on the server: {FORMS}"
    source = ref.partition(":")[0]
    if source == "hf-hub" or (source in SOURCES and "@" not in ref):
        return (f"{ref} would download the library's weights: the lab takes a teacher on the server "
                f"({ref}@weights.safetensors, or a Hub folder); downloads belong to the CLI")
    allowed = [Path(p).expanduser().resolve() for p in os.environ.get(ALLOWED, "").split(os.pathsep) if p.strip()]
    if allowed:
        allowed.append(root())
        for path in _files(ref):
            for p in _read(path):  # the folder and what it holds (a link inside may point elsewhere)
                real = p.resolve()
                if (p == path or p.exists()) and not any(real == a or real.is_relative_to(a) for a in allowed):
                    return f"{path} is outside the folders this lab takes teachers from (${ALLOWED})"
    return None


def _read(path: Path) -> tuple[Path, ...]:
    """A named path and the files the engine reads inside it, if it is a folder."""
    return (path, path / "config.json", path / "model.safetensors", path / CHECKPOINT)


def _stamp(ref: str) -> tuple:
    """What a reference's files look like now (modification times and sizes): a new stamp, a new check."""
    out = []
    for path in _files(ref):
        for p in _read(path):
            try:
                s = p.stat()
                out.append((str(p), s.st_mtime_ns, s.st_size))
            except OSError:
                out.append((str(p), None))
    return tuple(out)


_checked: OrderedDict[tuple, Checked] = OrderedDict()
_lock = threading.Lock()


def check(ref: str, dataset: str, canvas: int | None, world: str) -> Checked:
    """Load the teacher as a run would (`hard_core.teacher.load_teacher` on the run's data, on the CPU) and
    describe it, or say in one line why it cannot be (the CLI's own message). Cached per reference, data
    set, world and the files' times and sizes: loading takes up to a few seconds, the form redraws often."""
    refused = lab_refusal(ref)
    if refused:
        return Checked(ref, refused)
    key = (ref, dataset, canvas, world if ref == "default" else None, _stamp(ref))
    with _lock:
        if key in _checked:
            _checked.move_to_end(key)
            return _checked[key]
    try:
        cfg = RunConfig(dataset=dataset, canvas=canvas, world=world, teacher=ref)
        teacher = load_teacher(cfg, dataset_for(cfg), "cpu")
        result = Checked(describe_teacher(cfg, teacher))
    except UserError as e:
        result = Checked(ref, _line(e))
    except (ValidationError, ValueError, RuntimeError, OSError, KeyError, TypeError) as e:  # not the user's
        result = Checked(ref, f"cannot load {ref}: {type(e).__name__}: {_line(e)}")  # words, still one line
    with _lock:
        _checked[key] = result
        while len(_checked) > CACHE:
            _checked.popitem(last=False)
    return result


def _line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def describe(config: dict) -> str:
    """A run's teacher in words from its config: the shipped one of its world, a run, a file, or a model of
    another library with its architecture and source ('timm test_resnet (32x32 input) from /models/t'); "" for a
    run without a teacher (pretrain). A model that can no longer be loaded is named by its reference."""
    ref = config.get("teacher") if isinstance(config, dict) else None
    if not ref or not isinstance(ref, str):
        return ""
    try:
        cfg = RunConfig.model_validate({k: v for k, v in config.items() if k in RunConfig.model_fields})
    except ValidationError:
        return ref
    if is_external(ref) and not lab_refusal(ref):
        checked = check(ref, cfg.dataset, cfg.canvas, cfg.world)
        if checked.error is None:
            return checked.description
    return describe_teacher(cfg)
