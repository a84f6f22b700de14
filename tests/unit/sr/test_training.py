"""Training: config validation, seeded determinism, losses, safe checkpoints."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from psychovis.distances.loss import PsychovisualLoss
from psychovis.errors import ParamsError, WeightsError
from psychovis.feature_weights import FeatureWeights
from psychovis.images import bundled_images
from psychovis.names import GEOMETRY_LOSS, LOSSES
from psychovis.sr.distributed import World
from psychovis.sr.model import SRResNet
from psychovis.sr.training import (
    TrainConfig,
    build_criterion,
    build_model,
    load_checkpoint,
    load_models,
    read_resume_checkpoint,
    run_fingerprint,
    save_checkpoint,
    train,
)

TINY = {"iterations": 3, "batch_size": 2, "crop_size": 32, "channels": 8, "residual_blocks": 1, "log_every": 2}
GEOMETRY = {"px_per_degree": 60.0, "reference_px_per_degree": 30.0}  # a display at twice the network's px/deg


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    return [image[:96, :96] for image in bundled_images(["astronaut", "rocket"]).values()]


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("weights")
    scores = torch.linspace(0.1, 1.0, 256)
    FeatureWeights("vgg16", "vfss", {"relu3_2": scores / scores.sum()}).save(folder / "vfss.safetensors")
    mask = torch.zeros(256)
    mask[-16:] = 1 / 16
    FeatureWeights("vgg16", "topk", {"relu3_2": mask}).save(folder / "topk.safetensors")
    FeatureWeights("vgg16", "vfss_normalised", {"relu3_2": scores.flip(0) / scores.sum()}).save(
        folder / "vfss_normalised.safetensors"
    )
    head = torch.linspace(0.5, 1.5, 256)  # a head at relu3_3, where LPIPS has one
    FeatureWeights("vgg16", "lpips_weighted", {"relu3_3": head / head.sum()}).save(
        folder / "lpips_weighted.safetensors"
    )
    fitted = torch.exp(torch.linspace(-1.0, 1.0, 256))  # as the modelfest stage exports them: mean 1
    FeatureWeights("vgg16", "human_fitted", {"relu3_2": fitted / fitted.mean()}).save(
        folder / "human_fitted.safetensors"
    )
    return folder


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ParamsError, match="loss must be one of"):
        TrainConfig(loss="ssim")
    with pytest.raises(ParamsError, match=r"multiple of train\.scale"):
        TrainConfig(loss="pixel", crop_size=30, scale=4)


def test_training_is_seeded_and_logs_a_curve(images: list[np.ndarray]) -> None:
    config = TrainConfig(loss="pixel", **TINY)
    first, curve = train(config, images, progress=False)
    second, _ = train(config, images, progress=False)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert list(curve["step"]) == [2, 3]
    assert {"loss", "pixel", "seconds"} <= set(curve.columns)
    other, _ = train(TrainConfig(loss="pixel", seed=1, **TINY), images, progress=False)
    assert not torch.equal(other.state_dict()["head.weight"], first.state_dict()["head.weight"])


@pytest.mark.parametrize("loss", LOSSES)
def test_each_loss_builds_and_has_its_terms(loss: str, weights_dir: Path) -> None:
    geometry = GEOMETRY if loss == GEOMETRY_LOSS else {}
    criterion = build_criterion(TrainConfig(loss=loss, **TINY, **geometry), weights_dir)
    target = torch.rand(2, 3, 32, 32)
    prediction = (target + 0.1 * torch.randn_like(target)).clamp(0, 1).requires_grad_(True)
    terms = criterion(prediction, target)
    assert ("perceptual" in terms) == (loss != "pixel")
    terms["loss"].backward()
    assert prediction.grad is not None and prediction.grad.abs().sum() > 0


def test_the_geometry_aware_loss_is_the_vgg_loss_at_the_reference_geometry() -> None:
    target = torch.rand(2, 3, 32, 32)
    prediction = (target + 0.1 * torch.randn_like(target)).clamp(0, 1)
    plain = build_criterion(TrainConfig(loss="vgg", **TINY))(prediction, target)
    same = build_criterion(TrainConfig(loss=GEOMETRY_LOSS, **TINY, px_per_degree=40.0, reference_px_per_degree=40.0))
    torch.testing.assert_close(same(prediction, target)["perceptual"], plain["perceptual"])
    half = build_criterion(TrainConfig(loss=GEOMETRY_LOSS, **TINY, **GEOMETRY))(prediction, target)

    def at_half(images: torch.Tensor) -> torch.Tensor:  # 60 -> 30 px/deg: half the side, antialiased
        return torch.nn.functional.interpolate(images, size=(16, 16), mode="bilinear", antialias=True)

    expected = PsychovisualLoss(layers=["relu3_2"])(at_half(prediction), at_half(target))
    torch.testing.assert_close(half["perceptual"], expected)
    assert not torch.isclose(half["perceptual"], plain["perceptual"])
    torch.testing.assert_close(half["pixel"], plain["pixel"])  # L1 stays on the display's pixels


def test_the_geometry_aware_loss_needs_both_geometries() -> None:
    with pytest.raises(ParamsError, match=r"train\.px_per_degree.*dvc repro modelfest"):
        TrainConfig(loss=GEOMETRY_LOSS, px_per_degree=60.0, **TINY)
    with pytest.raises(ParamsError, match="geometry_aware loss only"):
        TrainConfig(loss="vgg", **GEOMETRY, **TINY)
    with pytest.raises(ParamsError, match=r"raise train\.crop_size or lower train\.px_per_degree"):
        build_criterion(TrainConfig(loss=GEOMETRY_LOSS, **TINY, px_per_degree=600.0, reference_px_per_degree=30.0))


def test_only_the_geometry_aware_loss_reads_the_display_geometry() -> None:
    params = {**TINY, "layers": ["relu3_2"], "pixel_weight": 1.0, "perceptual_weight": 0.1, "scale": 4}
    params |= {"learning_rate": 1e-4, "upsampler": "resize_conv", "px_per_degree": 60.0}
    assert TrainConfig.from_params(params, "vgg", 0).px_per_degree is None
    config = TrainConfig.from_params(params, GEOMETRY_LOSS, 0, reference_px_per_degree=30.0)
    assert (config.px_per_degree, config.reference_px_per_degree) == (60.0, 30.0)
    with pytest.raises(ParamsError, match="dvc repro modelfest"):  # the reference is fitted, never a param
        TrainConfig.from_params(params | {"reference_px_per_degree": 30.0}, GEOMETRY_LOSS, 0)


def test_weighted_losses_need_exported_weights(tmp_path: Path, weights_dir: Path) -> None:
    with pytest.raises(WeightsError, match="dvc repro weights"):
        build_criterion(TrainConfig(loss="vfss", **TINY), tmp_path)
    with pytest.raises(ParamsError, match=r"train\.layers"):
        build_criterion(TrainConfig(loss="vfss", layers=("relu1_1",), **TINY), weights_dir)


def test_checkpoint_round_trip_is_safe(images: list[np.ndarray], tmp_path: Path) -> None:
    config = TrainConfig(loss="pixel", **TINY)
    model, _ = train(config, images, progress=False)
    path = save_checkpoint(model, config, 3, tmp_path / "model.pt")
    loaded, loaded_config, state = load_checkpoint(path)
    assert loaded_config == config and state["step"] == 3
    lr = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(loaded.super_resolve(lr), model.super_resolve(lr))
    # A checkpoint holding arbitrary objects is refused by weights_only loading.
    torch.save({"model": object()}, tmp_path / "evil.pt")
    with pytest.raises(WeightsError, match="cannot be read safely"):
        load_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(WeightsError, match="missing"):
        load_checkpoint(tmp_path / "absent.pt")


@pytest.mark.slow
def test_resume_after_interruption_matches_an_uninterrupted_run(images: list[np.ndarray], tmp_path: Path) -> None:
    config = TrainConfig(loss="pixel", **{**TINY, "iterations": 6})
    reference, reference_curve = train(config, images, progress=False)

    def crash_at_step_4(step: int, terms: dict[str, float]) -> None:
        if step == 4:
            raise KeyboardInterrupt  # as if killed right after step 4 (last checkpoint: step 2)

    checkpoint = tmp_path / "partial.pt"
    with pytest.raises(KeyboardInterrupt):
        train(config, images, progress=False, on_log=crash_at_step_4, checkpoint_path=checkpoint)
    assert torch.load(checkpoint, weights_only=True)["step"] == 2
    resumed, resumed_curve = train(config, images, progress=False, checkpoint_path=checkpoint, resume=True)
    for (name, a), (_, b) in zip(reference.state_dict().items(), resumed.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    assert list(resumed_curve["step"]) == list(reference_curve["step"])
    np.testing.assert_allclose(resumed_curve["loss"], reference_curve["loss"], rtol=1e-6)


def test_equal_models_give_identical_checkpoint_bytes(tmp_path: Path) -> None:
    config = TrainConfig(loss="pixel", **TINY)
    model = SRResNet(config.scale, config.channels, config.residual_blocks)
    first = save_checkpoint(model, config, 0, tmp_path / "a.pt").read_bytes()
    assert save_checkpoint(model, config, 0, tmp_path / "b.pt").read_bytes() == first


def test_from_params_takes_the_train_section_and_overrides() -> None:
    section = {**TINY, "layers": ["relu3_2"], "pixel_weight": 1.0, "perceptual_weight": 0.02, "scale": 4}
    section |= {"learning_rate": 1e-4, "upsampler": "icnr", "seeds": [0, 1], "image_dir": None}
    config = TrainConfig.from_params(section, "vgg", 7, iterations=5)
    assert (config.loss, config.seed, config.iterations, config.upsampler) == ("vgg", 7, 5, "icnr")
    assert config.layers == ("relu3_2",) and config.perceptual_weight == 0.02


@pytest.mark.slow
def test_fine_tune_starts_from_the_warm_start(images: list[np.ndarray], tmp_path: Path, weights_dir: Path) -> None:
    warm = TrainConfig(loss="pixel", **TINY)
    model, _ = train(warm, images, progress=False)
    path = save_checkpoint(model, warm, warm.iterations, tmp_path / "pretrain.pt")
    tuned, _ = train(
        TrainConfig(loss="vfss", **{**TINY, "iterations": 1, "learning_rate": 1e-12}),
        images,
        progress=False,
        weights_dir=weights_dir,
        init_from=path,
    )
    for (name, a), (_, b) in zip(model.state_dict().items(), tuned.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)  # a negligible step from the warm start
    with pytest.raises(WeightsError, match=r"another architecture.*channels"):
        train(TrainConfig(loss="pixel", **{**TINY, "channels": 4}), images, progress=False, init_from=path)


def test_lpips_weighted_uses_the_layers_of_its_weights(weights_dir: Path) -> None:
    criterion = build_criterion(TrainConfig(loss="lpips_weighted", **TINY), weights_dir)
    target = torch.rand(1, 3, 32, 32)
    assert set(criterion(target.clone(), target)) == {"pixel", "loss", "perceptual"}


def _interrupted(config: TrainConfig, images: object, checkpoint: Path, **kwargs: object) -> None:
    """Train until the step-4 log and stop there, as if killed (the last checkpoint: step 2)."""

    def stop(step: int, terms: dict[str, float]) -> None:
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, images, progress=False, on_log=stop, checkpoint_path=checkpoint, **kwargs)  # type: ignore[arg-type]


@pytest.mark.slow
def test_resume_refuses_a_checkpoint_of_another_run(
    images: list[np.ndarray], tmp_path: Path, weights_dir: Path
) -> None:
    config = TrainConfig(loss="pixel", **{**TINY, "iterations": 6})
    named = {"astronaut": images[0], "rocket": images[1]}
    checkpoint = tmp_path / "partial.pt"
    _interrupted(config, named, checkpoint)
    state = torch.load(checkpoint, weights_only=True)
    assert set(state["fingerprint"]) == {"images", "weights", "warm_start", "params"}
    cases = {
        "image set": {"train_images": {"astronaut": images[0], "other": images[1]}},
        "training params": {"config": TrainConfig(loss="pixel", **{**TINY, "iterations": 7})},
        "training params ": {"autocast": True},  # a numerics switch is part of the params
    }
    for what, change in cases.items():
        arguments = {"config": config, "train_images": named, "progress": False, "checkpoint_path": checkpoint}
        with pytest.raises(WeightsError, match=f"made with another {what.strip()}") as caught:
            train(**{**arguments, **change}, resume=True)  # type: ignore[arg-type]
        assert "\n" not in str(caught.value) and "unset PSYCHOVIS_RESUME" in str(caught.value)
    # Without resume the checkpoint is ignored (and replaced), as before.
    train(config, {"astronaut": images[0]}, progress=False, checkpoint_path=checkpoint)


@pytest.mark.slow
def test_resume_refuses_changed_weights_and_warm_start(images: list[np.ndarray], tmp_path: Path) -> None:
    warm = TrainConfig(loss="pixel", **TINY)
    model, _ = train(warm, images, progress=False)
    pretrained = save_checkpoint(model, warm, warm.iterations, tmp_path / "pretrain.pt")
    folder = tmp_path / "weights"
    scores = torch.linspace(0.1, 1.0, 256)
    FeatureWeights("vgg16", "vfss", {"relu3_2": scores / scores.sum()}).save(folder / "vfss.safetensors")
    config = TrainConfig(loss="vfss", **{**TINY, "iterations": 6})
    before = run_fingerprint(config, images, folder, pretrained)
    FeatureWeights("vgg16", "vfss", {"relu3_2": scores.flip(0) / scores.sum()}).save(folder / "vfss.safetensors")
    after = run_fingerprint(config, images, folder, pretrained)
    assert before["weights"] != after["weights"] and before["images"] == after["images"]
    torch.save({**{key: 0 for key in ("model", "optimizer", "scheduler", "generator", "curve", "step")},
                "config": asdict(config), "fingerprint": before}, tmp_path / "partial.pt")  # fmt: skip
    with pytest.raises(WeightsError, match="another feature-weights file"):
        read_resume_checkpoint(tmp_path / "partial.pt", config, after)
    save_checkpoint(SRResNet(4, 8, 1), warm, 1, pretrained)  # the warm start retrained
    with pytest.raises(WeightsError, match=r"another feature-weights file; another warm start"):
        read_resume_checkpoint(tmp_path / "partial.pt", config, run_fingerprint(config, images, folder, pretrained))


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 cut short", None])
def test_resume_from_a_truncated_or_foreign_checkpoint_is_one_line(
    content: bytes | None, images: list[np.ndarray], tmp_path: Path
) -> None:
    config = TrainConfig(loss="pixel", **TINY)
    checkpoint = tmp_path / "partial.pt"
    if content is None:  # a whole checkpoint, but a final one (no resume state), or from before fingerprints
        save_checkpoint(SRResNet(4, 8, 1), config, 3, checkpoint)
        expected = "lacks optimizer, scheduler, generator, curve, fingerprint"
    else:
        checkpoint.write_bytes(content)
        expected = "is unreadable or truncated"
    with pytest.raises(WeightsError, match=expected) as caught:
        train(config, images, progress=False, checkpoint_path=checkpoint, resume=True)
    assert "\n" not in str(caught.value)


def test_a_world_of_one_trains_exactly_like_no_world(images: list[np.ndarray]) -> None:
    config = TrainConfig(loss="pixel", **TINY)
    plain, curve = train(config, images, progress=False)
    single, single_curve = train(config, images, progress=False, world=World())
    for (name, a), (_, b) in zip(plain.state_dict().items(), single.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert curve["loss"].tolist() == single_curve["loss"].tolist()


@pytest.mark.slow
def test_channels_last_and_autocast_train_close_to_the_default(images: list[np.ndarray]) -> None:
    config = TrainConfig(loss="pixel", **TINY)
    reference, curve = train(config, images, progress=False)
    fast, fast_curve = train(config, images, progress=False, channels_last=True)
    for (name, a), (_, b) in zip(reference.state_dict().items(), fast.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b.contiguous(), rtol=1e-4, atol=1e-5, msg=name)
    mixed, mixed_curve = train(config, images, progress=False, autocast=True)
    assert all(torch.isfinite(tensor).all() for tensor in mixed.state_dict().values())
    # bfloat16 keeps ~3 significant digits: the logged loss agrees to about 1 %
    np.testing.assert_allclose(mixed_curve["loss"], curve["loss"], rtol=0.05)
    np.testing.assert_allclose(fast_curve["loss"], curve["loss"], rtol=1e-4)


def test_a_checkpoint_of_another_scale_is_refused_before_any_model_is_used(tmp_path: Path) -> None:
    """evaluate found a model trained at another scale only after scoring every other model."""
    paths = {}
    for seed, scale in ((0, 2), (1, 2), (2, 4)):
        config = TrainConfig(loss="pixel", seed=seed, scale=scale, **TINY)
        paths[("pixel", seed)] = save_checkpoint(build_model(config), config, 0, tmp_path / f"pixel-s{seed}.pt")
    assert set(load_models({key: paths[key] for key in list(paths)[:2]}, 2)) == {("pixel", 0), ("pixel", 1)}
    with pytest.raises(WeightsError) as refused:
        load_models(paths, 2)
    line = str(refused.value)
    assert f"checkpoint {paths[('pixel', 2)]} was trained at scale 4, but train.scale is 2" in line
    assert "retrain" in line and "\n" not in line
