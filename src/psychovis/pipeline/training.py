"""One SR training run of the pipeline: train, then write the checkpoint, curve, figure and summary.

Shared by the `pretrain` stage (the L1 warm start) and the `train_*` stages (every loss, every
seed, fine-tuned from that warm start), so all runs leave the same files in the same places.
With ``train.processes > 1`` the stage runs as that many torchrun ranks (:mod:`psychovis.sr.distributed`);
rank 0 alone writes the files and the MLflow run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from psychovis import io
from psychovis.pipeline.inputs import WEIGHTS_DIR
from psychovis.pipeline.runner import StageContext
from psychovis.pipeline.tracking import StageRun
from psychovis.sr import distributed, figures
from psychovis.sr.data import load_dataset
from psychovis.sr.distributed import World
from psychovis.sr.model import count_parameters
from psychovis.sr.training import TrainConfig, save_checkpoint, train
from psychovis.validation import check_processes

MODELS_DIR = Path("data/models")
"""Checkpoints: one ``<loss>-s<seed>.pt`` per fine-tune and one warm start ``pretrain-s<seed>.pt`` per seed."""
CURVES_DIR = Path("data/curves")
WARM_START = "pretrain"
"""The warm start's method name: the L1 pretraining of each seed, which that seed's fine-tunes start from."""


def model_path(loss: str, seed: int) -> Path:
    """Where the fine-tune of ``loss`` with ``seed`` (or, for ``pretrain``, that seed's warm start) is saved."""
    return MODELS_DIR / f"{loss}-s{seed}.pt"


def warm_start_path(seed: int) -> Path:
    """The warm start of the fine-tunes with ``seed``: each seed is one independent run, warm start included."""
    return model_path(WARM_START, seed)


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


class _QuietRun:
    """The MLflow run of ranks other than 0: every logging call (any :class:`StageRun` method) does nothing."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The command-line options every training stage has: ``--resume`` and ``--processes``."""
    parser.add_argument("--resume", action="store_true", help="continue from a checkpoint (or PSYCHOVIS_RESUME=1)")
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        help="training processes on this machine, launched with torchrun (default: train.processes)",
    )
    return parser


def run_training_stage(
    ctx: StageContext,
    config: TrainConfig,
    name: str,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
    init_from: Path | None = None,
) -> dict[str, float | int | None] | None:
    """One training stage: launch the ranks (``train.processes > 1``) or be one, train, write the outputs.

    With more than one process and no torchrun around us yet, re-runs this very stage script under
    ``torchrun --standalone`` and waits (a failing rank raises :class:`RankFailure`, one line). Inside
    a rank (or with one process) loads the images, trains, and on rank 0 alone writes the outputs and
    the MLflow run.

    Returns:
        The run's summary on rank 0; None on the other ranks and in the launching process (rank 0
        has written the stage's outputs then).
    """
    train = ctx.params["train"]
    processes = ctx.args.processes or train["processes"]
    if ctx.args.processes:  # a command-line override: the same check as train.processes got at params load
        check_processes(train["batch_size"], processes, "--processes")
    if processes > 1 and not distributed.in_worker():
        distributed.launch(sys.argv[0], sys.argv[1:], processes, ctx.stage)
        return None
    images, _ = load_dataset(train["image_dir"], train["test_images"], min_size=train["crop_size"])
    with distributed.world(ctx.device) as world:
        quiet: contextlib.AbstractContextManager[Any] = contextlib.nullcontext(_QuietRun())
        with ctx.run(run_name, tags) if world.is_main else quiet as run:
            run.set_tags({"device": str(world.device), "train_images": ",".join(images), "processes": str(world.size)})
            return run_training(run, config, name, images, world, ctx.args.resume, init_from, train)


def run_training(
    run: StageRun | _QuietRun,
    config: TrainConfig,
    name: str,
    images: dict[str, np.ndarray],
    world: World,
    resume: bool,
    init_from: Path | None = None,
    train_params: dict[str, Any] | None = None,
) -> dict[str, float | int | None] | None:
    """Train ``config`` (fine-tuning from ``init_from`` if given) and write the run's outputs (rank 0).

    Writes ``data/models/<name>.pt``, ``data/curves/<name>.csv`` and ``.png``, and logs the curve
    and summary to ``run``. Keeps a resumable ``data/models/.<name>.partial.pt`` while training.

    Args:
        run: the stage's MLflow run (a silent one on ranks other than 0).
        config: the run's hyper-parameters.
        name: the run's file stem (``pretrain-s<seed>``, ``<loss>-s<seed>``).
        images: the training images by name.
        world: this process's rank.
        resume: continue from the partial checkpoint (also ``PSYCHOVIS_RESUME=1``).
        init_from: the warm start to fine-tune from.
        train_params: the ``train`` section (its ``channels_last`` and ``autocast`` switches).

    Returns:
        The run's summary on rank 0 (final loss terms, the plateau change, parameters); None elsewhere.
    """
    switches = train_params or {}
    partial = MODELS_DIR / f".{name}.partial.pt"
    run.log_image_dataset(list(images.values()))
    model, curve = train(
        config,
        images,
        world.device,
        weights_dir=WEIGHTS_DIR,
        on_log=lambda step, terms: run.log_metrics({f"train_{k}": v for k, v in terms.items()}, step=step),
        checkpoint_path=partial,
        resume=resume or os.environ.get("PSYCHOVIS_RESUME", "") not in ("", "0"),
        init_from=init_from,
        world=world,
        channels_last=bool(switches.get("channels_last", False)),
        autocast=bool(switches.get("autocast", False)),
    )
    if not world.is_main:
        return None
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
    details = f"seed {config.seed}, lr {config.learning_rate:g}, {config.iterations} steps: loss {final['loss']:.5g}"
    figure = figures.loss_curve(curve, name, details)
    run.log_artifact(io.save_figure(figure, CURVES_DIR / f"{name}.png"), "figures")
    return summary
