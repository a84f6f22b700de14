"""The evaluation's per-model score cache: the same tables cached or not, and only changed models re-scored."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from psychovis.images import bundled_images
from psychovis.sr import evaluation
from psychovis.sr.evaluation import BICUBIC, ScoreCache, score, super_resolve_all
from psychovis.sr.model import SRResNet

JUDGES = ["psnr_y", "lpips_alex", "gmsd"]
SETTINGS = {"judges": JUDGES, "scale": 4, "border": 4, "bands": 4, "progress": False}


def _model(seed: int) -> SRResNet:
    torch.manual_seed(seed)
    model = SRResNet(scale=4, channels=8, residual_blocks=1, upsampler="resize_conv")
    with torch.no_grad():  # away from the zero-initialised tail, so that every model differs from bicubic
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    return model.eval()


@pytest.fixture(scope="module")
def setup() -> tuple[dict, dict, dict, dict]:
    images = bundled_images(["chelsea"])
    models = {("a", seed): _model(seed) for seed in (0, 1)} | {("b", 0): _model(7), ("b", 1): _model(8)}
    references, outputs = super_resolve_all(models, images, scale=4, max_size=96)
    identities = {key: f"{key[0]}-{key[1]}" for key in models} | {(BICUBIC, s): BICUBIC for s in (0, 1)}
    return images, models, references | {}, {"outputs": outputs, "identities": identities}


def test_cached_and_fresh_tables_are_identical(setup, tmp_path) -> None:
    _, _, references, run = setup
    plain = score(references, run["outputs"], **SETTINGS)
    cache = ScoreCache(tmp_path, {"judges": JUDGES}, references)
    first = score(references, run["outputs"], **SETTINGS, cache=cache, identities=run["identities"])
    assert sorted(cache.misses) == sorted({*run["identities"].values()}) and not cache.hits
    again = ScoreCache(tmp_path, {"judges": JUDGES}, references)
    # Nothing to run: every model is read back (no output at all is needed).
    second = score(references, {}, **SETTINGS, cache=again, identities=run["identities"], keys=list(run["outputs"]))
    assert sorted(again.hits) == sorted(cache.misses) and not again.misses
    for tables in (first, second):
        for expected, got in zip(plain, tables, strict=True):
            pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_only_a_changed_model_is_scored_again(setup, tmp_path) -> None:
    images, models, references, run = setup
    config = {"judges": JUDGES}
    score(references, run["outputs"], **SETTINGS, cache=ScoreCache(tmp_path, config, references),
          identities=run["identities"])  # fmt: skip
    changed = models | {("b", 1): _model(99)}
    identities = run["identities"] | {("b", 1): "b-1-retrained"}
    cache = ScoreCache(tmp_path, config, references)
    skip = {key for key in changed if cache.has(identities[key])}
    assert skip == set(models) - {("b", 1)}
    _, outputs = super_resolve_all(changed, images, scale=4, max_size=96, skip=skip)
    assert ("b", 1) in outputs and ("a", 0) not in outputs
    per_image, _ = score(references, outputs, **SETTINGS, cache=cache, identities=identities, keys=list(run["outputs"]))
    assert cache.misses == ["b-1-retrained"]
    fresh = score(references, super_resolve_all(changed, images, scale=4, max_size=96)[1], **SETTINGS)[0]
    pd.testing.assert_frame_equal(per_image, fresh, check_exact=True)


def test_the_key_covers_config_images_and_code(setup, tmp_path, monkeypatch) -> None:
    _, _, references, _ = setup
    base = ScoreCache(tmp_path, {"judges": JUDGES, "border": 4}, references)
    assert base.key("m") == ScoreCache(tmp_path, {"border": 4, "judges": JUDGES}, references).key("m")
    assert base.key("m") != base.key("n")
    assert base.key("m") != ScoreCache(tmp_path, {"judges": JUDGES, "border": 2}, references).key("m")
    brighter = {name: image * 0.5 for name, image in references.items()}
    assert base.key("m") != ScoreCache(tmp_path, {"judges": JUDGES, "border": 4}, brighter).key("m")
    monkeypatch.setattr(evaluation, "scoring_code_digest", lambda: "other code")
    assert base.key("m") != ScoreCache(tmp_path, {"judges": JUDGES, "border": 4}, references).key("m")


def test_a_damaged_entry_is_scored_again(setup, tmp_path) -> None:
    _, _, references, run = setup
    cache = ScoreCache(tmp_path, {"judges": JUDGES}, references)
    expected = score(references, run["outputs"], **SETTINGS, cache=cache, identities=run["identities"])
    for path in tmp_path.glob("*.scores.parquet"):
        path.write_bytes(b"not parquet")
    again = ScoreCache(tmp_path, {"judges": JUDGES}, references)
    got = score(references, run["outputs"], **SETTINGS, cache=again, identities=run["identities"])
    assert not again.hits
    pd.testing.assert_frame_equal(got[0], expected[0], check_exact=True)


def test_a_missing_output_without_entry_is_an_error(setup, tmp_path) -> None:
    _, _, references, run = setup
    cache = ScoreCache(tmp_path, {"judges": JUDGES}, references)
    with pytest.raises(ValueError, match=r"no output and no cached scores for \('a', 0\)"):
        score(references, {}, **SETTINGS, cache=cache, identities=run["identities"], keys=[("a", 0)])
    with pytest.raises(ValueError, match="needs the identity"):
        score(references, run["outputs"], **SETTINGS, cache=cache)
