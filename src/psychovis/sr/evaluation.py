"""Evaluate super-resolution models on held-out images: every judge, and the error per frequency band.

Each model (one per loss and seed) and bicubic upsampling restore the same downsampled held-out
images; every judge of :mod:`psychovis.sr.judges` scores every output. Scores are returned in long
format, one row per ``(method, seed, image, judge)``, which the `compare` stage pairs by
``(seed, image)``. Bicubic has no seed: it is repeated under each seed so that every method pairs.

Speed: each reference image is prepared once for every judge (the networks' reference features
included) and compared with every output; an output shared by several seeds is scored once; and a
:class:`ScoreCache` keeps each model's scores on disk, keyed by the checkpoint's sha256 and
everything else that shapes a score (images, judges, params, the scoring code and library
versions), so a one-key experiment re-scores only the models it retrained.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from psychovis import io
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


def reference_images(
    images: Mapping[str, np.ndarray], scale: int, max_size: int | None = None
) -> dict[str, np.ndarray]:
    """The high-resolution references: each image centre-cropped to ``max_size`` and to a multiple of ``scale``."""
    return {name: crop_to_multiple(centre_crop(image, max_size), scale) for name, image in images.items()}


def super_resolve_all(
    models: Mapping[tuple[str, int], SRResNet],
    images: Mapping[str, np.ndarray],
    scale: int,
    max_size: int | None = None,
    device: torch.device | str = "cpu",
    seedless: Mapping[str, SRResNet] | None = None,
    skip: Collection[tuple[str, int]] = (),
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
        skip: ``(method, seed)`` of ``models`` not to run (their scores are cached): absent from
            the outputs.

    Returns:
        The high-resolution references by image, and the outputs by ``(method, seed)`` then image;
        bicubic and the seedless methods appear once per seed of the models (identical outputs).
    """
    device = torch.device(device)
    references = reference_images(images, scale, max_size)
    seeds = sorted({seed for _, seed in models}) or [0]
    shared = dict(seedless or {})
    outputs: Outputs = {(method, seed): {} for method in (BICUBIC, *shared) for seed in seeds}
    outputs |= {key: {} for key in models if key not in skip}
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


SCORING_MODULES = (
    "psychovis.sr.evaluation",
    "psychovis.sr.judges",
    "psychovis.sr.metrics",
    "psychovis.sr.data",
    "psychovis.sr.model",
    "psychovis.distances.lpips",
    "psychovis.distances.dists",
    "psychovis.distances.inputs",
    "psychovis.backbones",
    "psychovis.registry",
)
"""Modules whose source shapes a score: a change to any of them invalidates :class:`ScoreCache`."""
SCORING_PACKAGES = ("torch", "piq", "scikit-image", "numpy", "scipy")


def scoring_code_digest() -> str:
    """sha256 of the scoring modules' source and of the versions of the packages that compute scores."""
    hasher = hashlib.sha256()
    for module in SCORING_MODULES:
        path = Path(__file__).resolve().parents[2].joinpath(*module.split(".")).with_suffix(".py")
        hasher.update(module.encode() + b"\0" + path.read_bytes() + b"\0")
    for package in SCORING_PACKAGES:
        hasher.update(f"{package}=={importlib.metadata.version(package)};".encode())
    return hasher.hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes (a checkpoint's identity in :class:`ScoreCache`)."""
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


class ScoreCache:
    """Each model's scores on disk, so that unchanged models are not scored again.

    An entry is ``<folder>/<key>.scores.parquet`` (image, judge, value) and ``<key>.bands.parquet``
    (the frequency-band rows with an ``image`` column), where ``key`` is the sha256 of the model's
    identity (its checkpoint's sha256; ``"bicubic"`` for bicubic) and of the configuration: the
    reference images' pixels, the judges, the evaluate params and scale, the device type, and
    :func:`scoring_code_digest`. Whatever changes a score changes the key, so an entry is either
    exactly what scoring would give now or never read. Entries of other configurations stay (a
    few KB each), so returning to earlier params reuses them too.

    Args:
        folder: where the entries live (the `evaluate` stage: ``data/evaluate/cache``, a persistent
            DVC output).
        config: everything besides the model that shapes a score (JSON-serialisable).
        references: the reference images, hashed into every key.
    """

    def __init__(self, folder: str | Path, config: Mapping[str, Any], references: Mapping[str, np.ndarray]) -> None:
        self.folder = Path(folder)
        hasher = hashlib.sha256(json.dumps(dict(config), sort_keys=True, default=str).encode())
        hasher.update(scoring_code_digest().encode())
        for name, image in references.items():
            hasher.update(f"{name}:{image.shape}:{image.dtype};".encode())
            hasher.update(np.ascontiguousarray(image).tobytes())
        self.config_digest = hasher.hexdigest()
        self.hits: list[str] = []
        self.misses: list[str] = []

    def key(self, identity: str) -> str:
        """The entry name of a model ``identity`` under this configuration."""
        return hashlib.sha256(f"{identity}\0{self.config_digest}".encode()).hexdigest()[:32]

    def _paths(self, identity: str) -> tuple[Path, Path]:
        key = self.key(identity)
        return self.folder / f"{key}.scores.parquet", self.folder / f"{key}.bands.parquet"

    def has(self, identity: str) -> bool:
        """True when both files of the entry exist."""
        return all(path.is_file() for path in self._paths(identity))

    def load(self, identity: str) -> tuple[pd.DataFrame, pd.DataFrame] | None:
        """The entry's ``(scores, bands)``, or None when absent or unreadable (then it is scored again)."""
        if not self.has(identity):
            return None
        try:
            scores, bands = (io.read_parquet(path) for path in self._paths(identity))
        except Exception:  # a damaged entry is a miss, never an error: scoring again repairs it
            return None
        return scores, bands

    def save(self, identity: str, scores: pd.DataFrame, bands: pd.DataFrame) -> None:
        """Write an entry (atomically, so that a failed stage leaves no half entry)."""
        scores_path, bands_path = self._paths(identity)
        io.write_parquet(scores, scores_path)
        io.write_parquet(bands, bands_path)


def score(
    references: Mapping[str, np.ndarray],
    outputs: Outputs,
    judges: Sequence[str],
    scale: int,
    border: int,
    bands: int,
    device: torch.device | str = "cpu",
    progress: bool = True,
    cache: ScoreCache | None = None,
    identities: Mapping[tuple[str, int], str] | None = None,
    keys: Sequence[tuple[str, int]] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every output with every judge, and measure its error per frequency band.

    Each reference is prepared once (:meth:`~psychovis.sr.judges.Judges.reference`: the networks'
    features of the reference are computed once, not once per output). Outputs that are the same
    under every seed (bicubic, seedless methods) are scored once. With a ``cache``, a model whose
    entry exists is read, not scored; the tables are the same either way.

    Args:
        references: image name -> reference.
        outputs: ``(method, seed)`` -> image name -> output; a key whose scores are cached may be absent.
        judges, scale, border: as :class:`~psychovis.sr.judges.Judges` takes them.
        bands: frequency bands of :func:`~psychovis.sr.metrics.frequency_band_errors`.
        device: where the judges run.
        progress: show a progress bar.
        cache: a :class:`ScoreCache`, or None to score everything.
        identities: ``(method, seed)`` -> the model's identity (its checkpoint's sha256); outputs
            of one identity are scored once. Needed with ``cache``. None: outputs are the same when
            they are the same array.
        keys: the ``(method, seed)`` rows, in table order; default the keys of ``outputs``.

    Returns:
        ``per_image`` (:data:`SCORE_COLUMNS`, long format) and ``per_band`` (method, seed, image,
        band, low_cpp, high_cpp, error_power, signal_power, relative_error_db).

    Raises:
        ValueError: a key missing from ``outputs`` without a cached entry, or ``cache`` without ``identities``.
    """
    keys = list(outputs) if keys is None else list(keys)
    if cache is not None and identities is None:
        raise ValueError("a score cache needs the identity (checkpoint sha256) of every model")

    def identity(key: tuple[str, int]) -> str:
        return identities[key] if identities is not None else str(id(outputs[key][next(iter(references))]))

    results: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
    to_score: dict[str, tuple[str, int]] = {}
    for key in keys:
        name = identity(key)
        if name in results or name in to_score:
            continue
        cached = cache.load(name) if cache is not None else None
        if cached is not None:
            results[name] = cached
            cache.hits.append(name)
        elif key not in outputs:
            raise ValueError(f"no output and no cached scores for {key}")
        else:
            to_score[name] = key
    if to_score:
        scorer = Judges(judges, scale=scale, border=border, device=device)
        fresh: dict[str, tuple[list[dict], list[pd.DataFrame]]] = {name: ([], []) for name in to_score}
        steps = [(name, image) for image in references for name in to_score]
        prepared: dict[str, Any] = {}
        for name, image in progress_of(steps, "evaluate", unit="image", enabled=progress):
            if image not in prepared:  # one reference at a time: its features are freed before the next
                prepared = {image: scorer.reference(references[image])}
            prediction = outputs[to_score[name]][image]
            values = scorer.score(prediction, prepared[image])
            fresh[name][0].extend({"image": image, "judge": judge, "value": value} for judge, value in values.items())
            fresh[name][1].append(frequency_band_errors(prediction, references[image], bands).assign(image=image))
        for name, (rows, band_frames) in fresh.items():
            # Through the same table types as a cache entry read back, so cached and fresh agree exactly.
            result = (
                pd.DataFrame(rows, columns=["image", "judge", "value"]),
                pd.concat(band_frames, ignore_index=True),
            )
            if cache is not None:
                cache.save(name, *result)
                cache.misses.append(name)
            results[name] = result
    return _assemble(keys, list(references), results, identity)


def _assemble(
    keys: Sequence[tuple[str, int]],
    images: Sequence[str],
    results: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]],
    identity: Any,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The long tables, one block per ``(method, seed)`` then image, from each identity's scores."""
    score_frames, band_frames = [], []
    for method, seed in keys:
        scores, bands = results[identity((method, seed))]
        for image in images:
            block = scores[scores["image"] == image]
            score_frames.append(
                pd.DataFrame(
                    {
                        "method": method,
                        "seed": seed,
                        "image": image,
                        "judge": block["judge"].to_numpy(),
                        "value": block["value"].to_numpy(),
                    }
                )
            )
            band_frames.append(bands[bands["image"] == image].assign(method=method, seed=seed))
    per_image = pd.concat(score_frames, ignore_index=True)[list(SCORE_COLUMNS)]
    per_image["value"] = per_image["value"].astype(np.float64)
    per_band = pd.concat(band_frames, ignore_index=True)
    leading = ["method", "seed", "image"]
    per_band = per_band[leading + [column for column in per_band.columns if column not in leading]]
    return per_image, per_band


def summary(per_image: pd.DataFrame) -> pd.DataFrame:
    """Mean of each judge per method over seeds and images (``method`` rows, judge columns)."""
    table = per_image.pivot_table(index="method", columns="judge", values="value", aggfunc="mean", sort=False)
    return table[[judge for judge in per_image["judge"].unique() if judge in table.columns]]
