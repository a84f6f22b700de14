"""Train a super-resolution network under one of the compared losses.

The recipe is SRGAN/ESRGAN's: a PSNR-oriented L1 warm start (`pretrain`), then every loss
fine-tunes from that same checkpoint for the same number of steps, so the comparison is paired
and the pixel model continued with L1 is the fair baseline. Losses (:data:`psychovis.names.LOSSES`):

- ``pixel``: L1 only.
- ``vgg``: L1 (``pixel_weight``) plus the plain VGG perceptual loss (uniform map weights).
- ``vfss``: L1 plus the perceptual loss with the paper's VFSS weights.
- ``topk``: L1 plus the perceptual loss on the top-k VFSS maps only.
- ``vfss_normalised``: L1 plus the loss weighted by VFSS / mean response (the score's shape, not gain).
- ``lpips_weighted``: L1 plus the loss weighted by the LPIPS linear head (learned from people); on
  the layers of its weights file, since LPIPS heads exist only at relu1_2, 2_2, 3_3, 4_3 and 5_3.

References:
    Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial
    Network", CVPR 2017; Wang et al., "ESRGAN", ECCV Workshops 2018 (PSNR-oriented pre-training).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from psychovis.distances.loss import PsychovisualLoss
from psychovis.errors import DataError, InvalidWeightsError, ParamsError, WeightsError
from psychovis.io import atomic_path
from psychovis.names import LOSSES, UPSAMPLERS, WEIGHTED_LOSSES
from psychovis.progress import Progress
from psychovis.sr.data import downsample, random_crops
from psychovis.sr.model import SRResNet


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

    @classmethod
    def from_params(cls, train: Mapping[str, Any], loss: str, seed: int, **overrides: Any) -> TrainConfig:
        """The config of one run from the ``train`` section of ``params.yaml`` (``overrides`` win)."""
        skipped = {"loss", "seed"}
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
            raise ParamsError(f"train loss must be one of {list(LOSSES)}, got {self.loss!r}")
        if self.upsampler not in UPSAMPLERS:
            raise ParamsError(f"train.upsampler must be one of {list(UPSAMPLERS)}, got {self.upsampler!r}")
        if self.crop_size % self.scale:
            raise ParamsError(f"train.crop_size ({self.crop_size}) must be a multiple of train.scale ({self.scale})")


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
    elif config.loss in WEIGHTED_LOSSES:
        if weights_dir is None:
            raise ParamsError(f"loss {config.loss!r} needs weights_dir, the folder of the exported weights")
        path = Path(weights_dir) / f"{config.loss}.safetensors"
        # LPIPS heads live on their own layers: that loss uses the layers its file has.
        layers = None if config.loss == "lpips_weighted" else config.layers
        try:
            perceptual = PsychovisualLoss(path, layers=layers)
        except InvalidWeightsError:
            raise  # the file itself is wrong (missing maps, another backbone): its message names it
        except ValueError as exc:
            raise ParamsError(f"train.layers: {exc}; add the layers to weights.layers") from None
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
            "(in the pipeline: `dvc repro train_pixel train_baseline train_weighted`)"
        )
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:
        raise WeightsError(f"checkpoint {path} cannot be read safely ({exc}); retrain it with `dvc repro`") from None
    config = TrainConfig(**{**state["config"], "layers": tuple(state["config"]["layers"])})
    model = build_model(config)
    model.load_state_dict(state["model"], strict=True)
    return model.to(device).eval(), config, state


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


def train(
    config: TrainConfig,
    train_images: Sequence[np.ndarray],
    device: torch.device | str = "cpu",
    weights_dir: str | Path | None = None,
    progress: bool = True,
    on_log: Callable[[int, dict[str, float]], None] | None = None,
    checkpoint_path: str | Path | None = None,
    resume: bool = False,
    init_from: str | Path | None = None,
) -> tuple[SRResNet, pd.DataFrame]:
    """Train an SRResNet on random crops of ``train_images`` under ``config.loss``.

    Seeded: on the CPU two runs with the same config give the same weights, and a run resumed
    from its checkpoint ends with the same weights as an uninterrupted one.

    Args:
        config: the run's hyper-parameters.
        train_images: HxWx3 float images in [0, 1], each at least ``crop_size`` on a side.
        device: where to train.
        weights_dir: folder of the exported feature weights (for ``vfss`` and ``topk``).
        progress: show a progress bar.
        on_log: called every ``log_every`` steps with the step and the averaged loss terms.
        checkpoint_path: where to keep a resumable checkpoint, rewritten atomically every
            ``log_every`` steps (``None``: no checkpoints).
        resume: continue from ``checkpoint_path`` when it exists and was written with the same
            config.
        init_from: a checkpoint to fine-tune from (same architecture); None starts from scratch.

    Returns:
        The trained model (eval mode) and the loss curve (one row per logged step).
    """
    if not train_images:
        raise DataError("no training images")
    device = torch.device(device)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = build_model(config)
    if init_from is not None:
        warm_start(model, config, init_from)
    model = model.to(device)
    criterion = build_criterion(config, weights_dir)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.iterations)
    rows: list[dict[str, float]] = []
    first_step = 1
    if resume and checkpoint_path is not None and Path(checkpoint_path).is_file():
        state = torch.load(checkpoint_path, map_location=device, weights_only=True)
        if state["config"] == asdict(config):
            model.load_state_dict(state["model"], strict=True)
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            generator.set_state(state["generator"])
            rows = list(state["curve"])
            first_step = state["step"] + 1
            print(f"train[{config.loss}]: resumed from step {state['step']} ({checkpoint_path})", file=sys.stderr)
    running: dict[str, float] = {}
    started = time.perf_counter() - (rows[-1]["seconds"] if rows else 0.0)
    model.train()
    bar = Progress(
        range(first_step, config.iterations + 1),
        desc=f"train[{config.loss}]",
        unit="step",
        enabled=progress,
        initial=first_step - 1,
        total=config.iterations,
    )
    for step in bar:
        hr = random_crops(train_images, config.crop_size, config.batch_size, generator).to(device)
        lr = downsample(hr, config.scale)
        terms = criterion(model(lr), hr)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        scheduler.step()
        for name, value in terms.items():
            running[name] = running.get(name, 0.0) + float(value.detach())
        if step % config.log_every == 0 or step == config.iterations:
            count = config.log_every if step % config.log_every == 0 else step % config.log_every
            averaged = {name: total / count for name, total in running.items()}
            rows.append({"step": step, **averaged, "seconds": time.perf_counter() - started})
            bar.set_postfix(loss=f"{averaged['loss']:.4f}")
            if on_log is not None:
                on_log(step, averaged)
            running.clear()
            if checkpoint_path is not None:
                resumable = {
                    "scheduler": scheduler.state_dict(),
                    "generator": generator.get_state(),
                    "curve": rows,
                }
                save_checkpoint(model, config, step, checkpoint_path, optimizer, resumable)
    return model.eval(), pd.DataFrame(rows)
