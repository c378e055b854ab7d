"""CLI flags generated from `RunConfig`'s fields, so the help text and the config never drift apart."""
from __future__ import annotations

import argparse
import typing

from ..config import RunConfig


def add_config_flags(p: argparse.ArgumentParser, skip=(), rename: dict | None = None, defaults=None) -> None:
    """One `--flag` per RunConfig field; every default is None so only given flags override --config."""
    rename, defaults = rename or {}, defaults or {}
    for name, field in RunConfig.model_fields.items():
        if name in skip or name == "kind":
            continue
        flag = "--" + rename.get(name, name).replace("_", "-")
        ann = field.annotation
        args = [a for a in typing.get_args(ann) if a is not type(None)] or [ann]
        kw: dict = {"dest": name, "default": None}
        if args[0] is bool:
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


def config_from_args(args: argparse.Namespace, **fixed) -> RunConfig:
    given = {k: getattr(args, k) for k in RunConfig.model_fields if getattr(args, k, None) is not None}
    return RunConfig.from_sources(getattr(args, "config", None), **{**given, **fixed})
