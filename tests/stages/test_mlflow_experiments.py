"""Two `dvc exp run`s of the tiny pipeline give two parent runs in MLflow, their stages nested, as DVC groups them.

The session's experiment copy (``conftest.experiment_repo``: the tiny repository, its experiments'
baseline committed, then ``dvc exp run`` of ``topk4`` (``-S weights.top_k=4``) and ``perceptual``
(``-S train.perceptual_weight=0.2``)) is read with the MLflow client, and its store is served by
``mlflow server`` to headless Chromium, which must render the runs table with both parents.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from stagekit import EXPERIMENTS as RUN
from stagekit import Repo, mlflow_server

CHROMIUM = Path("/usr/bin/chromium")
EXPERIMENTS = tuple(name for name, _ in RUN)  # ("topk4", "perceptual")
# weights.top_k of each: `dvc exp run` leaves its params in the workspace, so `perceptual` (run second) keeps 4
TOP_K = {"topk4": "4", "perceptual": "4"}


@pytest.fixture(scope="module")
def experiments(experiment_repo: Repo) -> dict[str, Any]:
    """The experiment copy's store: its runs, the baseline commit and the stages each experiment reran."""
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{experiment_repo.db}")
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("psychovis")
    runs = client.search_runs([experiment.experiment_id], max_results=5000)
    return {
        "client": client,
        "experiment": experiment,
        "runs": runs,
        "baseline": experiment_repo.check("git", "rev-parse", "HEAD").strip(),
        "db": experiment_repo.db,
        "reran": experiment_repo.reran,
    }


def _by_experiment(runs: list[Any], name: str) -> list[Any]:
    return [run for run in runs if run.data.tags.get("dvc.experiment") == name]


def _parent(runs: list[Any], name: str) -> Any:
    parents = [run for run in _by_experiment(runs, name) if run.data.tags.get("psychovis.run_kind") == "pipeline"]
    assert len(parents) == 1, f"{name}: {len(parents)} parent runs"
    return parents[0]


@pytest.mark.e2e
def test_each_experiment_has_one_parent_run_with_its_stages_nested(experiments: dict[str, Any]) -> None:
    runs = experiments["runs"]
    assert experiments["experiment"].tags["mlflow.experimentKind"] == "custom_model_development"
    # top_k changes the weights and what reads them; the perceptual weight every perceptual fine-tune
    assert {"weights", "train_weighted@topk-0", "evaluate"} <= experiments["reran"]["topk4"]
    assert "train_pixel@0" not in experiments["reran"]["topk4"] | experiments["reran"]["perceptual"]
    for name in EXPERIMENTS:
        parent = _parent(runs, name)
        assert parent.info.run_name == name and parent.info.status == "FINISHED"
        children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert {run.data.tags["dvc.stage"] for run in children} == experiments["reran"][name]
        assert all(run.data.tags["psychovis.run_kind"] == "stage" for run in children)
        assert parent.data.params["weights.top_k"] == TOP_K[name]
    # The runs outside `dvc exp run` (the build, the experiments' baseline) stay under workspace parents.
    assert {run.info.run_name for run in runs if run.data.tags.get("psychovis.run_kind") == "pipeline"} == {
        "workspace",
        *EXPERIMENTS,
    }


@pytest.mark.e2e
def test_every_run_carries_the_experiment_baseline_and_a_clean_commit(experiments: dict[str, Any]) -> None:
    for name in EXPERIMENTS:
        runs = _by_experiment(experiments["runs"], name)
        assert len(runs) >= 5
        for run in runs:
            tags = run.data.tags
            assert tags["dvc.baseline_rev"] == experiments["baseline"]
            assert tags["git_commit"] == experiments["baseline"]  # a bare hash, never "-dirty"
            assert tags["git.dirty"] in ("true", "false")


@pytest.mark.e2e
def test_training_runs_log_the_upstream_params_and_input_hashes(experiments: dict[str, Any]) -> None:
    runs = experiments["runs"]
    topk = {
        name: next(r for r in _by_experiment(runs, name) if r.info.run_name == "train@topk-s0") for name in EXPERIMENTS
    }
    for name, run in topk.items():
        params = run.data.params
        assert params["weights.top_k"] == TOP_K[name]
        assert params["vfss.csf"] and params["stimuli.size"] == "64" and params["pretrain.iterations"] == "2"
        assert len(params["md5.data/weights/topk.safetensors"]) == 32
        assert run.data.tags["dvc.stage"] == "train_weighted@topk-0"
        assert {"weights", "vfss", "pretrain@0"} <= set(run.data.tags["dvc.upstream"].split(","))
        assert "train_images" in {item.dataset.name for item in run.inputs.dataset_inputs}
    # the baseline's own topk fine-tune (top_k 8, a workspace run) read other weights than topk4's
    baseline = [r for r in _by_experiment(runs, "workspace") if r.info.run_name == "train@topk-s0"]
    assert baseline and all(r.data.params["weights.top_k"] == "8" for r in baseline)
    weights = "md5.data/weights/topk.safetensors"
    assert {r.data.params[weights] for r in baseline}.isdisjoint({topk["topk4"].data.params[weights]})
    assert topk["topk4"].data.params[weights] == topk["perceptual"].data.params[weights]  # same top_k, same file
    assert topk["perceptual"].data.params["train.perceptual_weight"] == "0.2"
    # the pixel model does not read the weights: no weights params on it
    pixel = next(r for r in runs if r.info.run_name == "train@pixel-s0")
    assert not any(key.startswith("weights.") for key in pixel.data.params)
    import mlflow

    models = mlflow.search_logged_models(
        experiment_ids=[experiments["experiment"].experiment_id],
        filter_string=f"source_run_id = '{topk['topk4'].info.run_id}'",
        output_format="list",
    )
    assert [model.name for model in models] == ["topk-s0"]


@pytest.mark.e2e
def test_evaluate_logs_one_nested_run_per_method(experiments: dict[str, Any]) -> None:
    runs = experiments["runs"]
    for name in EXPERIMENTS:
        evaluate = next(r for r in _by_experiment(runs, name) if r.info.run_name == "evaluate")
        methods = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == evaluate.info.run_id]
        assert {r.data.tags["method"] for r in methods} == {"bicubic", "pretrain", "pixel", "vgg", "vfss", "topk"}
        for method in methods:
            assert method.info.run_name == f"evaluate@{method.data.tags['method']}"
            assert set(method.data.metrics) == {"psnr_y", "gmsd"}
            assert method.data.params["weights.top_k"] == TOP_K[name]
        # the judges are logged once, on the method runs, not again as "<method>.<judge>" on the stage run
        assert not any("." in key for key in evaluate.data.metrics)


@pytest.mark.e2e
def test_filtering_by_the_experiment_tag_finds_its_runs(experiments: dict[str, Any]) -> None:
    client, experiment = experiments["client"], experiments["experiment"]
    found = client.search_runs([experiment.experiment_id], "tags.`dvc.experiment` = 'topk4'", max_results=1000)
    assert {run.info.run_name for run in found} >= {"topk4", "weights", "train@topk-s0", "evaluate@topk"}
    assert all(run.data.tags["dvc.experiment"] == "topk4" for run in found)


@pytest.fixture
def server(experiments: dict[str, Any], tmp_path: Path) -> Iterator[str]:
    """``mlflow server`` on the experiments' store, on a free port; stopped with its process group."""
    with mlflow_server(tmp_path, experiments["db"]) as url:
        yield url


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    command += ["--window-size=1600,900", "--virtual-time-budget=20000", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


@pytest.mark.e2e
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed")
def test_the_mlflow_ui_shows_both_experiments_in_a_real_browser(
    experiments: dict[str, Any], server: str, tmp_path: Path
) -> None:
    # MLflow 3.17's UI picks GenAI or model-training mode per browser (default GenAI, remembered in
    # localStorage); ``workflowType=machine_learning`` opens the training runs table.
    page = f"{server}/#/experiments/{experiments['experiment'].experiment_id}?workflowType=machine_learning"
    screenshot = tmp_path / "mlflow_runs.png"
    dom = _chromium("--dump-dom", f"--screenshot={screenshot}", page).stdout  # one page load for both
    assert all(name in dom for name in EXPERIMENTS), dom[-3000:]
    pixels = np.asarray(Image.open(screenshot).convert("L"), dtype=np.float64)
    assert pixels.shape == (900, 1600)
    assert pixels.std() > 10 and len(np.unique(pixels)) > 50, "the screenshot is blank"
    if os.environ.get("PSYCHOVIS_SCREENSHOT_DIR"):  # to refresh docs/figures/mlflow_runs.png
        shutil.copy2(screenshot, Path(os.environ["PSYCHOVIS_SCREENSHOT_DIR"]) / "mlflow_runs.png")
