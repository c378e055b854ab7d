"""The training loop (`train`), its events, and evaluation helpers."""
from .evaluate import accuracy, predict
from .events import Checkpoint, EvalMetrics, Event, Snapshot, Status, StepMetrics
from .loop import Diverged, train
from .setup import build_session, dataset_for, pick_device, suites_for

__all__ = ["train", "Diverged", "Event", "Status", "StepMetrics", "EvalMetrics", "Snapshot", "Checkpoint",
           "accuracy", "predict", "build_session", "dataset_for", "pick_device", "suites_for"]
