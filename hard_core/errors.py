"""One exception type for mistakes a user can fix (bad flag, missing file, wrong shape, offline, ...).

The CLI turns a `UserError` into one line on stderr and exit code 2; everything else is a bug and keeps
its traceback.
"""
import os

MAX_MESSAGE = 500  # characters of a UserError: one readable line, whatever it quotes


class UserError(Exception):
    """A problem in what the user asked for, explained in one line (at most MAX_MESSAGE characters: a message
    that quotes a huge value keeps its start and its end)."""

    def __init__(self, message: str = "", *args, whole: bool = False):
        message = str(message).replace("\n", " ")
        if len(message) > MAX_MESSAGE and not whole:  # whole: a command to run, its only input file paths
            message = message[:MAX_MESSAGE - 104] + " ... " + message[-99:]
        super().__init__(message, *args)


def quote(value, limit: int = 100, bare: bool = False) -> str:
    """How an error message shows what the user gave: repr(value) (str if `bare`) on one line, cut to `limit`
    characters, so a 50 MB value gives a short line (and a 5,000-digit int or deep list no second error)."""
    try:
        text = str(value) if bare else repr(value)
    except (ValueError, RecursionError):  # an int past Python's digit limit, absurd nesting
        text = f"<a {type(value).__name__} too large to show>"
    text = text.replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= limit else text[:limit] + "..."


def env_int(name: str, default: int, minimum: int | None = None, hint: str = "") -> int:
    """The whole number in environment variable `name` (`default` when unset or blank), at least `minimum`;
    anything else is one UserError line naming the variable, with `hint` (what sets it) appended."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise UserError(f"{name}={quote(text)} is not a whole number{hint}") from None
    if minimum is not None and value < minimum:
        raise UserError(f"{name}={value} is below {minimum}{hint}")
    return value
