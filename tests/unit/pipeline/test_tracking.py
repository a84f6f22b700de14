"""MLflow tracking: the execution a stage belongs to, its lineage in dvc.yaml, parent/stage/item nesting.

A real SQLite MLflow store (one per module: a fresh store takes seconds to migrate), real git
repositories and the repository's own dvc.yaml resolved by DVC.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from common import read_only
from conftest import ROOT

from psychovis.pipeline import tracking
from psychovis.pipeline.tracking import Execution, current_execution, parent_run, stage_lineage, stage_run


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(autouse=True)
def _no_dvc_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DVC_EXP_NAME", "DVC_EXP_BASELINE_REV", "DVC_STAGE", "DVC_ROOT"):
        monkeypatch.delenv(name, raising=False)


def test_execution_key_separates_experiments_baselines_and_params() -> None:
    base = Execution("exp-a", "abc", "abc", False, {"weights": {"top_k": 8}})
    same = Execution("exp-a", "abc", "def", True, {"weights": {"top_k": 8}})
    assert base.key == same.key  # the commit and dirtiness are tags, not identity
    others = [
        Execution("exp-b", "abc", "abc", False, {"weights": {"top_k": 8}}),
        Execution("exp-a", "abd", "abc", False, {"weights": {"top_k": 8}}),
        Execution("exp-a", "abc", "abc", False, {"weights": {"top_k": 4}}),
    ]
    assert len({base.key, *(other.key for other in others)}) == 4
    assert base.tags == {
        "dvc.experiment": "exp-a",
        "dvc.baseline_rev": "abc",
        "git_commit": "abc",
        "git.dirty": "false",
        "psychovis.execution": base.key,
    }


def test_current_execution_reads_dvc_environment_and_a_clean_git_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = current_execution(tmp_path)
    assert (outside.experiment, outside.commit, outside.dirty) == ("workspace", "unknown", None)
    assert outside.tags["git.dirty"] == "unknown"
    _git(tmp_path, "init", "-q")
    (tmp_path / "params.yaml").write_text("vfss:\n  csf: mannos_sakrison\n")
    _git(tmp_path, "add", "params.yaml")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "base")
    head = _git(tmp_path, "rev-parse", "HEAD")

    workspace = current_execution(tmp_path)
    assert (workspace.experiment, workspace.baseline_rev, workspace.commit, workspace.dirty) == (
        "workspace",
        head,
        head,
        False,
    )
    assert workspace.params == {"vfss": {"csf": "mannos_sakrison"}}
    (tmp_path / "params.yaml").write_text("vfss:\n  csf: mannos_sakrison_code\n")
    monkeypatch.setenv("DVC_EXP_NAME", "exp-a")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "f" * 40)
    experiment = current_execution(tmp_path)
    assert (experiment.experiment, experiment.baseline_rev, experiment.commit) == ("exp-a", "f" * 40, head)
    assert experiment.dirty is True and experiment.tags["git_commit"] == head  # no "-dirty" suffix
    assert experiment.key != workspace.key


@pytest.fixture
def pipeline_copy(tmp_path: Path) -> Path:
    """The repository's dvc.yaml and params.yaml, with the files a `train_weighted@topk-0` run reads."""
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy2(ROOT / name, tmp_path / name)
    for path, content in (("data/models/pretrain-s0.pt", b"warm"), ("data/weights/topk.safetensors", b"topk")):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(content)
    (tmp_path / "data/models/.vgg-s0.partial.pt").write_bytes(b"hidden")  # a partial checkpoint: not an input
    return tmp_path


def test_lineage_of_a_weighted_training_run_reaches_the_weights_and_their_params(
    pipeline_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DVC_STAGE", "train_weighted@topk-0")
    lineage = stage_lineage(pipeline_copy, argv=["elsewhere.py"])
    assert lineage.problem is None and lineage.stage == "train_weighted@topk-0"
    assert {"pretrain@0", "weights", "vfss", "features", "stimuli"} <= set(lineage.upstream)
    assert not {"evaluate", "train_pixel@0", "tuning"} & set(lineage.upstream)
    assert lineage.params["weights.top_k"] == "64" and lineage.params["vfss.csf"] == "mannos_sakrison_code"
    assert lineage.params["stimuli.size"] == "227" and lineage.params["pretrain.iterations"] == "1000"
    assert set(lineage.inputs) == {"data/models/pretrain-s0.pt", "data/weights/topk.safetensors"}


@pytest.mark.slow
def test_lineage_is_found_from_the_command_line_without_dvc(pipeline_copy: Path) -> None:
    by_argv = stage_lineage(pipeline_copy, argv=["stages/train.py", "--loss", "pixel", "--seed", "0", "--resume"])
    assert by_argv.stage == "train_pixel@0" and by_argv.upstream == ("pretrain@0",)
    assert not any(key.startswith(("weights.", "vfss.")) for key in by_argv.params)
    absolute = stage_lineage(pipeline_copy, argv=[str(pipeline_copy / "stages/evaluate.py")])
    assert absolute.stage == "evaluate" and "data/models/pretrain-s0.pt" in absolute.inputs
    assert "data/models/.vgg-s0.partial.pt" not in absolute.inputs
    unknown = stage_lineage(pipeline_copy, argv=["stages/train.py", "--loss", "nope", "--seed", "0"])
    assert unknown.stage is None and "not a stage" in unknown.problem and unknown.params == {}
    assert stage_lineage(pipeline_copy / "data", argv=["x"]).problem == "no dvc.yaml"
    (pipeline_copy / "dvc.yaml").write_text("stages: [")
    assert "could not be resolved" in stage_lineage(pipeline_copy, argv=["stages/vfss.py"]).problem


@pytest.mark.slow
def test_the_stage_table_is_parsed_once_per_dvc_yaml_and_params(pipeline_copy: Path) -> None:
    # DVC parses dvc.yaml in about 1.4 s: a DVC repository keeps the table, keyed by both files' content.
    (pipeline_copy / ".dvc").mkdir()
    first = stage_lineage(pipeline_copy, argv=["stages/weights.py"])
    cached = list((pipeline_copy / ".dvc/tmp/psychovis-lineage").glob("*.json"))
    assert first.params["weights.top_k"] == "64" and len(cached) == 1
    params = pipeline_copy / "params.yaml"
    params.write_text(params.read_text().replace("top_k: 64               # maps kept", "top_k: 32  # maps kept"))
    assert stage_lineage(pipeline_copy, argv=["stages/weights.py"]).params["weights.top_k"] == "32"
    assert len(list(cached[0].parent.glob("*.json"))) == 2
    # Without a .dvc folder nothing is written into the checkout.
    shutil.rmtree(pipeline_copy / ".dvc")
    assert stage_lineage(pipeline_copy, argv=["stages/weights.py"]).stage == "weights"
    assert not (pipeline_copy / ".dvc").exists()


ZEROS_2GIB_MD5 = "a981130cf2b7e09f4686dc273cf7187e"
"""md5 of 2 GiB of zero bytes (``truncate -s 2G f && md5sum f``)."""


@pytest.fixture
def dvc_copy(pipeline_copy: Path) -> Path:
    """:func:`pipeline_copy` as a DVC repository whose state database (DVC's known hashes) lies inside it."""
    from dvc.repo import Repo

    Repo.init(str(pipeline_copy), no_scm=True)
    with Repo(str(pipeline_copy)) as repo, repo.config.edit() as config:
        config["core"]["site_cache_dir"] = str(pipeline_copy / ".dvc-site")
    return pipeline_copy


def _counting_md5(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every file the real :func:`tracking.file_md5` reads."""
    read: list[str] = []
    real = tracking.file_md5

    def counted(path: str | Path) -> str:
        read.append(Path(path).as_posix())
        return real(path)

    monkeypatch.setattr(tracking, "file_md5", counted)
    return read


def test_a_big_input_dvc_has_hashed_is_not_read_again(dvc_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An input's md5 for MLflow is DVC's (an 8 GB file took 90 s to hash again); only unknown files are read."""
    from dvc.repo import Repo
    from dvc_data.hashfile.hash_info import HashInfo

    big = dvc_copy / "data/weights/topk.safetensors"
    os.truncate(big, 2 * 1024**3)  # sparse: 2 GiB of zeros on no disk space; hashing it takes ~10 s here
    with Repo(str(dvc_copy)) as repo:  # what `dvc repro` records when it commits the weights stage's output
        repo.state.save(str(big), repo.fs, HashInfo("md5", ZEROS_2GIB_MD5))
    monkeypatch.setenv("DVC_STAGE", "train_weighted@topk-0")
    read = _counting_md5(monkeypatch)
    started = time.perf_counter()
    lineage = stage_lineage(dvc_copy, argv=["elsewhere.py"])
    logged = tracking.input_md5s(lineage, dvc_copy)
    assert logged["md5.data/weights/topk.safetensors"] == ZEROS_2GIB_MD5
    assert logged["md5.data/models/pretrain-s0.pt"] == hashlib.md5(b"warm").hexdigest()
    assert read == [(dvc_copy / "data/models/pretrain-s0.pt").as_posix()]  # DVC never hashed it: read
    assert time.perf_counter() - started < 10


def test_dvc_hash_is_the_files_md5_and_a_changed_file_is_hashed_again(dvc_copy: Path) -> None:
    from dvc.repo import Repo
    from dvc_data.hashfile.hash import hash_file

    warm = dvc_copy / "data/models/pretrain-s0.pt"
    with Repo(str(dvc_copy)) as repo:
        _, info = hash_file(str(warm), repo.fs, "md5", state=repo.state)  # DVC's own hashing, recorded
    assert info.value == tracking.file_md5(warm)
    argv = ["stages/evaluate.py"]
    assert stage_lineage(dvc_copy, argv=argv).hashes["data/models/pretrain-s0.pt"] == info.value
    warm.write_bytes(b"warm start, retrained")  # DVC's entry no longer matches the file
    lineage = stage_lineage(dvc_copy, argv=argv)
    assert "data/models/pretrain-s0.pt" not in lineage.hashes
    expected = hashlib.md5(b"warm start, retrained").hexdigest()
    assert tracking.input_md5s(lineage, dvc_copy)["md5.data/models/pretrain-s0.pt"] == expected


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite MLflow store for the module (migrating a fresh one takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"


def _client(store: str) -> Any:
    import mlflow

    mlflow.set_tracking_uri(store)
    return mlflow.MlflowClient()


@pytest.mark.slow
def test_parent_run_is_found_again_and_a_duplicate_loses(store: str) -> None:
    client = _client(store)
    experiment_id = client.create_experiment("parents")
    execution = Execution("exp-p", "abc", "abc", False, {"vfss": {"csf": "mannos_sakrison"}})
    first = parent_run(client, experiment_id, execution)
    assert parent_run(client, experiment_id, execution) == first
    parent = client.get_run(first)
    assert parent.info.run_name == "exp-p" and parent.data.params == {"vfss.csf": "mannos_sakrison"}
    assert parent.data.tags["psychovis.run_kind"] == "pipeline"
    # a concurrent stage that created a second parent later: everyone keeps using the earliest
    client.create_run(experiment_id, run_name="exp-p", tags={**execution.tags, "psychovis.run_kind": "pipeline"})
    assert parent_run(client, experiment_id, execution) == first
    other = Execution("exp-q", "abc", "abc", False, execution.params)
    assert parent_run(client, experiment_id, other) != first


@pytest.mark.slow
def test_stage_runs_nest_under_their_execution_with_item_runs_below(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("DVC_EXP_NAME", "exp-n")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "b" * 40)
    (tmp_path / "params.yaml").write_text("evaluate:\n  border: 4\n")
    with stage_run("evaluate", {"evaluate": {"border": 4}}, tmp_path) as run:
        run.log_metrics({"seconds": 1.5, "missing": None, "undefined": math.nan})
        with run.child("evaluate@vfss", tags={"method": "vfss"}) as item:
            item.log_metrics({"psnr_y": 30.0})
        stage_id = run.run_id
    with stage_run("compare", {"compare": {"level": 0.9}}, tmp_path):
        pass
    monkeypatch.setenv("DVC_EXP_NAME", "exp-m")
    with pytest.raises(RuntimeError), stage_run("compare", {"compare": {"level": 0.9}}, tmp_path):
        raise RuntimeError("the stage failed")

    client = _client(store)
    experiment = client.get_experiment_by_name("psychovis")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = {run.info.run_name: run for run in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"exp-n", "evaluate", "evaluate@vfss", "compare", "exp-m"}
    parent = runs["exp-n"]
    assert parent.info.status == "FINISHED" and parent.data.params == {"evaluate.border": "4"}
    assert runs["exp-m"].info.status == "FAILED"  # the parent ends with its latest stage
    assert runs["evaluate"].info.run_id == stage_id
    assert runs["evaluate"].data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert runs["compare"].data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert runs["evaluate@vfss"].data.tags["mlflow.parentRunId"] == stage_id
    assert runs["evaluate"].data.metrics == {"seconds": 1.5}
    assert runs["evaluate@vfss"].data.metrics == {"psnr_y": 30.0}
    assert runs["evaluate@vfss"].data.params == {"evaluate.border": "4"}
    assert runs["evaluate@vfss"].data.tags["method"] == "vfss"
    for name in ("exp-n", "evaluate", "evaluate@vfss", "compare"):
        tags = runs[name].data.tags
        assert tags["dvc.experiment"] == "exp-n" and tags["dvc.baseline_rev"] == "b" * 40, name
        assert tags["git_commit"] == "unknown" and tags["git.dirty"] == "unknown", name
    assert [runs[name].data.tags["psychovis.run_kind"] for name in ("exp-n", "evaluate", "evaluate@vfss")] == [
        "pipeline",
        "stage",
        "item",
    ]
    assert runs["evaluate"].data.tags["psychovis.lineage_problem"] == "no dvc.yaml"


def test_a_fresh_store_opens_on_the_model_training_view_the_readme_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README and `make mlflow` link experiment 1 with ``workflowType=machine_learning``: it is psychovis's."""
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    with stage_run("compare", {"compare": {"level": 0.9}}, tmp_path):
        pass
    experiment = _client(store).get_experiment_by_name("psychovis")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    makefile = (ROOT / "Makefile").read_text()
    linked = re.search(r"^MLFLOW_VIEW = .*/experiments/(\d+)\?workflowType=machine_learning$", makefile, re.M)
    assert linked and linked.group(1) == experiment.experiment_id, (linked, experiment.experiment_id)
    readme = (ROOT / "README.md").read_text()
    assert readme.count(f"/#/experiments/{experiment.experiment_id}?workflowType=machine_learning>") >= 2


def test_models_and_datasets_are_logged_and_the_model_loads_back(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    model = torch.nn.Conv2d(3, 3, 1)
    images = [np.zeros((4, 5, 3), np.float32), np.ones((6, 4, 3), np.float32)]
    table = tmp_path / "table.parquet"
    import pandas as pd

    pd.DataFrame({"frequency_cpd": [1.0, 2.0]}).to_parquet(table)
    with stage_run("train", {"train": {"image_dir": None}}, tmp_path) as run:
        run.log_image_dataset(images)
        run.log_table_input(table, name="data/stimuli/stimuli.parquet")
        run.log_model(model, "tiny-s0")
        run_id = run.run_id
    logged = mlflow.get_run(run_id)
    datasets = {item.dataset.name: item for item in logged.inputs.dataset_inputs}
    assert set(datasets) == {"train_images", "data/stimuli/stimuli.parquet"}
    assert '"bundled"' in datasets["train_images"].dataset.source
    assert {tag.key: tag.value for tag in datasets["train_images"].tags}["mlflow.data.context"] == "training"
    # a table's digest is its file's md5 and its schema is MLflow's own (inferred from a few rows: it is fast)
    stimuli = datasets["data/stimuli/stimuli.parquet"].dataset
    assert stimuli.digest == tracking.file_md5(table)[:8]
    assert '"name": "frequency_cpd"' in stimuli.schema and '"num_rows": 2' in stimuli.profile
    models = mlflow.search_logged_models(filter_string=f"source_run_id = '{run_id}'", output_format="list")
    assert [found.name for found in models] == ["tiny-s0"]
    loaded = mlflow.pytorch.load_model(models[0].model_uri)
    batch = torch.rand(1, 3, 4, 4)
    torch.testing.assert_close(loaded(batch), model(batch))


def test_tracking_uri_follows_dvc_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking.tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    # a queued experiment runs in a temporary copy; DVC_ROOT names the repository it belongs to
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "repo"))
    assert tracking.tracking_uri(tmp_path / "copy") == f"sqlite:///{(tmp_path / 'repo').resolve() / 'mlflow.db'}"


@pytest.mark.slow
def test_a_store_that_turns_read_only_during_a_stage_is_one_line_without_mlflow_tracebacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """A read-only (or full) store found only at a write: MLflow logged a traceback per attempt (100 lines)."""
    from psychovis.pipeline.runner import describe_failure

    monkeypatch.chdir(tmp_path)
    store = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    with stage_run("vfss", {"vfss": {"csf": "mannos_sakrison"}}, tmp_path) as run:
        run.log_metrics({"x": 1.0})
    capfd.readouterr()
    # read-only once the run is open (the URI check refuses a store that is read-only already)
    with (
        pytest.raises(Exception) as failed,  # whatever MLflow raises: the stage's one line for it is checked
        stage_run("vfss", {"vfss": {"csf": "mannos_sakrison"}}, tmp_path) as run,
        read_only(store),
    ):
        run.log_metrics({"x": 2.0})
    printed = capfd.readouterr()
    assert "Traceback" not in printed.err + printed.out and "SQLAlchemy" not in printed.err
    line = describe_failure(failed.value, "vfss", ["vfss"])
    # SQLite says "disk I/O error" for a write refused under an open store (as for a quota), "readonly" at open
    assert re.search(r"\(sqlite3\.OperationalError: (disk I/O error|attempt to write a readonly database)\)", line)
    assert "writable" in line and "damaged" not in line and "Background" not in line and "[SQL" not in line, line
