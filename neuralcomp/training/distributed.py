"""Data-parallel TBPTT (`neuralcomp train --nproc N`): each process runs the model on its slice of every
batch, carrying its own slice of the TBPTT state; the loss is computed on the whole batch, gathered,
so every term (spectral convergence included) is the single-process one, and the gradients are summed
across processes. One process with B equals N processes with B, within float rounding.

gloo on CPUs, NCCL on GPUs (one per process). Checkpoints hold the whole batch's carried state, so a
run resumes exactly with any process count that divides B. Rank 0 validates, writes the files and
logs; the others follow its early-stopping decision. Ctrl-C reaches every process; they agree at the
next iteration boundary (any_flag), save one checkpoint together and stop, as a single process does.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from neuralcomp.errors import ConfigError, NeuralcompError, TrainingInterrupted


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place in the data-parallel group."""

    rank: int
    world: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def check_batch(self, batch_size: int) -> None:
        if batch_size % self.world:
            raise ConfigError(f"batch size B = {batch_size} must be a multiple of the process count {self.world}")

    def shard(self, tensor: torch.Tensor, dim: int = 0) -> torch.Tensor:
        """This process's contiguous slice of a whole-batch tensor."""
        size = tensor.shape[dim] // self.world
        return tensor.narrow(dim, self.rank * size, size)

    def whole_batch(self, local: torch.Tensor) -> torch.Tensor:
        """Every process's slice, concatenated in rank order; gradients flow into the local slice only."""
        parts = [torch.empty_like(local) for _ in range(self.world)]
        dist.all_gather(parts, local.detach().contiguous())
        parts[self.rank] = local
        return torch.cat(parts, 0)

    def gather(self, local: torch.Tensor, dim: int) -> torch.Tensor:
        """Every process's slice of a state tensor, concatenated along its batch dimension."""
        parts = [torch.empty_like(local) for _ in range(self.world)]
        dist.all_gather(parts, local.contiguous())
        return torch.cat(parts, dim)

    def sum_gradients(self, parameters: list[torch.nn.Parameter]) -> None:
        """Sum every parameter's gradient over the processes (one flat buffer, one all-reduce)."""
        grads = [p.grad for p in parameters if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def any_flag(self, flag: bool, device: torch.device) -> bool:
        """True on every process when any process's flag is true (a Ctrl-C that reached some ranks only,
        or reached them at different iterations, stops all of them at the same one)."""
        value = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def broadcast_flag(self, flag: bool, device: torch.device) -> bool:
        """Rank 0's boolean, on every process (the early-stopping decision)."""
        value = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.broadcast(value, 0)
        return bool(value.item())


def log_to_stderr(line: str) -> None:
    """The trainer's log in a spawned process (a module-level function can be sent to it)."""
    import sys

    print(line, file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, device_type: str, interrupted: Any, function: Callable[..., Any],
            args: tuple, kwargs: dict) -> None:
    # the launcher ignores Ctrl-C while its workers run, and a spawned process inherits that: take it back
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    backend = "nccl" if device_type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        device = f"cuda:{rank}" if device_type == "cuda" else "cpu"
        function(*args, device=device, parallel=ProcessGroup(rank, world), **kwargs)
    except TrainingInterrupted as exc:  # every rank stops at the same iteration; rank 0 tells the launcher
        if rank == 0:
            interrupted.put((exc.iteration, exc.checkpoint))
    finally:
        dist.destroy_process_group()


def launch(nproc: int, device_type: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Run `function(*args, device=..., parallel=ProcessGroup, **kwargs)` in `nproc` processes on this
    machine (gloo on CPU, NCCL with one GPU per process on CUDA)."""
    import torch.multiprocessing as mp

    if nproc < 1:
        raise ConfigError(f"--nproc must be >= 1, got {nproc}")
    if device_type == "cuda" and torch.cuda.device_count() < nproc:
        raise ConfigError(f"--nproc {nproc} needs {nproc} GPUs; {torch.cuda.device_count()} visible")
    interrupted = mp.get_context("spawn").SimpleQueue()
    # A terminal's Ctrl-C goes to the workers too: they stop at an iteration boundary with a checkpoint,
    # and this process waits for them instead of dying first (TrainingInterrupted, as with one process).
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        mp.start_processes(_worker, args=(nproc, _free_port(), device_type, interrupted, function, args, kwargs),
                           nprocs=nproc, join=True, start_method="spawn")
    except mp.ProcessRaisedException as exc:
        raise NeuralcompError(f"a data-parallel training process failed: {exc}") from exc
    finally:
        signal.signal(signal.SIGINT, previous)
    if not interrupted.empty():
        raise TrainingInterrupted(*interrupted.get())


def from_environment() -> ProcessGroup | None:
    """The group torchrun set up (WORLD_SIZE > 1 in the environment), initialised; None otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return ProcessGroup(dist.get_rank(), world)
