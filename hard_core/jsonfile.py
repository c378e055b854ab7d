"""The one reader of the JSON and JSONL files in a run folder (and of any JSON file the engine or the lab reads).

Anyone who can write to a runs folder can put anything in these files: bytes that are not UTF-8, NULs, a
torn write, JSON nested 100,000 deep, or valid JSON of the wrong type or shape (an eval event without
`acc`, `step` a string). Nothing here raises on content: a bad file reads as missing (with the reason, for
the callers that show one line), a bad event line is skipped and counted, and a status or lab.json field of
the wrong type is dropped, so every consumer can index what it gets.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

MAX_FILE = 64 << 20  # a run's JSON file is kilobytes; anything larger is not ours (events.jsonl is read in chunks)


LONE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")  # JSON may escape half a UTF-16 pair: not text anyone can print


def parse(data: bytes | str) -> tuple[Any, str | None]:
    """(value, None), or (None, why) for bytes that are not UTF-8 JSON (absurd nesting and huge numbers too)."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):  # not UTF-8, bad JSON, NULs, a torn write, a 5,000-digit number, deep nesting
        return None, "is not valid JSON"
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    if LONE_SURROGATE.search(raw) and not _printable(value):
        return None, "is not valid JSON"  # half a surrogate pair: text nobody can print
    return value, None


def _printable(value) -> bool:
    """Whether every string in `value` encodes as UTF-8 (a pair of escaped surrogates does; half of one not)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(v, dict):
            stack += [*v.keys(), *v.values()]
        elif isinstance(v, list):
            stack += v
    return True


def load(path: str | Path) -> tuple[Any, str | None]:
    """The JSON value in `path`: (value, None); (None, None) when there is no such file; (None, why) else."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE + 1)
    except FileNotFoundError:
        return None, None
    except OSError as e:
        return None, f"{path.name} cannot be read ({e.strerror or e})"
    if len(data) > MAX_FILE:
        return None, f"{path.name} is larger than {MAX_FILE >> 20} MB"
    value, why = parse(data)
    return value, why and f"{path.name} {why}"


def read_json(path: str | Path, default=None):
    """A JSON file, or `default` if it is missing or unreadable (mid-write, foreign, binary)."""
    value, why = load(path)
    return default if value is None else value


def read_dict(path: str | Path) -> dict | None:
    """A JSON file that holds an object, else None."""
    data = read_json(path)
    return data if isinstance(data, dict) else None


# Field types. bool is an int in Python, but never a step or a count here.
def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_str(v) -> bool:
    return isinstance(v, str)


def num_map(v) -> bool:
    """{name: number}: accuracies per suite, agreement, the game metrics."""
    return isinstance(v, dict) and all(isinstance(k, str) and is_num(x) for k, x in v.items())


SNAPSHOT_FILE = re.compile(r"snapshots/[0-9A-Za-z_-]{1,64}\.safetensors")


def snapshot_file(v) -> bool:
    """Only what RunWriter writes (snapshots/<step>.safetensors): never a path out of the run folder."""
    return isinstance(v, str) and SNAPSHOT_FILE.fullmatch(v) is not None


def str_list(v) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


Spec = dict[str, tuple[Callable[[Any], bool], bool]]  # field: (check, required)
EVENTS: dict[str, Spec] = {  # the on-disk form of train/events.py, per kind
    "status": {"state": (is_str, True), "message": (is_str, False), "total_steps": (is_int, False)},
    "step": {"loss": (is_num, True), "lr": (is_num, False), "temperature": (is_num, False),
             "alpha": (is_num, False), "steps_per_s": (is_num, False), "elapsed_s": (is_num, False),
             "extra": (num_map, False)},
    "eval": {"model": (lambda v: v in ("student", "teacher"), True), "acc": (num_map, True),
             "agree": (num_map, False)},
    "snapshot": {"file": (snapshot_file, True), "keys": (str_list, False)},
    "checkpoint": {},
}
STATUS: Spec = {"state": (is_str, False), "step": (is_int, False), "total_steps": (is_int, False),
                "message": (is_str, False), "pid": (is_int, False), "host": (is_str, False),
                "steps_per_s": (is_num, False), "updated": (is_num, False)}


def valid_event(e) -> bool:
    """An event line a consumer can index: a known kind with every field of its type, and a step >= 0.
    Unknown kinds (a newer engine's) are kept; consumers pick kinds by name."""
    if not (isinstance(e, dict) and is_str(e.get("kind")) and is_int(e.get("step")) and e["step"] >= 0):
        return False
    spec = EVENTS.get(e["kind"], {})
    return all(check(e[k]) if k in e else not required for k, (check, required) in spec.items())


def parse_lines(chunk: bytes | str) -> tuple[list[dict], int]:
    """The valid events in the complete lines of `chunk` (text after its last newline is left out), and how
    many complete lines were not valid events."""
    if isinstance(chunk, str):
        chunk = chunk.encode("utf-8", "surrogateescape")
    events, skipped = [], 0
    for line in chunk.split(b"\n")[:-1]:  # the writer ends every line with \n (JSON escapes any other break)
        event, _ = parse(line)
        if valid_event(event):
            events.append(event)
        elif line.strip():
            skipped += 1
    return events, skipped


def typed(data, spec: Spec) -> dict:
    """`data` as a dict without the fields `spec` types that hold another type (the rest kept as is)."""
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if k not in spec or spec[k][0](v)}
