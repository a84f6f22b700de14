"""Human-judgement readers, scores and stage, on tiny fixtures written in each data set's public layout."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ROOT
from PIL import Image
from scipy.stats import kendalltau, spearmanr

from psychovis import human_judgement as hj
from psychovis.distances import build_distances
from psychovis.distances.loss import PsychovisualLoss
from psychovis.errors import DataError
from psychovis.images import read_image
from psychovis.pipeline import tracking
from psychovis.pipeline.runner import StageContext

SIZE = 32
NOISE = (0.02, 0.05, 0.1, 0.2)  # increasing distortion levels 1..4; MOS falls with the level


def _reference(seed: int) -> np.ndarray:
    """A smooth colour pattern in [0.2, 0.8] (so little of the added noise clips)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    channels = [np.sin(2 * np.pi * (rng.uniform(1, 3) * x + rng.uniform(1, 3) * y) + rng.uniform(0, 6)) for _ in "rgb"]
    return 0.5 + 0.3 * np.stack(channels, axis=-1)


def _noisy(image: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    return np.clip(image + np.random.default_rng(seed).normal(0, sigma, image.shape), 0, 1)


def _save(image: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(image * 255).astype(np.uint8), "RGB").save(path)


@pytest.fixture(scope="module")
def tid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TID2013 layout: 2 references (I01.BMP, lower-case i02.bmp), 2 noise types x 4 levels, mixed-case names."""
    root = tmp_path_factory.mktemp("tid2013")
    lines = []
    for ref in (1, 2):
        image = _reference(ref)
        _save(image, root / "reference_images" / (f"I{ref:02d}.BMP" if ref == 1 else f"i{ref:02d}.bmp"))
        for kind in (1, 2):
            for level, sigma in enumerate(NOISE, 1):
                name = f"i{ref:02d}_{kind:02d}_{level}.bmp"
                on_disk = name.upper() if ref == 2 else name  # the archive has I25_01_1.BMP next to i01_01_1.bmp
                _save(_noisy(image, sigma, 100 * ref + 10 * kind + level), root / "distorted_images" / on_disk)
                lines.append(f"{7.0 - 1.5 * level - 0.1 * kind + 0.03 * ref:.5f} {name}")
    (root / "mos_with_names.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def kadid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """KADID-10k layout: dmos.csv and images/ with 2 references x 4 noise levels."""
    root = tmp_path_factory.mktemp("kadid10k")
    rows = ["dist_img,ref_img,dmos,var"]
    for ref in (1, 2):
        image = _reference(10 + ref)
        _save(image, root / "images" / f"I{ref:02d}.png")
        for level, sigma in enumerate(NOISE, 1):
            _save(_noisy(image, sigma, 7 * ref + level), root / "images" / f"I{ref:02d}_01_{level:02d}.png")
            rows.append(f"I{ref:02d}_01_{level:02d}.png,I{ref:02d}.png,{4.8 - 0.9 * level + 0.05 * ref:.3f},0.5")
    (root / "dmos.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def bapps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """BAPPS 2AFC layout (root = .../2afc): easy triplets; traditional: p0 close, judge 0; cnn: p1 close, judge 1."""
    root = tmp_path_factory.mktemp("dataset") / "2afc"
    for subset, judge in (("traditional", 0.0), ("cnn", 1.0)):
        folder = root / "val" / subset
        for index in range(3):
            identifier = f"{index:06d}"
            image = _reference(50 + index)
            close, far = _noisy(image, 0.02, index), _noisy(image, 0.3, 99 + index)
            _save(image, folder / "ref" / f"{identifier}.png")
            _save(close if judge == 0.0 else far, folder / "p0" / f"{identifier}.png")
            _save(far if judge == 0.0 else close, folder / "p1" / f"{identifier}.png")
            (folder / "judge").mkdir(parents=True, exist_ok=True)
            np.save(folder / "judge" / f"{identifier}.npy", np.array([judge]))
    return root


@pytest.fixture(scope="module")
def vfss_scores() -> dict[str, np.ndarray]:
    return {"relu3_2": np.random.default_rng(0).random(256)}


# ------------------------------------------------------------------------------------------ readers


def test_read_tid2013(tid: Path) -> None:
    frame = hj.read_tid2013(tid)
    assert list(frame.columns[:4]) == ["reference", "distorted", "score", "dataset"]
    assert len(frame) == 16 and set(frame["dataset"]) == {"tid2013"}
    assert all(Path(path).is_absolute() and Path(path).is_file() for path in [*frame["reference"], *frame["distorted"]])
    assert Path(frame["reference"][0]).name == "I01.BMP"
    assert Path(frame["reference"].iloc[-1]).name == "i02.bmp"  # matched by number, case-insensitively
    assert Path(frame["distorted"].iloc[-1]).name == "I02_02_4.BMP"
    assert frame["score"].iloc[0] == pytest.approx(7.0 - 1.5 - 0.1 + 0.03)
    assert frame["level"].tolist()[:4] == [1, 2, 3, 4] and set(frame["distortion"]) == {1, 2}


def test_read_kadid10k(kadid: Path) -> None:
    frame = hj.read_kadid10k(kadid)
    assert list(frame.columns[:4]) == ["reference", "distorted", "score", "dataset"]
    assert len(frame) == 8 and set(frame["dataset"]) == {"kadid10k"}
    assert Path(frame["reference"][0]).name == "I01.png" and Path(frame["distorted"][0]).name == "I01_01_01.png"
    assert frame["score"].tolist()[:4] == pytest.approx([3.95, 3.05, 2.15, 1.25])  # dmos falls with the level
    assert frame["level"].tolist()[:4] == [1, 2, 3, 4]


def test_read_bapps(bapps: Path) -> None:
    frame = hj.read_bapps_2afc(bapps)
    assert {"ref", "p0", "p1", "judge", "subset"} <= set(frame.columns)
    assert len(frame) == 6 and sorted(set(frame["subset"])) == ["cnn", "traditional"]
    assert all(Path(path).is_file() for column in ("ref", "p0", "p1") for path in frame[column])
    assert frame.groupby("subset")["judge"].first().to_dict() == {"cnn": 1.0, "traditional": 0.0}
    only = hj.read_bapps_2afc(bapps, subsets=["traditional"])
    assert len(only) == 3 and set(only["subset"]) == {"traditional"}


def _one_line_error(call, *needles: str) -> None:
    with pytest.raises(DataError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


def test_wrong_roots_name_what_is_missing(tid: Path, kadid: Path, bapps: Path, tmp_path: Path) -> None:
    _one_line_error(lambda: hj.read_tid2013(tmp_path / "nope"), "nope", "does not exist", "mos_with_names.txt")
    _one_line_error(lambda: hj.read_tid2013(kadid), "reference_images", "is missing")
    _one_line_error(lambda: hj.read_kadid10k(tid), "dmos.csv", "is missing", "dist_img,ref_img,dmos,var")
    _one_line_error(lambda: hj.read_bapps_2afc(bapps.parent), "val", "point at", "2afc")
    _one_line_error(lambda: hj.read_bapps_2afc(bapps, subsets=["superres"]), "superres", "does not exist")

    broken = tmp_path / "tid"
    broken.mkdir()
    for name in ("reference_images", "distorted_images"):
        (broken / name).symlink_to(tid / name)
    (broken / "mos_with_names.txt").write_text("5.0 i01_01_1.bmp\n4.0 i01_09_1.bmp\n")
    _one_line_error(lambda: hj.read_tid2013(broken), "i01_09_1.bmp", "mos_with_names.txt:2")
    (broken / "mos_with_names.txt").write_text("five i01_01_1.bmp\n")
    _one_line_error(lambda: hj.read_tid2013(broken), "mos_with_names.txt:1")

    partial = tmp_path / "2afc" / "val" / "cnn"
    for name in ("ref", "p0", "p1", "judge"):
        (partial / name).mkdir(parents=True)
    np.save(partial / "judge" / "000000.npy", np.array([0.5]))
    _save(_reference(0), partial / "ref" / "000000.png")
    _save(_reference(0), partial / "p0" / "000000.png")
    _one_line_error(lambda: hj.read_bapps_2afc(tmp_path / "2afc"), "p1", "000000.png", "is missing")
    _save(_reference(0), partial / "p1" / "000000.png")
    np.save(partial / "judge" / "000000.npy", np.array([1.5]))
    _one_line_error(lambda: hj.read_bapps_2afc(tmp_path / "2afc"), "000000.npy", "[0, 1]")


def test_subsample_is_seeded_and_per_subset(tid: Path, bapps: Path) -> None:
    frame = hj.read_tid2013(tid)
    kept = hj.subsample(frame, 5, seed=3)
    assert len(kept) == 5 and kept.equals(hj.subsample(frame, 5, seed=3))
    assert hj.subsample(frame, None).equals(frame)
    triplets = hj.subsample(hj.read_bapps_2afc(bapps), 2)
    assert triplets["subset"].value_counts().to_dict() == {"traditional": 2, "cnn": 2}


# ------------------------------------------------------------------------------------------- scores


def test_rank_correlations_match_hand_computed_values() -> None:
    assert hj.rank_correlations([1, 2, 3, 4], [4, 3, 2, 1]) == {
        "srcc": pytest.approx(-1.0),
        "krcc": pytest.approx(-1.0),
    }
    # ranks of the score 5,3,4,1,2: sum d^2 = 16+1+1+9+9 = 36 -> rho = 1 - 6*36/120 = -0.8;
    # 2 concordant and 8 discordant pairs -> tau = -6/10
    result = hj.rank_correlations([1, 2, 3, 4, 5], [5, 3, 4, 1, 2])
    assert result["srcc"] == pytest.approx(-0.8) and result["krcc"] == pytest.approx(-0.6)
    assert all(math.isnan(value) for value in hj.rank_correlations([1, 1, 1], [1, 2, 3]).values())


def test_two_afc_matches_hand_computed_values() -> None:
    d0, d1 = np.array([1.0, 2.0, 3.0, 3.0]), np.array([2.0, 1.0, 3.0, 5.0])
    judge = np.array([0.2, 0.7, 0.4, 1.0])
    # d1 > d0: 1 - 0.2; d1 < d0: 0.7; tie: 0.5; d1 > d0 but everybody preferred p1: 0
    np.testing.assert_allclose(hj.two_afc_agreement(d0, d1, judge), [0.8, 0.7, 0.5, 0.0])
    np.testing.assert_allclose(hj.human_agreement(np.array([0.0, 0.5, 1.0])), [1.0, 0.5, 1.0])
    table = hj.score_2afc(
        {"a": d0}, {"a": d1}, judge, np.array(["x", "x", "y", "y"]), bootstrap=0, dataset="bapps"
    ).set_index(["dataset", "distance"])
    assert table.loc[("bapps/x", "a"), "value"] == pytest.approx(0.75)
    assert table.loc[("bapps/y", "a"), "value"] == pytest.approx(0.25)
    assert table.loc[("bapps", "a"), "value"] == pytest.approx(0.5)
    assert table.loc[("bapps", "a"), "n"] == 4 and math.isnan(table.loc[("bapps", "a"), "ci_low"])
    assert ("bapps/x", "human") in table.index


def test_bootstrap_is_seeded_vectorised_and_contains_the_estimate() -> None:
    rng = np.random.default_rng(1)
    agreement = rng.random(300)
    low, high = hj.percentile_ci(hj.bootstrap_means(agreement, 200, seed=4))
    assert low < agreement.mean() < high
    assert (low, high) == hj.percentile_ci(hj.bootstrap_means(agreement, 200, seed=4))
    assert (low, high) != hj.percentile_ci(hj.bootstrap_means(agreement, 200, seed=5))
    index = hj.bootstrap_indices(300, 200, seed=4)
    np.testing.assert_allclose(hj.bootstrap_means(agreement, 200, seed=4), agreement[index].mean(axis=1))

    distance = rng.random(60)
    score = -distance + rng.normal(0, 0.3, 60)
    samples = hj.bootstrap_correlations(distance, score, 50, seed=2)
    rows = hj.bootstrap_indices(60, 50, seed=2)
    for row in (0, 17, 49):
        assert samples["srcc"][row] == pytest.approx(spearmanr(distance[rows[row]], score[rows[row]])[0])
        assert samples["krcc"][row] == pytest.approx(kendalltau(distance[rows[row]], score[rows[row]])[0])
    table = hj.score_mos("toy", {"d": distance}, score, bootstrap=200, seed=2).set_index("metric")
    for metric in ("srcc", "krcc"):
        assert table.loc[metric, "ci_low"] < table.loc[metric, "value"] < table.loc[metric, "ci_high"]
    assert table.loc["srcc", "value"] == pytest.approx(-spearmanr(distance, score)[0])
    assert table.equals(hj.score_mos("toy", {"d": distance}, score, bootstrap=200, seed=2).set_index("metric"))


def test_to_common_size_resizes_the_short_side_and_crops_the_centre() -> None:
    image = np.zeros((40, 80, 3), dtype=np.float32)
    image[:, 30:50] = 1.0  # a centred vertical bar
    out = hj.to_common_size(image, 20)
    assert out.shape == (3, 20, 20)
    assert float(out[:, :, 10].min()) > 0.9 and float(out[:, :, 0].max()) < 0.1
    assert hj.to_common_size(image, None).shape == (3, 40, 80)


# ------------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def distances() -> dict:
    return build_distances({}, include=["pixel_mse", "vgg"], layers=["relu3_2"])


def test_end_to_end_on_the_fixtures(tid: Path, kadid: Path, bapps: Path, distances: dict, vfss_scores: dict) -> None:
    datasets = {
        "tid2013": hj.read_tid2013(tid),
        "kadid10k": hj.read_kadid10k(kadid),
        "bapps": hj.read_bapps_2afc(bapps),
    }
    scores, subsets = hj.evaluate(
        datasets,
        distances,
        vfss_scores,
        ["relu3_2"],
        SIZE,
        batch_size=8,
        bootstrap=100,
        subset_ks=[4, 256],
        subset_seeds=2,
    )
    assert list(scores.columns) == list(hj.SCORE_COLUMNS) and list(subsets.columns) == list(hj.SUBSET_COLUMNS)
    table = scores.set_index(["dataset", "distance", "metric"])
    for dataset in ("tid2013", "kadid10k"):
        raw = hj.rank_correlations(
            hj.pair_distances(datasets[dataset]["reference"], datasets[dataset]["distorted"], distances, SIZE).values[
                "pixel_mse"
            ],
            datasets[dataset]["score"],
        )
        assert raw["srcc"] < -0.9  # larger error, lower MOS
        assert table.loc[(dataset, "pixel_mse", "srcc"), "value"] == pytest.approx(-raw["srcc"])
        assert table.loc[(dataset, "vgg", "srcc"), "value"] > 0.7
    for subset in ("bapps", "bapps/traditional", "bapps/cnn"):
        assert table.loc[(subset, "pixel_mse", "2afc"), "value"] == pytest.approx(1.0)
        assert table.loc[(subset, "vgg", "2afc"), "value"] == pytest.approx(1.0)
        assert table.loc[(subset, "human", "2afc"), "value"] == pytest.approx(1.0)
    assert (scores["ci_low"] <= scores["value"] + 1e-12).all() and (scores["value"] <= scores["ci_high"] + 1e-12).all()
    assert table.loc[("tid2013", "vgg", "srcc"), "n"] == 16

    # map subsets: 2 deterministic selections + 2 random seeds, per k and data set; k = all 256 maps is plain VGG
    assert len(subsets) == 3 * 2 * 4
    full = subsets[(subsets["k"] == 256) & (subsets["dataset"] == "tid2013")]["value"]
    np.testing.assert_allclose(full, table.loc[("tid2013", "vgg", "srcc"), "value"], atol=1e-9)
    summary = hj.subset_summary(subsets)
    assert set(summary["selection"]) == {"topk", "bottomk", "randomk"}


def test_shared_pass_equals_calling_the_loss_module(tid: Path) -> None:
    frame = hj.read_tid2013(tid).iloc[:5]
    weights = torch.rand(256)
    from psychovis.feature_weights import FeatureWeights

    module = PsychovisualLoss(FeatureWeights("vgg16", "vfss", {"relu3_2": weights}), reduction="none")
    pairs = hj.pair_distances(frame["reference"], frame["distorted"], {"w": module}, SIZE, batch_size=2)
    reference = torch.stack([hj.to_common_size(read_image(path), SIZE) for path in frame["reference"]])
    distorted = torch.stack([hj.to_common_size(read_image(path), SIZE) for path in frame["distorted"]])
    with torch.no_grad():
        direct = module(distorted, reference).double().numpy()
    np.testing.assert_allclose(pairs.values["w"], direct, rtol=1e-4)
    assert pairs.map_errors["relu3_2"].shape == (5, 256)


# ------------------------------------------------------------------------------------------- stage


def _stage_module():
    spec = importlib.util.spec_from_file_location("human_judgement_stage", ROOT / "stages" / "human_judgement.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _params(**overrides) -> dict:
    section = {
        "tid2013": None,
        "kadid10k": None,
        "bapps": None,
        "bapps_split": "val",
        "bapps_subsets": None,
        "distances": ["pixel_mse", "vgg"],
        "layers": ["relu3_2"],
        "top_k": 8,
        "size": SIZE,
        "batch_size": 8,
        "bootstrap": 20,
        "subset_ks": [8],
        "subset_seeds": 1,
        "max_pairs": None,
        **overrides,
    }
    return {"base": {"seed": 0, "device": "cpu", "backbone": "vgg16"}, "human_judgement": section}


def test_stage_skips_with_empty_outputs_when_no_path_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    stage = _stage_module()
    monkeypatch.chdir(tmp_path)
    stage.main(StageContext("human_judgement", _params(), argparse.Namespace(), tmp_path))
    assert "skipped: no dataset path set in params.yaml human_judgement" in capsys.readouterr().out
    assert json.loads((tmp_path / "metrics/human_judgement.json").read_text()) == {
        "skipped": "no dataset path set in params.yaml human_judgement (tid2013, kadid10k, bapps)"
    }
    scores = pd.read_parquet(tmp_path / "data/human_judgement/scores.parquet")
    subsets = pd.read_parquet(tmp_path / "data/human_judgement/subsets.parquet")
    assert scores.empty and list(scores.columns) == list(hj.SCORE_COLUMNS)
    assert subsets.empty and list(subsets.columns) == list(hj.SUBSET_COLUMNS)
    assert (tmp_path / "data/human_judgement/scores.png").stat().st_size > 0
    assert (tmp_path / "data/human_judgement/subsets.png").stat().st_size > 0


def test_stage_refuses_a_wrong_path_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stage = _stage_module()
    monkeypatch.chdir(tmp_path)
    context = StageContext("human_judgement", _params(kadid10k="no/such"), argparse.Namespace(), tmp_path)
    _one_line_error(lambda: stage.main(context), str(tmp_path / "no" / "such"), "dmos.csv")
    assert not (tmp_path / "data").exists()


@pytest.mark.slow
def test_stage_runs_on_a_local_copy(
    tid: Path, bapps: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    stage = _stage_module()
    monkeypatch.chdir(tmp_path)
    logged: dict = {"metrics": {}, "artifacts": []}

    class FakeRun:  # MLflow itself is tested in test_mlflow_server; a fresh sqlite store costs ~12 s here
        def log_metrics(self, metrics: dict, step: int | None = None) -> None:
            logged["metrics"].update(metrics)

        def log_artifact(self, path: Path, folder: str | None = None) -> None:
            logged["artifacts"].append(Path(path).name)

    @contextlib.contextmanager
    def fake_stage_run(stage: str, params: dict, root: Path, run_name=None, extra_tags=None):
        logged["stage"], logged["params"] = stage, params
        yield FakeRun()

    monkeypatch.setattr(tracking, "stage_run", fake_stage_run)
    (tmp_path / "data/vfss").mkdir(parents=True)
    vfss = pd.DataFrame({"layer": "relu3_2", "channel": np.arange(256), "vfss": np.random.default_rng(0).random(256)})
    vfss.to_parquet(tmp_path / "data/vfss/vfss.parquet")
    params = _params(tid2013=str(tid), bapps=str(bapps), max_pairs=4)
    stage.main(StageContext("human_judgement", params, argparse.Namespace(), tmp_path))
    scores = pd.read_parquet(tmp_path / "data/human_judgement/scores.parquet")
    assert set(scores["dataset"]) == {"tid2013", "bapps", "bapps/traditional", "bapps/cnn"}
    assert scores[scores["dataset"] == "tid2013"]["n"].eq(4).all()  # max_pairs
    metrics = json.loads((tmp_path / "data/human_judgement/summary.json").read_text())
    assert metrics["bapps"]["vgg"]["2afc"] == pytest.approx(1.0) and "subsets" in metrics
    headline = json.loads((tmp_path / "metrics/human_judgement.json").read_text())
    assert headline["bapps_2afc"]["vgg"] == pytest.approx(1.0) and set(headline) == {"tid2013_srcc", "bapps_2afc"}
    assert len(pd.read_parquet(tmp_path / "data/human_judgement/subsets.parquet")) == 2 * 3
    assert (tmp_path / "data/human_judgement/scores.png").stat().st_size > 0
    assert "map subsets" in capsys.readouterr().out
    assert logged["stage"] == "human_judgement" and set(logged["params"]) == {"base", "human_judgement"}
    assert logged["metrics"]["bapps.cnn.vgg.2afc"] == pytest.approx(1.0) and "elapsed_s" in logged["metrics"]
    assert logged["artifacts"] == ["scores.png", "subsets.png"]
