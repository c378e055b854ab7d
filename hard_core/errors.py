"""One exception type for mistakes a user can fix (bad flag, missing file, wrong shape, offline, ...).

The CLI turns a `UserError` into one line on stderr and exit code 2; everything else is a bug and keeps
its traceback.
"""


class UserError(Exception):
    """A problem in what the user asked for, explained in one line."""
