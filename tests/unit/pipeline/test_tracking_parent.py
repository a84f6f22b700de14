"""The execution's parent run: RUNNING while any stage runs, ended by the latest, carrying the headline."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from psychovis.pipeline.tracking import stage_run


@pytest.mark.slow
def test_the_parent_runs_while_a_stage_runs_and_carries_the_headline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    client = mlflow.MlflowClient(store)
    with stage_run("evaluate", {"evaluate": {"border": 4}}, tmp_path):
        pass
    with stage_run("report", {"report": {}}, tmp_path) as run:
        parent = client.get_run(run.run_id).data.tags["mlflow.parentRunId"]
        assert client.get_run(parent).info.status == "RUNNING", "a finished parent while its stage runs"
        run.log_parent_metrics({"psnr_y.vfss": 28.9, "lpips_alex.vfss": 0.31, "missing.vfss": None})
    ended = client.get_run(parent)
    assert ended.info.status == "FINISHED"
    assert ended.data.metrics == {"psnr_y.vfss": 28.9, "lpips_alex.vfss": 0.31}
