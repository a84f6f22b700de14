"""Evaluate super-resolution models on held-out images: PSNR, SSIM, LPIPS and per-band error."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from psychovis.distances.lpips import LPIPS
from psychovis.sr.data import crop_to_multiple, downsample, upsample_bicubic
from psychovis.sr.metrics import frequency_band_errors, psnr_y, ssim_y
from psychovis.sr.model import SRResNet

BICUBIC = "bicubic"


def centre_crop(image: np.ndarray, max_size: int) -> np.ndarray:
    """The central ``max_size`` x ``max_size`` part of ``image`` (or less where it is smaller)."""
    height, width = image.shape[:2]
    top, left = max(0, (height - max_size) // 2), max(0, (width - max_size) // 2)
    return image[top : top + max_size, left : left + max_size]


def _to_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].to(device)


def _to_image(tensor: torch.Tensor) -> np.ndarray:
    return tensor[0].clamp(0, 1).permute(1, 2, 0).cpu().numpy().astype(np.float32)


def super_resolve_all(
    models: Mapping[str, SRResNet],
    images: Mapping[str, np.ndarray],
    scale: int,
    max_size: int,
    device: torch.device | str = "cpu",
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, np.ndarray]]]:
    """Downsample each (centre-cropped) image and restore it with bicubic and every model.

    Returns:
        The high-resolution references by image, and outputs by method then image.
    """
    device = torch.device(device)
    references = {name: crop_to_multiple(centre_crop(image, max_size), scale) for name, image in images.items()}
    outputs: dict[str, dict[str, np.ndarray]] = {BICUBIC: {}, **{name: {} for name in models}}
    with torch.inference_mode():
        for name, reference in references.items():
            low = downsample(_to_tensor(reference, device), scale)
            outputs[BICUBIC][name] = _to_image(upsample_bicubic(low, scale))
            for method, model in models.items():
                outputs[method][name] = _to_image(model.to(device).super_resolve(low))
    return references, outputs


def score(
    references: Mapping[str, np.ndarray],
    outputs: Mapping[str, Mapping[str, np.ndarray]],
    border: int,
    bands: int,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every method's output against the references.

    Returns:
        ``per_image`` (method, image, psnr_y, ssim_y, lpips_vgg) and ``per_band`` (method, image,
        band, low_cpp, high_cpp, error_power, signal_power, relative_error_db).
    """
    lpips = LPIPS().to(device)
    rows, band_frames = [], []
    pairs = [(method, name) for method in outputs for name in references]
    for method, name in tqdm(pairs, desc="evaluate", unit="image", disable=not progress):
        prediction, reference = outputs[method][name], references[name]
        with torch.inference_mode():
            distance = float(lpips(_to_tensor(prediction, device), _to_tensor(reference, device))[0])
        rows.append(
            {
                "method": method,
                "image": name,
                "psnr_y": psnr_y(prediction, reference, border),
                "ssim_y": ssim_y(prediction, reference, border),
                "lpips_vgg": distance,
            }
        )
        band_frames.append(frequency_band_errors(prediction, reference, bands).assign(method=method, image=name))
    per_band = pd.concat(band_frames, ignore_index=True)
    ordered = ["method", "image"] + [column for column in per_band.columns if column not in ("method", "image")]
    return pd.DataFrame(rows), per_band[ordered]
