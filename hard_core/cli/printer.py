"""The terminal view of the event stream: a progress bar (rate, ETA) on a TTY, plain lines otherwise."""
from __future__ import annotations

import sys
from pathlib import Path

from tqdm import tqdm

from ..train import EvalMetrics, Event, Status, StepMetrics


def format_acc(acc: dict[str, float]) -> str:
    return "  ".join(f"{name} {100 * v:5.1f}%" for name, v in acc.items())


class Printer:
    def __init__(self, out: Path, stream=sys.stderr):
        self.out, self.stream = out, stream
        self.bar: tqdm | None = None
        self.tty = stream.isatty()

    def __call__(self, event: Event) -> None:
        if isinstance(event, Status):
            if event.state == "running" and self.bar is None and self.tty:
                self.bar = tqdm(total=event.total_steps, initial=event.step, unit="step", file=self.stream,
                                dynamic_ncols=True)
            self.write(f"[{event.state}] step {event.step}: {event.message}" if event.message else
                       f"[{event.state}] step {event.step}")
        elif isinstance(event, StepMetrics) and self.bar is not None:
            self.bar.update(event.step - self.bar.n)
            self.bar.set_postfix(loss=f"{event.loss:.4f}", lr=f"{event.lr:.2g}", refresh=False)
        elif isinstance(event, EvalMetrics):
            self.write(f"{event.model:7s} step {event.step:5d} | {format_acc(event.acc)}")

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        print(f"run directory: {self.out}", file=self.stream)
