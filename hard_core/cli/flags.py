"""CLI flags generated from `RunConfig`'s fields, so the help text and the config never drift apart."""
from __future__ import annotations

import argparse
import typing

from ..config import RunConfig
from ..runs.sweep import separator


def add_config_flags(p: argparse.ArgumentParser, skip=(), rename: dict | None = None, defaults=None,
                     only=None, lists: bool = False) -> None:
    """One `--flag` per RunConfig field (or per field named in `only`); every default is None so only given
    flags override --config. `lists` (the `sweep` command): every flag takes comma-separated values as text
    (';' for a field whose own value holds commas: `runs.sweep.separator`), each validated later as the field
    validates it."""
    rename, defaults = rename or {}, defaults or {}
    for name, field in RunConfig.model_fields.items():
        if name in skip or name == "kind" or (only is not None and name not in only):
            continue
        flag = "--" + rename.get(name, name).replace("_", "-")
        ann = field.annotation
        args = [a for a in typing.get_args(ann) if a is not type(None)] or [ann]
        kw: dict = {"dest": name, "default": None}
        if lists:
            kw["metavar"] = "|".join(typing.get_args(ann)) if typing.get_origin(ann) is typing.Literal else \
                {int: "N", float: "X", bool: "true|false"}.get(args[0], "S")
            kw["metavar"] += separator(name) + "..."
        elif args[0] is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(ann) is typing.Literal:
            kw["choices"] = list(typing.get_args(ann))
        else:
            kw["type"] = args[0] if args[0] in (int, float) else str
            kw["metavar"] = {int: "N", float: "X"}.get(args[0], "S")
        default = defaults.get(name, field.default)
        text = field.description.replace("%", "%%")  # argparse formats help with %
        kw["help"] = text + ("" if default is None else f" [default: {default}]")
        p.add_argument(flag, **kw)


def add_config_flag(p: argparse.ArgumentParser, name: str) -> None:
    """RunConfig's field `name` as a flag of a command without --config (e.g. `--device` of bench, matrix and
    probe): the field's help, and its default as the flag's value when the flag is not given."""
    if name not in RunConfig.model_fields:
        raise KeyError(name)
    add_config_flags(p, only=(name,))
    p.set_defaults(**{name: RunConfig.model_fields[name].default})


def config_from_args(args: argparse.Namespace, **fixed) -> RunConfig:
    given = {k: getattr(args, k) for k in RunConfig.model_fields if getattr(args, k, None) is not None}
    return RunConfig.from_sources(getattr(args, "config", None), **{**given, **fixed})
