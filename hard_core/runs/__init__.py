"""Run directories: write (RunWriter), tail (RunReader), list, steer (control), and run to a directory."""
from .control import ControlFile, read_control, request
from .execute import Stopped, run_to_dir
from .models import LoadedRun, load_augmentor, load_run, run_config
from .reader import CHECKPOINT, RunInfo, RunReader, checkpoint_step, final_metrics, list_runs, load_student
from .store import RunWriter

__all__ = ["CHECKPOINT", "checkpoint_step", "LoadedRun", "load_augmentor", "load_run", "run_config", "RunWriter",
           "RunReader", "RunInfo", "final_metrics", "list_runs", "load_student", "ControlFile", "read_control",
           "request", "run_to_dir", "Stopped"]
