"""Multi-process training with ``torch.distributed``: the ranks' world, its collectives, and launching torchrun.

A training stage with ``train.processes: N > 1`` re-runs itself under ``torchrun --standalone
--nproc_per_node=N`` (:func:`launch`); each rank then joins the process group in :func:`world`
(``gloo`` on the CPU, ``nccl`` on CUDA, one GPU per local rank). Without torchrun, or with a world of
one, no process group is made and no collective runs, so a single process trains exactly as before.

Multi-node runs start torchrun on every node themselves (``--nnodes``, ``--node_rank``,
``--rdzv_backend=c10d --rdzv_endpoint=HOST:PORT``); the stage script sees the torchrun environment
(``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``) and does not launch again.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from psychovis.errors import ParamsError, PsychovisError

FAULT_ENV = "PSYCHOVIS_FAULT_KILL_RANK"
"""Fault injection for tests: ``"<rank>:<step>"`` makes that rank SIGKILL itself at that training step."""
TIMEOUT = timedelta(minutes=30)
"""How long a rank waits in a collective for the others (a dead peer is noticed far sooner: torchrun stops all)."""


class RankFailure(PsychovisError):
    """A rank of a multi-process training run failed; the stage wrote none of its outputs."""


@dataclass(frozen=True)
class World:
    """This process's place among the training ranks.

    Attributes:
        rank: the global rank (0 writes every output).
        size: the number of ranks (1: a plain single process).
        local_rank: the rank on this node (the GPU index on CUDA).
        device: where this rank computes.
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Whether this rank writes the checkpoints, metrics, figures and MLflow run."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether there is more than one rank (and so a process group and collectives)."""
        return self.size > 1


def in_worker(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this process was started by torchrun (or another launcher setting ``RANK`` and ``WORLD_SIZE``)."""
    return "RANK" in environ and "WORLD_SIZE" in environ


def rank_device(device: torch.device | str, local_rank: int) -> torch.device:
    """The device of a rank: an unindexed ``cuda`` becomes ``cuda:<local_rank>`` (one GPU per rank)."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        if local_rank >= torch.cuda.device_count():
            raise ParamsError(
                f"local rank {local_rank} has no GPU ({torch.cuda.device_count()} visible); "
                "lower train.processes (or --nproc_per_node) to the number of GPUs"
            )
        return torch.device("cuda", local_rank)
    return device


@contextlib.contextmanager
def world(device: torch.device | str = "cpu", environ: Mapping[str, str] = os.environ) -> Iterator[World]:
    """Join the ranks started by torchrun (a no-op world of one otherwise), and leave on exit.

    Args:
        device: the resolved ``base.device``; on CUDA each rank takes GPU ``LOCAL_RANK``.
        environ: the environment torchrun set (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_*``).

    Yields:
        This rank's :class:`World`.
    """
    size = int(environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        yield World(device=torch.device(device))
        return
    rank, local_rank = int(environ["RANK"]), int(environ.get("LOCAL_RANK", "0"))
    device = rank_device(device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    try:
        yield World(rank, size, local_rank, device)
    finally:
        dist.destroy_process_group()


def mean_over_ranks(values: Mapping[str, float], world: World) -> dict[str, float]:
    """The mean of each value over the ranks (as is for a world of one): one all-reduce in float64."""
    if not world.distributed:
        return dict(values)
    names = sorted(values)
    buffer = torch.tensor([values[name] for name in names], dtype=torch.float64, device=world.device)
    dist.all_reduce(buffer)
    return {name: float(total) / world.size for name, total in zip(names, buffer.tolist(), strict=True)}


def broadcast(value: Any, world: World) -> Any:
    """Rank 0's ``value`` on every rank (picklable values; tensors travel through the CPU)."""
    if not world.distributed:
        return value
    box = [value if world.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(world: World) -> None:
    """Wait until every rank got here (returns at once in a world of one)."""
    if world.distributed:
        dist.barrier()


def fault_point(world: World, step: int, environ: Mapping[str, str] = os.environ) -> None:
    """Die like an out-of-memory kill (SIGKILL, no clean-up) when :data:`FAULT_ENV` names this rank and step."""
    target = environ.get(FAULT_ENV, "")
    if target and target == f"{world.rank}:{step}":
        os.kill(os.getpid(), signal.SIGKILL)


def launch(script: str | Path, args: Sequence[str], processes: int, stage: str) -> None:
    """Run ``script args`` as ``processes`` ranks under torchrun on this machine, and wait.

    Rank 0's standard output comes through; every rank's standard error and torchrun's own log go to
    a temporary folder, kept (and named in the error) when the run fails, removed when it succeeds.

    Args:
        script: the stage script.
        args: its command-line arguments.
        processes: the number of ranks (``train.processes``).
        stage: the stage's name (for the log folder).

    Raises:
        RankFailure: a rank failed; one line saying which, how, and where the logs are.
    """
    logs = Path(tempfile.mkdtemp(prefix=f"psychovis-{stage.replace('@', '-')}-ranks-"))
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        "--max_restarts=0",
        "--redirects=2",  # every rank's stderr to <logs>/<run>/attempt_0/<local rank>/stderr.log
        f"--log-dir={logs}",
        str(script),
        *args,
    ]
    with open(logs / "torchrun.log", "wb") as log:
        returncode = subprocess.run(command, stdout=None, stderr=log, check=False).returncode
    if returncode == 0:
        shutil.rmtree(logs, ignore_errors=True)
        return
    raise RankFailure(explain_failure(logs, processes, returncode))


_ROOT_CAUSE = re.compile(r"rank\s*:\s*(\d+).*?exitcode\s*:\s*(-?\d+)", re.DOTALL)


def explain_failure(logs: Path, processes: int, returncode: int) -> str:
    """One line on why a torchrun run failed, from its logs.

    A rank killed by a signal other than SIGTERM (the out-of-memory killer's SIGKILL) wins: the other
    ranks' errors (a connection reset by the dead peer) and torchrun's SIGTERM to the survivors are
    its consequences. Then a rank's own one-line error
    (``psychovis <stage>: error: ...``); else torchrun's "root cause" (the first rank to fail and its
    exit code); else torchrun's exit code.
    """
    agent = (logs / "torchrun.log").read_text(errors="replace") if (logs / "torchrun.log").exists() else ""
    for found in _ROOT_CAUSE.finditer(agent.partition("Failures:")[2]):
        rank, code = int(found.group(1)), int(found.group(2))
        # SIGTERM is how torchrun stops the surviving ranks, not why the run failed.
        if code < 0 and -code in signal.valid_signals() and -code != signal.SIGTERM:
            return _died(rank, processes, f"killed by {signal.Signals(-code).name}", logs)
    for local_rank in range(processes):
        for path in sorted(logs.glob(f"*/attempt_*/{local_rank}/stderr.log")):
            for line in path.read_text(errors="replace").splitlines():
                found = re.match(r"psychovis \S+: error: (.*)", line.strip())
                if found:
                    return f"rank {local_rank} of {processes}: {found.group(1)}"
    cause = _ROOT_CAUSE.search(agent.partition("Root Cause")[2])
    if cause:
        return _died(int(cause.group(1)), processes, f"exit code {int(cause.group(2))}", logs)
    return f"torchrun failed with exit code {returncode} and no outputs were written; logs in {logs}"


def _died(rank: int, processes: int, how: str, logs: Path) -> str:
    return (
        f"rank {rank} of {processes} died ({how}); the other ranks were stopped and no outputs were written; "
        f"rank logs in {logs}; rerun, or set PSYCHOVIS_RESUME=1 to continue from the last checkpoint"
    )
