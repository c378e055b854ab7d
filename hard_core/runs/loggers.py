"""`--log`: the run's event stream, also sent where practitioners look (TensorBoard, Weights & Biases).

    runs/<id>/tensorboard/   TensorBoard event files (`tensorboard --logdir runs`)
              wandb/         the W&B run (offline: `wandb sync runs/<id>/wandb/offline-run-*`)

Each logger reads the same events as `RunWriter` (rank 0 only) and names its values alike:

    loss/train  knobs/lr  knobs/temperature  knobs/alpha  speed/steps_per_s   every StepMetrics
    hard/<name>                            HARD's game metrics (StepMetrics.extra: hardness, ...)
    accuracy/<student|teacher>/<suite>  agreement/<suite>                        every EvalMetrics
    gallery/clean  gallery/augmented       each Snapshot's images as one grid (1D signals as plots)

The packages are optional extras: a missing one is a `UserError` when the loggers open, before training.
After that a logger never ends a run: its first failure is one warning line, and the run goes on.
"""
from __future__ import annotations

import importlib
import json
import netrc
import os
import sys
from pathlib import Path
from urllib.parse import urlparse

import torch
from tqdm import tqdm

from ..config import RunConfig
from ..errors import UserError
from ..train.events import EvalMetrics, Event, Snapshot, Status, StepMetrics

GALLERY = ("clean", "augmented")  # the Snapshot tensors drawn as images
ENDS = ("finished", "stopped", "failed")  # states after which a run writes nothing more


def require_loggers(cfg: RunConfig) -> list[str]:
    """The loggers `cfg.log` names, each package checked: a missing one is one line, before anything runs."""
    names = [n for n in cfg.log.split(",") if n in ("tensorboard", "wandb")]
    for name in names:
        _require(name)
    return names


def open_loggers(cfg: RunConfig, out: str | Path, resume: bool = False) -> list:
    """The loggers `cfg.log` names, open on the run directory `out` (empty for "none")."""
    kinds = {"tensorboard": TensorBoardLog, "wandb": WandbLog}
    return [kinds[name](cfg, Path(out), resume) for name in require_loggers(cfg)]


class _Log:
    """What every logger shares: opening, writing and closing warn instead of raising (`_open`, `_write`
    and `_close` do the work). A resume opens at its Status "running", when the run directory takes it on:
    a resume that fails before leaves no trace here either."""

    name = "log"

    def __init__(self, cfg: RunConfig, out: Path, resume: bool = False):
        self.cfg, self.out = cfg, out
        self._warned = self._ended = self._live = False
        self._waiting = resume
        if not resume:
            self._guard(lambda: self._open(None))

    def write(self, event: Event) -> None:
        if isinstance(event, Status):
            if self._waiting and event.state == "running":
                self._waiting = False
                self._guard(lambda: self._open(event.step))
            self._ended = event.state in ("finished", "stopped")
        if self._live:
            self._guard(lambda: self._write(event))

    def close(self) -> None:
        if self._live:
            self._live = False
            self._guard(self._close)

    def _guard(self, action) -> None:
        try:
            action()
        except Exception as e:  # noqa: BLE001 - logging is a side channel: the run goes on
            if not self._warned:  # once: a broken logger must not flood the terminal
                self._warned = True
                reason = str(e).splitlines()[0] if str(e) else type(e).__name__
                tqdm.write(f"warning: --log {self.name} failed ({reason}); training goes on", file=sys.stderr)

    def _open(self, resumed_at: int | None) -> None:
        """Start logging; `resumed_at` is the restored step of a resume (None for a new run)."""
        raise NotImplementedError

    def _write(self, event: Event) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError


class TensorBoardLog(_Log):
    """TensorBoard event files in `<out>/tensorboard`, the config as text. A resume purges the steps after
    the checkpoint, as the run directory does, so the curves read like one uninterrupted run."""

    name = "tensorboard"

    def _open(self, resumed_at: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        purge = None if resumed_at is None else resumed_at + 1  # TensorBoard drops the older files' later steps
        self.tb = SummaryWriter(log_dir=str(self.out / "tensorboard"), purge_step=purge)
        self._live = True
        if resumed_at is None:
            text = json.dumps(self.cfg.model_dump(), indent=2)
            self.tb.add_text("config", "    " + text.replace("\n", "\n    "), 0)  # a markdown code block

    def _write(self, event: Event) -> None:
        if isinstance(event, Snapshot):
            for key, grid in gallery(event).items():
                self.tb.add_image(key, grid, event.step)
        elif isinstance(event, Status):
            if event.state in ENDS:
                self.tb.flush()
        else:
            for key, value in scalars(event).items():
                self.tb.add_scalar(key, value, event.step)

    def _close(self) -> None:
        self.tb.close()


class WandbLog(_Log):
    """A W&B run under `<out>/wandb`, named after the run directory, with the config. The mode comes
    from the environment (WANDB_MODE); with none set and no API key it is offline, said once on stderr,
    so a machine without an account or a network never waits on one. W&B's background process ends with
    the run. A resume starts another W&B run of the same name."""

    name = "wandb"
    _said_offline = False

    def _open(self, resumed_at: int | None) -> None:
        import wandb

        self.wandb = wandb
        out, mode = self.out, None
        if not (os.environ.get("WANDB_MODE") or os.environ.get("WANDB_DISABLED") or _wandb_api_key()):
            mode = "offline"
            if not WandbLog._said_offline:
                WandbLog._said_offline = True
                tqdm.write(f"W&B: no WANDB_API_KEY and no WANDB_MODE: logging offline to {out / 'wandb'} "
                           "(upload it with `wandb sync`)", file=sys.stderr)
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "hard-lab"), name=out.resolve().name,
                              dir=str(out), config=self.cfg.model_dump(), mode=mode, reinit="create_new",
                              settings=wandb.Settings(console="off", quiet=True))
        self._live = True

    def _write(self, event: Event) -> None:
        if isinstance(event, Snapshot):
            images = {key: self.wandb.Image(grid.permute(1, 2, 0).numpy()) for key, grid in gallery(event).items()}
            if images:
                self.run.log(images, step=event.step)
        elif not isinstance(event, Status):
            values = scalars(event)
            if values:
                self.run.log(values, step=event.step)

    def _close(self) -> None:
        self.run.finish(exit_code=0 if self._ended else 1)  # a run that never finished shows as failed
        _stop_wandb_service(self.wandb)


def scalars(event: Event) -> dict[str, float]:
    """The numbers of one event under the loggers' names (see the module docstring)."""
    if isinstance(event, StepMetrics):
        out = {"loss/train": event.loss, "knobs/lr": event.lr, "knobs/temperature": event.temperature,
               "knobs/alpha": event.alpha, "speed/steps_per_s": event.steps_per_s}
        out.update({f"hard/{k}": v for k, v in event.extra.items()})
    elif isinstance(event, EvalMetrics):
        out = {f"accuracy/{event.model}/{suite}": v for suite, v in event.acc.items()}
        out.update({f"agreement/{suite}": v for suite, v in event.agree.items()})
    else:
        return {}
    return {k: float(v) for k, v in out.items()}


def gallery(event: Snapshot, signal_height: int = 32) -> dict[str, torch.Tensor]:
    """The snapshot's images as one uint8 grid each (3 x H x W): N x C x H x W images side by side, and
    N x C x L signals drawn as line plots (the first channel)."""
    from torchvision.utils import make_grid

    out = {}
    for name in GALLERY:
        x = event.tensors.get(name)
        if x is None or x.dtype != torch.uint8 or x.ndim not in (3, 4) or x.shape[0] == 0:
            continue
        x = x.detach().cpu()
        if x.ndim == 3:
            x = plot_signals(x[:, 0], signal_height)
        elif x.shape[1] not in (1, 3):
            x = x[:, :1]
        out[f"gallery/{name}"] = make_grid(x, nrow=min(8, x.shape[0]), padding=2, pad_value=128)
    return out


def plot_signals(x: torch.Tensor, height: int) -> torch.Tensor:
    """N x L uint8 signals as N x 1 x height x L images: white polylines on black, 255 at the top."""
    y = (255 - x.float()) * (height - 1) / 255  # row of each sample
    nxt = torch.cat([y[:, 1:], y[:, -1:]], dim=1)  # each column joins its sample to the next one
    low, high = torch.minimum(y, nxt).floor(), torch.maximum(y, nxt).ceil()
    rows = torch.arange(height, dtype=torch.float32).view(1, height, 1)
    lit = (rows >= low.unsqueeze(1)) & (rows <= high.unsqueeze(1))
    return (lit.to(torch.uint8) * 255).unsqueeze(1)


def _require(name: str) -> None:
    """A missing optional package is the user's to install: one line, before training starts."""
    modules = {"tensorboard": ("tensorboard", "torch.utils.tensorboard"), "wandb": ("wandb",)}[name]
    try:
        for module in modules:
            importlib.import_module(module)
    except ImportError:
        raise UserError(f"--log {name} needs the {name} package: pip install {name}") from None


def _wandb_api_key() -> bool:
    """Whether W&B has credentials: WANDB_API_KEY, or the netrc entry `wandb login` writes."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def _stop_wandb_service(wandb) -> None:
    """End W&B's background process once no W&B run of this process is left (it would live until exit)."""
    try:
        from wandb.sdk import wandb_setup

        if wandb_setup.singleton().most_recent_active_run is None:  # a property
            wandb.teardown()
    except Exception:  # noqa: BLE001 - another wandb version: its exit hook ends the process instead
        pass

