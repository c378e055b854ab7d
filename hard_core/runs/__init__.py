"""Run directories: write (RunWriter), tail (RunReader), list, steer (control), and run to a directory."""
from .control import ControlFile, read_control, request
from .execute import run_to_dir
from .reader import RunInfo, RunReader, list_runs, load_student
from .store import RunWriter

__all__ = ["RunWriter", "RunReader", "RunInfo", "list_runs", "load_student", "ControlFile", "read_control",
           "request", "run_to_dir"]
