"""The thin layer that lets the one loop run under torchrun (torch.distributed + DDP).

    torchrun --standalone --nproc_per_node 2 -m hard_core train ... --out R

Every rank runs the same loop. What differs, and only here:

- `Dist.from_env()` joins the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK): NCCL with
  one GPU per rank (`cuda:LOCAL_RANK`) on CUDA, gloo on the CPU. Without torchrun it is a world of one and
  every method below is a no-op.
- `Dist.wrap(module)`: the student and the HARD augmentor are trained through DDP wrappers, so their
  gradients are averaged over the ranks; the frozen teacher is never wrapped (each rank runs it on its
  own shard). Checkpoints, evaluation and probes use the unwrapped modules.
- `Dist.shard(indices)`: each rank takes a contiguous, disjoint part of the global batch, a function of
  (seed, step, rank) only, so a resume recomputes it; `--batch-size` stays the global batch.
- `Dist.agree(request)`: rank 0 reads control.json; its knobs (those the loop's `config.check_knobs`
  accepted, the same validator as a single process's) and pause are sent to every rank, and a stop
  asked on any rank (SIGTERM) stops all, so the ranks never diverge or wait on each other forever.
- `Dist.mean(tensor)`: the logged loss is the mean over the ranks, so a NaN on any rank is seen by all.
- Only rank 0 (`Dist.lead`) evaluates, probes and writes; the next collective is the other ranks' barrier.

Requests travel as one float64 tensor (no pickling): the knobs, then pause and stop flags.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ..config import KNOBS
from ..data.stream import shard
from ..errors import UserError, env_int, quote

STATES = ("run", "pause", "stop")
TORCHRUN = " (torchrun sets it; unset it outside torchrun)"
TIMEOUT = datetime.timedelta(minutes=30)  # how long a rank waits for the others (e.g. behind an evaluation)


def env_world() -> tuple[int, int, int]:
    """(rank, world size, local rank) as torchrun sets them; (0, 1, 0) in a plain process. Values left over
    or malformed (RANK=abc, RANK 5 of 2, MASTER_PORT 99999) are one UserError line, not a traceback."""
    rank, world, local = (env_int(name, default, hint=TORCHRUN) for name, default in (("RANK", 0), ("WORLD_SIZE", 1),
                                                                                       ("LOCAL_RANK", 0)))
    if world < 1 or not 0 <= rank < world or local < 0:
        raise UserError(f"torchrun's environment is inconsistent: RANK={rank}, WORLD_SIZE={world}, "
                        f"LOCAL_RANK={local} (unset them outside torchrun)")
    if world > 1 and not 1 <= env_int("MASTER_PORT", 29500, hint=TORCHRUN) <= 65535:
        raise UserError(f"MASTER_PORT={quote(os.environ['MASTER_PORT'])} is not a port (1 to 65535)")
    return rank, world, local


def is_lead() -> bool:
    """True in the one process that writes the run directory (rank 0; any plain process)."""
    return env_world()[0] == 0


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None  # None: a single process

    @property
    def lead(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @classmethod
    def from_env(cls, device: torch.device) -> tuple["Dist", torch.device]:
        """Join torchrun's process group (if any); returns it and this rank's device."""
        rank, world, local = env_world()
        if world == 1:
            return cls(), device
        if device.type == "cuda":
            if local >= torch.cuda.device_count():
                raise UserError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} GPU(s) here: "
                                "give --nproc_per_node at most the number of GPUs")
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        elif device.type != "cpu":
            raise UserError(f"torchrun runs on CUDA (NCCL) or the CPU (gloo), not on {device.type}")
        backend = backend_for(device)
        if not dist.is_initialized():
            dist.init_process_group(backend, timeout=TIMEOUT,
                                    device_id=device if device.type == "cuda" else None)
        return cls(rank, world, local, backend), device

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()

    def check_batch(self, batch_size: int) -> None:
        if batch_size % self.world:
            raise UserError(f"--batch-size {batch_size} is the global batch: it must divide evenly over the "
                            f"{self.world} ranks (try {batch_size - batch_size % self.world or self.world})")

    def wrap(self, module: nn.Module | None) -> nn.Module | None:
        """`module` as the step trains it: a DDP wrapper over the ranks, or the module itself."""
        if module is None or not self.enabled:
            return module
        device = module_device(module)
        return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)

    def shard(self, indices: Tensor) -> Tensor:
        """This rank's contiguous part of the global batch `indices`."""
        return shard(indices, self.rank, self.world)

    def seed(self, base: int) -> int:
        """Per-rank RNG seed for step randomness; rank 0 of any world (and a single process) uses `base`."""
        return base * self.world + self.rank

    def mean(self, value: Tensor) -> Tensor:
        """The mean of `value` over the ranks (every rank gets it)."""
        if not self.enabled:
            return value
        value = value.detach().float().clone()
        dist.all_reduce(value)
        return value / self.world

    def agree(self, request: dict) -> dict:
        """The request every rank acts on: rank 0's knobs and pause, a stop if any rank asks for one."""
        if not self.enabled:
            return request
        device = torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")
        v = torch.zeros(2 * len(KNOBS) + 2, dtype=torch.float64, device=device)
        if self.lead:
            for i, k in enumerate(KNOBS):  # the loop passes only knobs `config.check_knobs` accepted
                if k in request:
                    v[i], v[len(KNOBS) + i] = float(request[k]), 1.0
            v[-2] = float(request.get("state") == "pause")
        v[-1] = float(request.get("state") == "stop")
        dist.all_reduce(v)
        out = {k: v[i].item() for i, k in enumerate(KNOBS) if v[len(KNOBS) + i] > 0}
        if v[-1] > 0:
            out.update(state="stop", reason=request.get("reason", "stopped on request"))
        elif v[-2] > 0:
            out["state"] = "pause"
        return out

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def describe(self) -> dict:
        return {"world_size": self.world, "backend": self.backend}


def module_device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device
