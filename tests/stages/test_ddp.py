"""Training stages as torchrun ranks (``train.processes``): N = 2 matches N = 1, a dying rank fails cleanly, resume.

Real processes throughout: the `pretrain` stage of a tiny project copy runs as one plain process,
then as two torchrun ranks with the gloo backend on the CPU. Each rank trains on its half of the
same seeded global batch and DDP averages the gradients, so the two runs differ only by float
rounding (the batch is split into two forward passes and the gradients are summed in another order).
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from stagekit import check, command, copy_sources, one_line, run, stage_env, temporaries, tiny_repo, write_params

# Four crops per step shared by the ranks, a checkpoint every 2 steps.
PRETRAIN = {"pretrain": {"iterations": 6}, "train": {"batch_size": 4, "log_every": 2}}
OUTPUTS = (
    "data/models/pretrain-s0.pt",
    "data/curves/pretrain-s0.csv",
    "data/curves/pretrain-s0.png",
    "metrics/pretrain-s0.json",
)
PARTIAL = "data/models/.pretrain-s0.partial.pt"
WEIGHTS_ATOL = 1e-5  # max |w_N=2 - w_N=1| after 6 Adam steps (measured: ~1e-7)
LOSS_RTOL = 1e-5  # the logged loss curve, averaged over the ranks


def _set_processes(project: Path, processes: int) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["processes"] = processes
    write_params(project / "params.yaml", params)


def _weights(project: Path) -> dict[str, torch.Tensor]:
    return torch.load(project / "data/models/pretrain-s0.pt", map_location="cpu", weights_only=True)["model"]


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, torch.Tensor], pd.DataFrame]:
    """The one-process run: final weights and loss curve."""
    project = copy_sources(tmp_path_factory.mktemp("single") / "project", PRETRAIN)
    check(run(project, stage_env(project), "pretrain"))
    return _weights(project), pd.read_csv(project / "data/curves/pretrain-s0.csv")


@pytest.mark.e2e
def test_two_ranks_match_one_process(single: tuple[dict[str, torch.Tensor], pd.DataFrame], tmp_path: Path) -> None:
    project = copy_sources(tmp_path / "project", PRETRAIN)
    _set_processes(project, 2)
    result = check(run(project, stage_env(project), "pretrain"))
    assert "pretrain (seed 0): L1" in result.stdout  # rank 0's summary comes through the launcher
    weights, curve = _weights(project), pd.read_csv(project / "data/curves/pretrain-s0.csv")
    reference, reference_curve = single
    assert list(weights) == list(reference)  # saved unwrapped: no DDP "module." prefix
    difference = max(float((weights[name] - reference[name]).abs().max()) for name in reference)
    assert difference < WEIGHTS_ATOL
    assert list(curve["step"]) == list(reference_curve["step"]) == [2, 4, 6]
    np.testing.assert_allclose(curve["loss"], reference_curve["loss"], rtol=LOSS_RTOL)
    assert not (project / PARTIAL).exists() and not temporaries(project)


@pytest.mark.e2e
def test_dvc_exp_run_with_two_processes_gives_the_one_process_result(
    single: tuple[dict[str, torch.Tensor], pd.DataFrame], tmp_path: Path
) -> None:
    project, env = tiny_repo(tmp_path / "project", ["pretrain"], PRETRAIN)
    result = command(["dvc", "exp", "run", "-S", "train.processes=2"], project, env)
    assert "stages/pretrain.py --seed 0 --processes 2" in result.stdout  # the param reaches the command line
    weights, reference = _weights(project), single[0]
    assert max(float((weights[name] - reference[name]).abs().max()) for name in reference) < WEIGHTS_ATOL
    np.testing.assert_allclose(
        pd.read_csv(project / "data/curves/pretrain-s0.csv")["loss"], single[1]["loss"], rtol=LOSS_RTOL
    )


@pytest.mark.e2e
def test_a_dying_rank_fails_the_stage_with_one_line_and_no_outputs(
    single: tuple[dict[str, torch.Tensor], pd.DataFrame], tmp_path: Path
) -> None:
    project = copy_sources(tmp_path / "project", PRETRAIN)
    _set_processes(project, 2)
    # rank 1 SIGKILLs itself at step 3 (as the out-of-memory killer would); logs go to this test's folder
    env = stage_env(project, PSYCHOVIS_FAULT_KILL_RANK="1:3", TMPDIR=str(tmp_path))
    result = run(project, env, "pretrain")
    assert result.returncode == 2, result.stderr[-3000:]
    line = one_line(result.stderr)
    assert line.startswith("psychovis pretrain: error: rank 1 of 2 died (killed by SIGKILL)"), line
    assert "no outputs were written" in line and "PSYCHOVIS_RESUME=1" in line
    logs = next(tmp_path.glob("psychovis-pretrain-ranks-*"))
    assert str(logs) in line and len(list(logs.glob("*/attempt_0/*/stderr.log"))) == 2
    assert not [name for name in OUTPUTS if (project / name).exists()]
    assert not temporaries(project)
    # The checkpoint of step 2 survives, whole; resuming on two ranks ends like the uninterrupted run.
    assert torch.load(project / PARTIAL, map_location="cpu", weights_only=True)["step"] == 2
    check(run(project, stage_env(project, PSYCHOVIS_RESUME="1"), "pretrain"))
    weights, curve = _weights(project), pd.read_csv(project / "data/curves/pretrain-s0.csv")
    reference, reference_curve = single
    assert max(float((weights[name] - reference[name]).abs().max()) for name in reference) < WEIGHTS_ATOL
    np.testing.assert_allclose(curve["loss"], reference_curve["loss"], rtol=LOSS_RTOL)
    assert not (project / PARTIAL).exists()


@pytest.mark.e2e
def test_a_batch_the_ranks_cannot_share_is_refused(tmp_path: Path) -> None:
    project = copy_sources(tmp_path / "project", {**PRETRAIN, "train": {"batch_size": 3, "log_every": 2}})
    _set_processes(project, 2)
    result = run(project, stage_env(project, TMPDIR=str(tmp_path)), "pretrain")  # the kept rank logs go there
    assert result.returncode == 2
    line = one_line(result.stderr)
    # refused when params.yaml is read, before torchrun launches any rank (no "rank i of 2:" prefix)
    assert line.startswith("psychovis pretrain: error: ") and " of 2: " not in line, line
    assert "train.batch_size (3) must be a multiple of train.processes (2)" in line, line
    assert not [name for name in OUTPUTS if (project / name).exists()]


@pytest.mark.e2e
def test_resume_from_a_truncated_checkpoint_is_one_line(tmp_path: Path) -> None:
    project = copy_sources(tmp_path / "project", PRETRAIN)
    mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").search_experiments()  # an existing store: no log lines
    (project / PARTIAL).parent.mkdir(parents=True)
    (project / PARTIAL).write_bytes(b"PK\x03\x04 truncated")
    result = run(project, stage_env(project, PSYCHOVIS_RESUME="1"), "pretrain")
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert "is unreadable or truncated" in line and "unset PSYCHOVIS_RESUME" in line, line
    assert not [name for name in OUTPUTS if (project / name).exists()]
