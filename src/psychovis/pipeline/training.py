"""One SR training run of the pipeline: train, then write the checkpoint, curve, figure and summary.

Shared by the `pretrain` stage (the L1 warm start) and the `train_*` stages (every loss, every
seed, fine-tuned from that warm start), so all runs leave the same files in the same places.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from psychovis import io
from psychovis.pipeline.inputs import WEIGHTS_DIR
from psychovis.pipeline.tracking import StageRun
from psychovis.sr import figures
from psychovis.sr.model import count_parameters
from psychovis.sr.training import TrainConfig, save_checkpoint, train

MODELS_DIR = Path("data/models")
"""Checkpoints: ``pretrain.pt`` and one ``<loss>-s<seed>.pt`` per fine-tune."""
CURVES_DIR = Path("data/curves")
PRETRAINED = MODELS_DIR / "pretrain.pt"


def model_path(loss: str, seed: int) -> Path:
    """Where the fine-tune of ``loss`` with ``seed`` is saved."""
    return MODELS_DIR / f"{loss}-s{seed}.pt"


def plateau_change(losses: np.ndarray, window: float = 0.1) -> float:
    """Relative drop of the loss over the last ``window`` of the curve: ~0 once it has flattened.

    ``(mean of the previous window - mean of the last window) / mean of the previous window``.
    """
    losses = np.asarray(losses, dtype=np.float64)
    size = max(1, int(len(losses) * window))
    if len(losses) < 2 * size:
        return float("nan")
    previous, last = losses[-2 * size : -size].mean(), losses[-size:].mean()
    return float((previous - last) / previous)


def run_training(
    run: StageRun,
    config: TrainConfig,
    name: str,
    images: list[np.ndarray],
    device: Any,
    resume: bool,
    init_from: Path | None = None,
) -> dict[str, float | int | None]:
    """Train ``config`` (fine-tuning from ``init_from`` if given) and write the run's outputs.

    Writes ``data/models/<name>.pt``, ``data/curves/<name>.csv`` and ``.png``, and logs the curve
    and summary to ``run``. Keeps a resumable ``data/models/.<name>.partial.pt`` while training.

    Returns:
        The run's summary: final loss terms, the plateau change, parameters.
    """
    partial = MODELS_DIR / f".{name}.partial.pt"
    run.log_image_dataset(images)
    model, curve = train(
        config,
        images,
        device,
        weights_dir=WEIGHTS_DIR,
        on_log=lambda step, terms: run.log_metrics({f"train_{k}": v for k, v in terms.items()}, step=step),
        checkpoint_path=partial,
        resume=resume or os.environ.get("PSYCHOVIS_RESUME", "") not in ("", "0"),
        init_from=init_from,
    )
    save_checkpoint(model, config, config.iterations, MODELS_DIR / f"{name}.pt")
    run.log_model(model, name)
    partial.unlink(missing_ok=True)
    # Wall-clock seconds go to MLflow only: in the tracked curve they would differ on every rerun.
    io.write_csv(curve.drop(columns="seconds"), CURVES_DIR / f"{name}.csv")
    final = curve.iloc[-1]
    summary: dict[str, float | int | None] = {
        "loss": io.json_number(final["loss"], 6),
        "pixel_l1": io.json_number(final["pixel"], 6),
        "plateau_change": io.json_number(plateau_change(curve["loss"].to_numpy()), 4),
        "parameters": count_parameters(model),
    }
    if "perceptual" in curve:
        summary["perceptual"] = io.json_number(final["perceptual"], 6)
    # The final loss terms are already the last train_* points: log only what the curve lacks.
    run.log_metrics({k: summary[k] for k in ("plateau_change", "parameters")} | {"seconds": float(final["seconds"])})
    run.log_artifact(io.save_figure(figures.loss_curve(curve, name), CURVES_DIR / f"{name}.png"), "figures")
    return summary
