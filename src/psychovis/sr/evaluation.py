"""Evaluate super-resolution models on held-out images: every judge, and the error per frequency band.

Each model (one per loss and seed) and bicubic upsampling restore the same downsampled held-out
images; every judge of :mod:`psychovis.sr.judges` scores every output. Scores are returned in long
format, one row per ``(method, seed, image, judge)``, which the `compare` stage pairs by
``(seed, image)``. Bicubic has no seed: it is repeated under each seed so that every method pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from psychovis.progress import progress as progress_of
from psychovis.sr.data import crop_to_multiple, downsample, upsample_bicubic
from psychovis.sr.judges import Judges
from psychovis.sr.metrics import frequency_band_errors
from psychovis.sr.model import SRResNet

BICUBIC = "bicubic"
SCORE_COLUMNS = ("method", "seed", "image", "judge", "value")
"""Columns of the long per-image table (the `compare` stage's input)."""

Outputs = dict[tuple[str, int], dict[str, np.ndarray]]
"""``(method, seed) -> image name -> HxWx3 float32 output in [0, 1]``."""


def centre_crop(image: np.ndarray, max_size: int | None) -> np.ndarray:
    """The central ``max_size`` x ``max_size`` part of ``image`` (the whole image when None or smaller)."""
    if max_size is None:
        return image
    height, width = image.shape[:2]
    top, left = max(0, (height - max_size) // 2), max(0, (width - max_size) // 2)
    return image[top : top + max_size, left : left + max_size]


def _to_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].to(device)


def _to_image(tensor: torch.Tensor) -> np.ndarray:
    return tensor[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy().astype(np.float32)


def super_resolve_all(
    models: Mapping[tuple[str, int], SRResNet],
    images: Mapping[str, np.ndarray],
    scale: int,
    max_size: int | None = None,
    device: torch.device | str = "cpu",
    seedless: Mapping[str, SRResNet] | None = None,
) -> tuple[dict[str, np.ndarray], Outputs]:
    """Downsample each image (optionally centre-cropped) and restore it with bicubic and every model.

    Args:
        models: ``(method, seed) -> model``.
        images: name -> HxWx3 float image in [0, 1].
        scale: the upscaling factor.
        max_size: centre-crop side, or None for the full images.
        device: where to run.
        seedless: methods with one model for all seeds (e.g. the warm start), repeated under each
            seed like bicubic so that every method pairs with every other.

    Returns:
        The high-resolution references by image, and the outputs by ``(method, seed)`` then image;
        bicubic and the seedless methods appear once per seed of the models (identical outputs).
    """
    device = torch.device(device)
    references = {name: crop_to_multiple(centre_crop(image, max_size), scale) for name, image in images.items()}
    seeds = sorted({seed for _, seed in models}) or [0]
    shared = dict(seedless or {})
    outputs: Outputs = {(method, seed): {} for method in (BICUBIC, *shared) for seed in seeds}
    outputs |= {key: {} for key in models}
    with torch.inference_mode():
        for name, reference in references.items():
            low = downsample(_to_tensor(reference, device), scale)
            once = {BICUBIC: _to_image(upsample_bicubic(low, scale))}
            once |= {method: _to_image(model.to(device).super_resolve(low)) for method, model in shared.items()}
            for (method, seed), restored in outputs.items():
                restored[name] = (
                    once[method] if method in once else _to_image(models[(method, seed)].to(device).super_resolve(low))
                )
    return references, outputs


def score(
    references: Mapping[str, np.ndarray],
    outputs: Outputs,
    judges: Sequence[str],
    scale: int,
    border: int,
    bands: int,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every output with every judge, and measure its error per frequency band.

    Outputs that are the same under every seed (bicubic, seedless methods) are scored once.

    Returns:
        ``per_image`` (:data:`SCORE_COLUMNS`, long format) and ``per_band`` (method, seed, image,
        band, low_cpp, high_cpp, error_power, signal_power, relative_error_db).
    """
    scorer = Judges(judges, scale=scale, border=border, device=device)
    rows, band_frames = [], []
    cache: dict[int, tuple[dict[str, float], pd.DataFrame]] = {}
    pairs = [(key, name) for key in outputs for name in references]
    for (method, seed), name in progress_of(pairs, "evaluate", unit="image", enabled=progress):
        prediction, reference = outputs[(method, seed)][name], references[name]
        if id(prediction) not in cache:  # the same array under several seeds: score it once
            cache[id(prediction)] = (scorer(prediction, reference), frequency_band_errors(prediction, reference, bands))
        values, bands_of_image = cache[id(prediction)]
        rows += [
            {"method": method, "seed": seed, "image": name, "judge": judge, "value": value}
            for judge, value in values.items()
        ]
        band_frames.append(bands_of_image.assign(method=method, seed=seed, image=name))
    per_band = pd.concat(band_frames, ignore_index=True)
    leading = ["method", "seed", "image"]
    per_band = per_band[leading + [column for column in per_band.columns if column not in leading]]
    return pd.DataFrame(rows, columns=list(SCORE_COLUMNS)), per_band


def summary(per_image: pd.DataFrame) -> pd.DataFrame:
    """Mean of each judge per method over seeds and images (``method`` rows, judge columns)."""
    table = per_image.pivot_table(index="method", columns="judge", values="value", aggfunc="mean", sort=False)
    return table[[judge for judge in per_image["judge"].unique() if judge in table.columns]]
