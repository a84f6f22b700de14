"""Two `dvc exp run`s of a tiny pipeline give two parent runs in MLflow, their stages nested, as DVC groups them.

A git + DVC copy of the tiny project (its upstream stages already run and `dvc commit`-ed, so the
experiments train and evaluate only) runs ``dvc exp run evaluate`` twice: ``exp-a`` with the tiny
params, ``exp-b`` with ``-S weights.top_k=4``. The MLflow store is then read with the client, and
served by ``mlflow server`` to headless Chromium, which must render the runs table with both parents.
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
from stagekit import Built, built_project, mlflow_server, stage_env

CHROMIUM = Path("/usr/bin/chromium")
# The pixel model always trains (stage train_pixel); baseline_losses lists the other baselines.
OVERRIDES = {"baseline_losses": ["vgg"], "weighted_losses": ["topk"], "seeds": [0]}
EXPERIMENTS = ("exp-a", "exp-b")


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def experiments(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the two experiments; the store's runs by name, the baseline commit and the store's path."""
    import yaml

    built: Built = built_project(tmp_path_factory)
    base = tmp_path_factory.mktemp("experiments")
    project = built.clone(base)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"].update(OVERRIDES)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = stage_env(project)
    for command in (
        ["git", "init", "-q"],
        ["git", "config", "user.email", "test@example.com"],
        ["git", "config", "user.name", "test"],
        ["dvc", "init", "-q"],
        ["dvc", "config", "core.analytics", "false"],
        # The upstream outputs exist already: record them instead of recomputing them.
        ["dvc", "commit", "-f", "-q", "stimuli", "features", "vfss", "weights"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", "baseline"],
    ):
        _run(command, project, env)
    baseline = _run(["git", "rev-parse", "HEAD"], project, env).stdout.strip()
    _run(["dvc", "exp", "run", "evaluate", "-n", "exp-a"], project, env)
    _run(["dvc", "exp", "run", "evaluate", "-n", "exp-b", "-S", "weights.top_k=4"], project, env)

    import mlflow

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("psychovis")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return {
        "client": client,
        "experiment": experiment,
        "runs": runs,
        "baseline": baseline,
        "db": base / "mlflow.db",
        "project": project,
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
    expected = {
        "exp-a": {"pretrain", "train@pixel-s0", "train@vgg-s0", "train@topk-s0", "evaluate"},
        # top_k changes the weights and what reads them; the warm start and the pixel model are reused
        "exp-b": {"weights", "train@topk-s0", "evaluate"},
    }
    for name, stages in expected.items():
        parent = _parent(runs, name)
        assert parent.info.run_name == name and parent.info.status == "FINISHED"
        children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert {run.info.run_name for run in children} == stages
        assert all(run.data.tags["psychovis.run_kind"] == "stage" for run in children)
        assert parent.data.params["weights.top_k"] == ("4" if name == "exp-b" else "8")
    # The runs of the workspace (the upstream stages run by hand) stay under their own parent.
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
        assert params["weights.top_k"] == ("4" if name == "exp-b" else "8")
        assert params["vfss.csf"] and params["stimuli.size"] == "32" and params["pretrain.iterations"] == "2"
        assert len(params["md5.data/weights/topk.safetensors"]) == 32
        assert run.data.tags["dvc.stage"] == "train_weighted@topk-0"
        assert {"weights", "vfss", "pretrain"} <= set(run.data.tags["dvc.upstream"].split(","))
        assert "train_images" in {item.dataset.name for item in run.inputs.dataset_inputs}
    assert (
        topk["exp-a"].data.params["md5.data/weights/topk.safetensors"]
        != topk["exp-b"].data.params["md5.data/weights/topk.safetensors"]
    )
    # the pixel model does not read the weights: no weights params on it
    pixel = next(r for r in _by_experiment(runs, "exp-a") if r.info.run_name == "train@pixel-s0")
    assert not any(key.startswith("weights.") for key in pixel.data.params)
    import mlflow

    models = mlflow.search_logged_models(
        experiment_ids=[experiments["experiment"].experiment_id],
        filter_string=f"source_run_id = '{topk['exp-b'].info.run_id}'",
        output_format="list",
    )
    assert [model.name for model in models] == ["topk-s0"]


@pytest.mark.e2e
def test_evaluate_logs_one_nested_run_per_method(experiments: dict[str, Any]) -> None:
    runs = experiments["runs"]
    for name in EXPERIMENTS:
        evaluate = next(r for r in _by_experiment(runs, name) if r.info.run_name == "evaluate")
        methods = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == evaluate.info.run_id]
        assert {r.data.tags["method"] for r in methods} == {"bicubic", "pretrain", "pixel", "vgg", "topk"}
        for method in methods:
            assert method.info.run_name == f"evaluate@{method.data.tags['method']}"
            assert set(method.data.metrics) == {"psnr_y", "gmsd"}
            assert method.data.params["weights.top_k"] == ("4" if name == "exp-b" else "8")
        # the judges are logged once, on the method runs, not again as "<method>.<judge>" on the stage run
        assert not any("." in key for key in evaluate.data.metrics)


@pytest.mark.e2e
def test_filtering_by_the_experiment_tag_finds_its_runs(experiments: dict[str, Any]) -> None:
    client, experiment = experiments["client"], experiments["experiment"]
    found = client.search_runs([experiment.experiment_id], "tags.`dvc.experiment` = 'exp-b'", max_results=1000)
    assert {run.info.run_name for run in found} >= {"exp-b", "weights", "train@topk-s0", "evaluate@topk"}
    assert all(run.data.tags["dvc.experiment"] == "exp-b" for run in found)


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
    dom = _chromium("--dump-dom", page).stdout
    assert "exp-a" in dom and "exp-b" in dom, dom[-3000:]
    screenshot = tmp_path / "mlflow_runs.png"
    _chromium(f"--screenshot={screenshot}", page)
    pixels = np.asarray(Image.open(screenshot).convert("L"), dtype=np.float64)
    assert pixels.shape == (900, 1600)
    assert pixels.std() > 10 and len(np.unique(pixels)) > 50, "the screenshot is blank"
    if os.environ.get("PSYCHOVIS_SCREENSHOT_DIR"):  # to refresh docs/figures/mlflow_runs.png
        shutil.copy2(screenshot, Path(os.environ["PSYCHOVIS_SCREENSHOT_DIR"]) / "mlflow_runs.png")
