"""psychovis.sr.distributed: a world of one is no world at all; rank failures read as one line.

Real multi-process runs (torchrun, gloo) are tested at stage level: tests/stages/test_ddp.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from psychovis.errors import ParamsError
from psychovis.sr import distributed
from psychovis.sr.distributed import World, explain_failure, in_worker, rank_device, world


def test_a_world_of_one_makes_no_process_group() -> None:
    with world("cpu", environ={}) as single:
        assert single == World() and single.is_main and not single.distributed
        assert not dist.is_initialized()
        values = {"loss": 0.25, "pixel": 0.5}
        assert distributed.mean_over_ranks(values, single) == values
        assert distributed.broadcast({"step": 3}, single) == {"step": 3}
        distributed.barrier(single)  # returns at once
    with world("cpu", environ={"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}) as single:
        assert not single.distributed and not dist.is_initialized()


def test_workers_are_recognised_by_the_torchrun_environment() -> None:
    assert in_worker({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert not in_worker({"LOCAL_RANK": "0"})


def test_each_rank_gets_its_local_gpu() -> None:
    assert rank_device("cpu", 3) == torch.device("cpu")
    assert rank_device("cuda:1", 0) == torch.device("cuda", 1)  # an explicit index is kept
    if torch.cuda.device_count() == 0:
        with pytest.raises(ParamsError, match=r"local rank 0 has no GPU.*lower train\.processes"):
            rank_device("cuda", 0)
    else:
        assert rank_device("cuda", 0) == torch.device("cuda", 0)


def test_the_fault_hook_fires_only_for_its_rank_and_step() -> None:
    distributed.fault_point(World(rank=0), 3, environ={distributed.FAULT_ENV: "1:3"})  # another rank: no-op
    distributed.fault_point(World(rank=1), 2, environ={distributed.FAULT_ENV: "1:3"})  # another step: no-op


def _rank_log(logs: Path, local_rank: int, text: str) -> None:
    folder = logs / "run_x" / "attempt_0" / str(local_rank)
    folder.mkdir(parents=True)
    (folder / "stderr.log").write_text(text)


def test_a_ranks_own_error_line_wins(tmp_path: Path) -> None:
    _rank_log(tmp_path, 0, "Traceback (most recent call last):\nRuntimeError: Connection closed by peer\n")
    _rank_log(tmp_path, 1, "psychovis train: error: image folder x holds 1 image(s); add images\n")
    assert explain_failure(tmp_path, 2, 1) == "rank 1 of 2: image folder x holds 1 image(s); add images"


def test_without_a_log_the_exit_code_is_reported(tmp_path: Path) -> None:
    line = explain_failure(tmp_path, 2, 1)
    assert line.startswith("torchrun failed with exit code 1") and str(tmp_path) in line
