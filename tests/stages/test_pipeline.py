"""End to end: `dvc repro` on a tiny config (the session's tiny repository, see conftest.py), real MLflow store."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from stagekit import REPO_OVERRIDES, Repo

STAGES = [
    "stimuli",
    "features",
    "tuning",
    "vfss",
    "weights",
    "pretrain@s0",
    "report",
    "train@pixel-s0",
    "train@vgg-s0",
    "train@vfss-s0",
    "train@topk-s0",
    "train@lpips_weighted-s0",
    "evaluate",
    "compare",
    "psychophysics",
]


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def project(tiny_repo_built: Repo) -> tuple[Path, dict[str, str]]:
    """The session's tiny git + DVC repository after one `dvc repro` (tests here leave it as they found it)."""
    return tiny_repo_built.path, tiny_repo_built.env


@pytest.mark.e2e
def test_outputs_have_their_schemas(project: tuple[Path, dict[str, str]]) -> None:
    workdir, _ = project
    expected = {
        "data/stimuli/stimuli.parquet": {"stimulus_id", "kind", "frequency_cpd", "frequency_cpp", "orientation_deg"},
        "data/features/features.parquet": {"layer", "channel", "stimulus_id", "response"},
        "data/tuning/tuning.parquet": {
            "layer",
            "channel",
            "preferred_frequency_cpd",
            "bandwidth_octaves",
            "tuning_class",
        },
        "data/vfss/vfss.parquet": {"layer", "channel", "vfss"},
        "data/weights/weights.parquet": {"layer", "channel", "vfss", "weight_vfss", "weight_topk", "rank"},
        "data/evaluate/per_image.parquet": {"method", "seed", "image", "judge", "value"},
        "data/compare/differences.parquet": {"method", "baseline", "judge", "mean", "ci_low", "ci_high", "win_share"},
    }
    for path, columns in expected.items():
        frame = pd.read_parquet(workdir / path)
        assert columns <= set(frame.columns), path
        assert len(frame) > 0
    features = pd.read_parquet(workdir / "data/features/features.parquet")
    assert features.groupby("layer").channel.nunique().to_dict() == {"relu1_1": 64, "relu2_1": 128, "relu3_2": 256}
    assert len(features) == (64 + 128 + 256) * 10  # 10 frequencies: 0.1, 3.1, ..., 27.1
    weights = pd.read_parquet(workdir / "data/weights/weights.parquet")
    assert weights["weight_vfss"].sum() == pytest.approx(1.0)
    assert (weights["weight_topk"] > 0).sum() == 8
    per_image = pd.read_parquet(workdir / "data/evaluate/per_image.parquet")
    expected_methods = {"bicubic", "pretrain", "pixel", "vgg", "vfss", "topk", "lpips_weighted", "geometry_aware"}
    assert set(per_image["method"]) == expected_methods
    # every method is scored on every (seed, image) by every judge, so the compare stage can pair them
    assert per_image.groupby("method").size().nunique() == 1
    assert set(per_image["seed"]) == {0} and set(per_image["judge"]) == set(REPO_OVERRIDES["evaluate"]["judges"])
    compare = json.loads((workdir / "data/compare/summary.json").read_text())
    assert {"vfss_vs_vgg", "lpips_weighted_vs_vgg", "vgg_vs_pixel"} <= set(compare)
    headline = json.loads((workdir / "metrics/compare.json").read_text())
    methods = expected_methods - {"vgg"}
    primary = yaml.safe_load((workdir / "params.yaml").read_text())["compare"]["primary_judge"]
    assert set(headline) == {f"{primary}_vs_vgg", "fragile_vs_vgg"} and set(headline[f"{primary}_vs_vgg"]) == methods
    for name in ("comparison.png", "bands.png"):
        assert (workdir / "data/evaluate" / name).stat().st_size > 1000


@pytest.mark.e2e
def test_rigour_outputs_null_sweep_gain_and_sensitivity(project: tuple[Path, dict[str, str]]) -> None:
    """The psychophysics null, criterion sweep, Nyquist-safe and gain-normalised scores; VFSS gain and sensitivity."""
    workdir, _ = project
    headline = json.loads((workdir / "metrics/psychophysics.json").read_text())
    assert headline["null_draws"] == 20 and 0 <= headline["subsets_k8"]["topk_pct"] <= 100
    assert set(headline["topk_pct_by_criterion"]) == {"c0.01", "c0.1"}
    psychophysics = json.loads((workdir / "data/psychophysics/summary.json").read_text())
    assert psychophysics["null_draws"] == 20
    assert set(psychophysics["subsets_k8"]) == {"main", "nyquist_safe", "gain_normalised"}
    assert set(psychophysics["criterion_sweep"]) == {"c0.01", "c0.1"}
    assert set(psychophysics["csfs"]) == {"mannos_sakrison_code", "barten_2003"}
    assert {"vgg", "vfss", "dists"} <= set(psychophysics["distances"])
    nulls = pd.read_csv(workdir / "data/psychophysics/nulls.csv")
    assert len(nulls) == 2 * 2 * 2 * 2 * 2  # levels x controls x ranges x CSFs x ks
    # A tiny grid can leave a condition without any threshold (NaN); the rest are percentiles of <= 20 draws.
    percentiles = nulls["topk_percentile"].dropna()
    assert len(percentiles) >= len(nulls) // 2 and percentiles.between(0, 100).all()
    assert (nulls["draws"] <= 20).all()
    assert set(json.loads((workdir / "metrics/vfss.json").read_text())["spearman_range"]) == {
        "relu1_1",
        "relu2_1",
        "relu3_2",
    }
    vfss = json.loads((workdir / "data/vfss/summary.json").read_text())
    assert set(vfss["gain"]) == {"relu1_1", "relu2_1", "relu3_2"}
    assert {"input_scaling=matlab_literal", "normalise=mean_response", "csf=barten_2003"} <= set(vfss["sensitivity"])
    other = pd.read_parquet(workdir / "data/features/other_scaling.parquet")
    features = pd.read_parquet(workdir / "data/features/features.parquet")
    assert len(other) == len(features) and not other["response"].equals(features["response"])
    results = (workdir / "docs/results.md").read_text()
    assert "## Are the high-VFSS maps the human-like ones? (psychophysics)" in results
    assert "## What does VFSS measure?" in results


@pytest.mark.e2e
def test_every_stage_logged_an_mlflow_run(project: tuple[Path, dict[str, str]]) -> None:
    workdir, _ = project
    with sqlite3.connect(workdir.parent / "mlflow.db") as db:
        runs = db.execute("select name, status from runs").fetchall()
        tags = dict(db.execute("select key, count(*) from tags group by key").fetchall())
    names = sorted(name for name, _ in runs)
    assert set(STAGES) <= set(names) and names.count("workspace") == 1  # one parent run for the repro
    assert len(names) == len(set(names)), "one run per stage"
    assert all(status == "FINISHED" for _, status in runs)
    assert tags["stage"] == tags["params_hash"] == tags["git_commit"] - 1 == len(names) - 1


@pytest.mark.e2e
def test_second_repro_changes_nothing_and_params_rerun_only_dependents(project: tuple[Path, dict[str, str]]) -> None:
    workdir, env = project
    again = _run(["dvc", "repro"], workdir, env)
    assert again.returncode == 0
    assert "Running stage" not in again.stdout
    params_path = workdir / "params.yaml"
    original = params_path.read_text()
    params = yaml.safe_load(original)
    params["vfss"]["csf"] = "mannos_sakrison"
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        status = _run(["dvc", "status", "--json"], workdir, env)
    finally:
        params_path.write_text(original)
    assert status.returncode == 0
    changed = set(yaml.safe_load(status.stdout))
    assert "vfss" in changed
    assert not changed & {"stimuli", "features", "tuning", "pretrain@0", "train_pixel@0", "train_baseline@vgg-0"}


@pytest.mark.e2e
def test_more_seeds_add_runs_without_retraining(project: tuple[Path, dict[str, str]]) -> None:
    workdir, env = project
    params_path = workdir / "params.yaml"
    original = params_path.read_text()
    params = yaml.safe_load(original)
    params["train"]["seeds"] = [0, 1]
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        status = _run(["dvc", "status", "--json"], workdir, env)
    finally:
        params_path.write_text(original)
    changed = set(yaml.safe_load(status.stdout))
    assert {"train_pixel@1", "train_weighted@vfss-1", "evaluate"} <= changed
    assert not changed & {"pretrain@0", "train_pixel@0", "train_weighted@vfss-0"}


@pytest.mark.e2e
def test_bad_param_stops_the_stage_with_one_line(project: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    workdir, env = project
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["vfss"]["csf"] = "barton"
    bad = tmp_path / "bad_params.yaml"
    bad.write_text(yaml.safe_dump(params))
    before = (workdir / "data/vfss/vfss.parquet").read_bytes()
    result = _run([sys.executable, "stages/vfss.py", "--params", str(bad)], workdir, env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "vfss.csf" in lines[0] and "mannos_sakrison" in lines[0]
    assert (workdir / "data/vfss/vfss.parquet").read_bytes() == before


@pytest.mark.e2e
def test_a_forced_rebuild_of_the_analysis_gives_byte_identical_parquet(tiny_repo_built: Repo, tmp_path: Path) -> None:
    copy = tiny_repo_built.copy(tmp_path)  # the rebuild logs new MLflow runs: not in the shared repository
    workdir, env = copy.path, copy.env
    # The analysis stages downstream of the features; training's determinism is tested in test_training
    # (rebuilding the models would double this test's time), stimuli's and features' in test_faults.
    stages = ["tuning", "vfss", "weights", "psychophysics", "atlas_features", "atlas"]
    parquet = sorted(path for stage in stages for path in (workdir / "data" / stage).rglob("*.parquet"))
    assert len(parquet) >= 10
    before = {path: path.read_bytes() for path in parquet}
    forced = _run(["dvc", "repro", "--force", "--single-item", *stages], workdir, env)
    assert forced.returncode == 0, forced.stderr[-3000:]
    changed = [str(path.relative_to(workdir)) for path in parquet if path.read_bytes() != before[path]]
    assert changed == [], f"not deterministic on the CPU: {changed}"
