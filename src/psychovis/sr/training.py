"""Train a super-resolution network under one of the compared losses.

The recipe is SRGAN/ESRGAN's: a PSNR-oriented L1 warm start (`pretrain`, one per seed), then every
loss fine-tunes from that seed's checkpoint for the same number of steps, so the comparison is paired
within a warm start and the pixel model continued with L1 is the fair baseline. Losses (:data:`psychovis.names.LOSSES`):

- ``pixel``: L1 only.
- ``vgg``: L1 (``pixel_weight``) plus the plain VGG perceptual loss (uniform map weights).
- ``vfss``: L1 plus the perceptual loss with the paper's VFSS weights.
- ``topk``: L1 plus the perceptual loss on the top-k VFSS maps only.
- ``vfss_normalised``: L1 plus the loss weighted by VFSS / mean response (the score's shape, not gain).
- ``lpips_weighted``: L1 plus the loss weighted by the LPIPS linear head (learned from people); on
  the layers of its weights file, since LPIPS heads exist only at relu1_2, 2_2, 3_3, 4_3 and 5_3.
- ``human_fitted``: L1 plus the loss weighted by per-map weights fitted to the ModelFest detection
  thresholds of 16 people (the `modelfest` stage's export, at ``modelfest.layers``).
- ``geometry_aware``: L1 plus the plain VGG loss on images resampled from the display's px/deg
  (``px_per_degree``) to the network's reference px/deg (``reference_px_per_degree``, which the
  `modelfest` stage chooses on a declared subset of the ModelFest stimuli).

References:
    Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial
    Network", CVPR 2017; Wang et al., "ESRGAN", ECCV Workshops 2018 (PSNR-oriented pre-training).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from psychovis.distances.loss import PsychovisualLoss
from psychovis.errors import DataError, InvalidWeightsError, ParamsError, PsychovisError, WeightsError, quote
from psychovis.feature_weights import FeatureWeights
from psychovis.io import atomic_path
from psychovis.names import GEOMETRY_LOSS, LOSSES, UPSAMPLERS, WEIGHTED_LOSSES
from psychovis.progress import Progress
from psychovis.sr.data import downsample, random_crops
from psychovis.sr.distributed import World, barrier, broadcast, fault_point, mean_over_ranks
from psychovis.sr.model import SRResNet
from psychovis.validation import check_processes


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run (the ``train`` section of ``params.yaml``)."""

    loss: str
    layers: tuple[str, ...] = ("relu3_2",)
    pixel_weight: float = 1.0
    perceptual_weight: float = 0.01
    scale: int = 4
    iterations: int = 300
    batch_size: int = 8
    crop_size: int = 48
    learning_rate: float = 5e-4
    channels: int = 32
    residual_blocks: int = 4
    log_every: int = 10
    seed: int = 0
    upsampler: str = "pixelshuffle"
    px_per_degree: float | None = None
    reference_px_per_degree: float | None = None

    @classmethod
    def from_params(cls, train: Mapping[str, Any], loss: str, seed: int, **overrides: Any) -> TrainConfig:
        """The config of one run from the ``train`` section of ``params.yaml`` (``overrides`` win).

        ``geometry_aware`` also reads ``train.px_per_degree``; its ``reference_px_per_degree`` is no
        param (the `modelfest` stage fits it): pass it as an override.
        """
        # the reference geometry comes from the modelfest stage, the display's only matters to geometry_aware
        skipped = {"loss", "seed", "reference_px_per_degree"}
        if loss != GEOMETRY_LOSS:
            skipped.add("px_per_degree")
        if loss == "pixel":
            # L1 alone: the perceptual keys are not read, so changing them does not retrain it (dvc.yaml)
            skipped |= {"layers", "pixel_weight", "perceptual_weight"}
        # overridden keys are not read either (pretrain's own iterations must not tie it to train.iterations)
        keys = [field.name for field in fields(cls) if field.name not in skipped | set(overrides)]
        values: dict[str, Any] = {key: train[key] for key in keys} | {"loss": loss, "seed": seed} | overrides
        values["layers"] = tuple(values.get("layers", cls.layers))
        return cls(**values)

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ParamsError(f"train loss must be one of {list(LOSSES)}, got {quote(self.loss)}")
        if self.upsampler not in UPSAMPLERS:
            raise ParamsError(f"train.upsampler must be one of {list(UPSAMPLERS)}, got {quote(self.upsampler)}")
        if self.crop_size % self.scale:
            raise ParamsError(f"train.crop_size ({self.crop_size}) must be a multiple of train.scale ({self.scale})")
        geometry = (self.px_per_degree, self.reference_px_per_degree)
        if self.loss == GEOMETRY_LOSS and None in geometry:
            raise ParamsError(
                f"the {GEOMETRY_LOSS} loss needs the display's px/deg (train.px_per_degree) and the network's "
                f"reference px/deg (fitted by the modelfest stage: `dvc repro modelfest`), got {geometry}"
            )
        if self.loss != GEOMETRY_LOSS and geometry != (None, None):
            raise ParamsError(f"px_per_degree and reference_px_per_degree are for the {GEOMETRY_LOSS} loss only")


Criterion = Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]


def build_criterion(config: TrainConfig, weights_dir: str | Path | None = None) -> Criterion:
    """The objective of ``config.loss``: returns ``{"loss": total, "pixel": ..., "perceptual": ...}``.

    Args:
        config: the training configuration.
        weights_dir: the folder of the exported ``<loss>.safetensors`` weights (the weighted losses).

    Raises:
        ParamsError: a weighted loss without ``weights_dir``, or layers the weights lack.
        WeightsError: the weights of a weighted loss were not exported yet.
    """
    perceptual: PsychovisualLoss | None = None
    if config.loss == "vgg":
        perceptual = PsychovisualLoss(layers=config.layers)
    elif config.loss == GEOMETRY_LOSS:
        perceptual = PsychovisualLoss(
            layers=config.layers,
            px_per_degree=config.px_per_degree,
            reference_px_per_degree=config.reference_px_per_degree,
        )
        seen = round(config.crop_size * perceptual.reference_px_per_degree / perceptual.px_per_degree)
        if seen < perceptual.min_size:
            raise ParamsError(
                f"train.crop_size {config.crop_size} px at train.px_per_degree {config.px_per_degree:g} becomes "
                f"{seen} px at the reference {config.reference_px_per_degree:g} px/deg, under the "
                f"{perceptual.min_size} px the backbone accepts: raise train.crop_size or lower train.px_per_degree"
            )
    elif config.loss in WEIGHTED_LOSSES:
        if weights_dir is None:
            raise ParamsError(f"loss {config.loss!r} needs weights_dir, the folder of the exported weights")
        path = Path(weights_dir) / f"{config.loss}.safetensors"
        # LPIPS heads live on their own layers: that loss uses the layers its file has.
        layers = None if config.loss == "lpips_weighted" else config.layers
        try:
            perceptual = PsychovisualLoss(FeatureWeights.load(path, scheme=config.loss), layers=layers)
        except InvalidWeightsError:
            raise  # the file itself is wrong (missing maps, another backbone): its message names it
        except ValueError as exc:
            source = "modelfest.layers" if config.loss == "human_fitted" else "weights.layers"
            raise ParamsError(f"train.layers: {exc}; add the layers to {source}") from None
    pixel_weight = 1.0 if config.loss == "pixel" else config.pixel_weight

    def criterion(prediction: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        pixel = F.l1_loss(prediction, target)
        terms = {"pixel": pixel, "loss": pixel_weight * pixel}
        if perceptual is not None:
            perceptual_term = perceptual.to(prediction.device)(prediction, target)
            terms["perceptual"] = perceptual_term
            terms["loss"] = terms["loss"] + config.perceptual_weight * perceptual_term
        return terms

    return criterion


def save_checkpoint(
    model: SRResNet,
    config: TrainConfig,
    step: int,
    path: str | Path,
    optimizer: torch.optim.Optimizer | None = None,
    extra: dict | None = None,
) -> Path:
    """Write a checkpoint atomically: model weights, config, step (plus what resuming needs)."""
    state = {"model": model.state_dict(), "config": asdict(config), "step": step, **(extra or {})}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    # Saved through a file object: given a path, torch.save names the archive after the (random)
    # temporary file, and equal models would give different bytes from run to run.
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(state, handle)
    return Path(path)


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[SRResNet, TrainConfig, dict]:
    """Load a checkpoint safely (``weights_only=True``: tensors and plain containers only).

    Returns:
        The model (eval mode, on ``device``), its config and the raw checkpoint dict.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(
            f"checkpoint {path} is missing; train it first "
            "(in the pipeline: `dvc repro train_pixel train_baseline train_weighted train_geometry`)"
        )
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:
        raise WeightsError(f"checkpoint {path} cannot be read safely ({exc}); retrain it with `dvc repro`") from None
    try:  # a file of another shape or from another tool: one line naming it, not a KeyError
        config = TrainConfig(**{**state["config"], "layers": tuple(state["config"]["layers"])})
        model = build_model(config)
        model.load_state_dict(state["model"], strict=True)
    except (TypeError, KeyError, ValueError, RuntimeError) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise WeightsError(
            f"checkpoint {path} is not a model this code wrote ({detail}); retrain it with `dvc repro`"
        ) from None
    if not all(bool(torch.isfinite(value).all()) for value in model.state_dict().values()):
        raise WeightsError(f"checkpoint {path} holds non-finite (NaN or infinite) weights; retrain it with `dvc repro`")
    return model.to(device).eval(), config, state


_Key = TypeVar("_Key")


def load_models(
    paths: Mapping[_Key, str | Path], scale: int, device: torch.device | str = "cpu", key: str = "train.scale"
) -> dict[_Key, SRResNet]:
    """Load every checkpoint of ``paths`` and check each was trained at ``scale``, before any is used.

    A model of another scale upsamples to another size: found only when its outputs are scored,
    after every other model ran. Checked here, up front, for all of them.

    Args:
        paths: any key (e.g. ``(loss, seed)``) -> checkpoint.
        scale: the scale the caller evaluates at (``train.scale``).
        device: where the models go.
        key: the params key that sets ``scale``, named in the error.

    Raises:
        WeightsError: a checkpoint is missing or unreadable (:func:`load_checkpoint`), or was trained at
            another scale (the file and both scales named).
    """
    models: dict[_Key, SRResNet] = {}
    for name, path in paths.items():
        model, config, _ = load_checkpoint(path, device)
        if config.scale != scale:
            raise WeightsError(
                f"checkpoint {path} was trained at scale {config.scale}, but {key} is {scale}; retrain it "
                f"(`dvc repro`) or set {key} back to {config.scale}"
            )
        models[name] = model
    return models


def build_model(config: TrainConfig) -> SRResNet:
    """A fresh :class:`SRResNet` of ``config``'s architecture (initialised from the global torch seed)."""
    return SRResNet(config.scale, config.channels, config.residual_blocks, config.upsampler)


ARCHITECTURE = ("scale", "channels", "residual_blocks", "upsampler")
"""The :class:`TrainConfig` fields a fine-tune must share with its warm start."""


def warm_start(model: SRResNet, config: TrainConfig, path: str | Path) -> None:
    """Load the weights of a warm-start checkpoint (e.g. the L1 `pretrain`) into ``model``.

    Raises:
        WeightsError: the checkpoint is missing, unreadable, or of another architecture.
    """
    _, pretrained, state = load_checkpoint(path)
    different = [name for name in ARCHITECTURE if getattr(pretrained, name) != getattr(config, name)]
    if different:
        raise WeightsError(
            f"warm start {path} has another architecture ({', '.join(different)} differ); "
            "rerun `dvc repro pretrain` after changing the train section"
        )
    model.load_state_dict(state["model"], strict=True)


RESUME_KEYS = ("model", "optimizer", "scheduler", "generator", "curve", "step", "config", "fingerprint")
"""What a resumable checkpoint holds (written every ``log_every`` steps by :func:`train`)."""
_FINGERPRINT_NAMES = {
    "images": "image set (train.image_dir, train.test_images or the files in it)",
    "weights": "feature-weights file",
    "warm_start": "warm start checkpoint",
    "params": "training params",
}


def digest(data: bytes) -> str:
    """A short SHA-256 hex digest."""
    return hashlib.sha256(data).hexdigest()[:16]


def images_digest(images: Sequence[np.ndarray] | Mapping[str, np.ndarray]) -> str:
    """A digest of an image set: names, shapes, and every 4th pixel of every 4th row (cheap on DIV2K)."""
    named = images.items() if isinstance(images, Mapping) else enumerate(images)
    hasher = hashlib.sha256()
    for name, array in named:
        hasher.update(f"{name}:{array.shape}:{array.dtype};".encode())
        hasher.update(np.ascontiguousarray(array[::4, ::4]).tobytes())
    return hasher.hexdigest()[:16]


def run_fingerprint(
    config: TrainConfig,
    images: Sequence[np.ndarray] | Mapping[str, np.ndarray],
    weights_dir: str | Path | None = None,
    init_from: str | Path | None = None,
    options: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """What a resumed run must share with the run that wrote its checkpoint.

    Returns:
        Digests of the image set, the loss's feature-weights file, the warm-start checkpoint ("none"
        where not used) and the params (``config`` plus numerics ``options`` such as autocast).
    """
    weights = Path(weights_dir) / f"{config.loss}.safetensors" if weights_dir is not None else None
    used = weights is not None and config.loss in WEIGHTED_LOSSES and weights.is_file()
    return {
        "images": images_digest(images),
        "weights": digest(weights.read_bytes()) if used else "none",
        "warm_start": digest(Path(init_from).read_bytes()) if init_from is not None else "none",
        "params": digest(json.dumps({**asdict(config), **(options or {})}, sort_keys=True).encode()),
    }


def read_resume_checkpoint(path: str | Path, config: TrainConfig, fingerprint: Mapping[str, str]) -> dict | None:
    """The state to resume from ``path`` (None when there is none), checked against this run.

    Raises:
        WeightsError: the checkpoint is unreadable or truncated, predates fingerprints, or was made with
            another image set, weights file, warm start or params (one line naming which).
    """
    path = Path(path)
    if not path.is_file():
        return None
    advice = "delete it to train from the start, or unset PSYCHOVIS_RESUME"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        # torch's first sentence says what is wrong; the rest is generic advice
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].split(". ")[0]
        raise WeightsError(f"resume checkpoint {path} is unreadable or truncated ({reason}); {advice}") from None
    missing = [key for key in RESUME_KEYS if key not in state] if isinstance(state, dict) else list(RESUME_KEYS)
    if missing:
        raise WeightsError(
            f"resume checkpoint {path} lacks {', '.join(missing)} (another file, or written before resume "
            f"checks existed); {advice}"
        )
    recorded = state["fingerprint"]
    changed = [text for key, text in _FINGERPRINT_NAMES.items() if recorded.get(key) != fingerprint.get(key)]
    if state["config"] != asdict(config) and _FINGERPRINT_NAMES["params"] not in changed:
        changed.append(_FINGERPRINT_NAMES["params"])
    if changed:
        changes = "; another ".join(changed)
        raise WeightsError(f"cannot resume from {path}: it was made with another {changes}; {advice}")
    return state


def train(
    config: TrainConfig,
    train_images: Sequence[np.ndarray] | Mapping[str, np.ndarray],
    device: torch.device | str = "cpu",
    weights_dir: str | Path | None = None,
    progress: bool = True,
    on_log: Callable[[int, dict[str, float]], None] | None = None,
    checkpoint_path: str | Path | None = None,
    resume: bool = False,
    init_from: str | Path | None = None,
    world: World | None = None,
    channels_last: bool = False,
    autocast: bool = False,
) -> tuple[SRResNet, pd.DataFrame]:
    """Train an SRResNet on random crops of ``train_images`` under ``config.loss``.

    Seeded: on the CPU two runs with the same config give the same weights, and a run resumed
    from its checkpoint ends with the same weights as an uninterrupted one. Under data-parallel
    training (``world`` of several ranks) every rank trains on its slice of the same global batch of
    ``config.batch_size`` crops and DDP averages the gradients, so the run matches a single process
    up to float rounding; only rank 0 writes checkpoints and calls ``on_log``.

    Args:
        config: the run's hyper-parameters.
        train_images: HxWx3 float images in [0, 1], each at least ``crop_size`` on a side (a mapping's
            names enter the resume fingerprint).
        device: where to train (ignored when ``world`` is given: its device is used).
        weights_dir: folder of the exported feature weights (for ``vfss`` and ``topk``).
        progress: show a progress bar (rank 0 only).
        on_log: called every ``log_every`` steps with the step and the loss terms averaged over the
            steps and the ranks.
        checkpoint_path: where to keep a resumable checkpoint, rewritten atomically every
            ``log_every`` steps (``None``: no checkpoints).
        resume: continue from ``checkpoint_path`` when it exists; refused (:class:`WeightsError`) when it
            was made with another image set, weights file, warm start or params.
        init_from: a checkpoint to fine-tune from (same architecture); None starts from scratch.
        world: this process's rank among the training processes (default: a single process).
        channels_last: keep the network and batches in channels-last memory order (faster convolutions
            on recent GPUs).
        autocast: run the forward pass and loss in bfloat16 autocast (mixed precision).

    Returns:
        The trained model (eval mode) and the loss curve (one row per logged step).
    """
    if not len(train_images):
        raise DataError("no training images")
    world = world or World(device=torch.device(device))
    device = world.device
    check_processes(config.batch_size, world.size)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = build_model(config)
    if init_from is not None:
        warm_start(model, config, init_from)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format) if channels_last else model.to(device)
    criterion = build_criterion(config, weights_dir)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.iterations)
    rows: list[dict[str, float]] = []
    first_step = 1
    fingerprint: dict[str, str] = {}
    if world.is_main and checkpoint_path is not None:
        options = {"channels_last": channels_last, "autocast": autocast}
        fingerprint = run_fingerprint(config, train_images, weights_dir, init_from, options)
    if resume and checkpoint_path is not None:
        # Rank 0 reads and checks the checkpoint and hands it (or the refusal) to every rank.
        loaded: dict | PsychovisError | None = None
        if world.is_main:
            try:
                loaded = read_resume_checkpoint(checkpoint_path, config, fingerprint)
            except PsychovisError as exc:
                loaded = exc
        loaded = broadcast(loaded, world)
        if isinstance(loaded, PsychovisError):
            raise loaded
        if loaded is not None:
            model.load_state_dict(loaded["model"], strict=True)
            optimizer.load_state_dict(loaded["optimizer"])
            scheduler.load_state_dict(loaded["scheduler"])
            generator.set_state(loaded["generator"])
            rows = list(loaded["curve"])
            first_step = loaded["step"] + 1
            if world.is_main:
                print(f"train[{config.loss}]: resumed from step {loaded['step']} ({checkpoint_path})", file=sys.stderr)
    network: torch.nn.Module = model
    if world.distributed:
        network = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    running: dict[str, float] = {}
    started = time.perf_counter() - (rows[-1]["seconds"] if rows else 0.0)
    model.train()
    bar = Progress(
        range(first_step, config.iterations + 1),
        desc=f"train[{config.loss}]",
        unit="step",
        enabled=progress and world.is_main,
        initial=first_step - 1,
        total=config.iterations,
    )
    for step in bar:
        fault_point(world, step)
        hr = random_crops(train_images, config.crop_size, config.batch_size, generator, (world.rank, world.size))
        hr = hr.to(device)
        lr = downsample(hr, config.scale)
        if channels_last:
            hr, lr = hr.contiguous(memory_format=memory_format), lr.contiguous(memory_format=memory_format)
        with torch.autocast(device.type, dtype=torch.bfloat16) if autocast else contextlib.nullcontext():
            terms = criterion(network(lr), hr)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        scheduler.step()
        for name, value in terms.items():
            running[name] = running.get(name, 0.0) + float(value.detach())
        if step % config.log_every == 0 or step == config.iterations:
            count = config.log_every if step % config.log_every == 0 else step % config.log_every
            averaged = mean_over_ranks({name: total / count for name, total in running.items()}, world)
            rows.append({"step": step, **averaged, "seconds": time.perf_counter() - started})
            bar.set_postfix(loss=f"{averaged['loss']:.4f}")
            if on_log is not None and world.is_main:
                on_log(step, averaged)
            running.clear()
            if checkpoint_path is not None and world.is_main:
                resumable = {
                    "scheduler": scheduler.state_dict(),
                    "generator": generator.get_state(),
                    "curve": rows,
                    "fingerprint": fingerprint,
                }
                save_checkpoint(model, config, step, checkpoint_path, optimizer, resumable)
    # No rank returns (and rank 0 writes no output) until every rank has finished its last step.
    barrier(world)
    return model.eval(), pd.DataFrame(rows)
