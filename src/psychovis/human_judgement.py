"""Do the distances agree with people? Scores on human-judgement data sets (TID2013, KADID-10k, BAPPS).

The psychophysical test (:mod:`psychovis.psychophysics`) asks whether a distance sees gratings as
a human observer does; this module asks the question on natural images that people have rated.
Every distance of :func:`psychovis.psychophysics.build_distances` (pixel MSE, plain VGG,
VFSS-weighted, top-/bottom-/random-k VFSS maps, LPIPS-VGG) is computed for every image pair of a
data set read from its public layout, and compared with the human judgements:

- **Mean opinion scores** (TID2013, KADID-10k): the Spearman (SRCC) and Kendall (KRCC, tau-b)
  rank correlations between the distance and the score. Both data sets' scores are *higher =
  better quality*, so a good distance correlates **negatively** with them. :func:`rank_correlations`
  returns the signed correlations; the scores table reports them sign-oriented, ``-corr(distance,
  score)``, which equals the usual ``|SRCC|`` / ``|KRCC|`` of the literature whenever the distance
  orders the images the right way round, and is negative (instead of silently positive, as
  ``|corr|`` would be) for a distance that orders them backwards.
- **Two-alternative forced choice** (BAPPS 2AFC): each triplet has a reference and two distorted
  patches ``p0``, ``p1``, and ``judge``, the fraction of people who found ``p1`` closer to the
  reference. A distance agrees with ``judge`` of them when it also calls ``p1`` closer
  (``d1 < d0``), with ``1 - judge`` when it calls ``p0`` closer, and with half of them on a tie:
  ``judge (d1 < d0) + (1 - judge) (d1 > d0) + 0.5 (d1 = d0)`` (Zhang et al. 2018, as their code
  computes it). The score is the mean over triplets, per subset, and the mean of the per-subset
  scores (``dataset = "bapps"``) as the LPIPS paper averages them. Human-vs-human agreement
  (``judge^2 + (1 - judge)^2`` averaged) is reported as the ceiling (``distance = "human"``).

Confidence intervals are percentile bootstrap intervals (95 %): ``bootstrap`` resamples of the
pairs (triplets) with replacement, drawn from ``numpy.random.default_rng(seed)``; every distance
is scored on the same resamples (a paired bootstrap, so distances can be compared resample by
resample). The 2AFC mean and the Spearman correlation are vectorised over a resample index
matrix; Kendall's tau is computed per resample. For ``dataset = "bapps"`` the resampling is
stratified: every subset is resampled on its own and the per-subset means are averaged.

Images are read with :func:`psychovis.images.read_image` (8-bit RGB only; anything else is a
one-line :class:`~psychovis.errors.DataError`) and brought to a common ``size x size`` so that
they batch: the shorter side is resized to ``size`` (bilinear with antialiasing) and the centre
square is cropped (reference and distorted image alike, so a pair stays aligned). TID2013 and
KADID-10k are 512x384, so ``size = 256`` shows the central 341x256-equivalent square at 2/3
scale: the images are seen from farther away than in the original experiments (about 1.5 times
the pixels per degree), which moves image content to higher cycles/degree; ``size = None``
keeps the native size (all images of a batch must then have one size). BAPPS patches are 64x64.

All VGG-based distances share one forward pass per batch: per-map squared feature differences
``mean_hw (phi_c(x) - phi_c(y))^2`` are kept for the chosen layers, and each
:class:`~psychovis.loss.PsychovisualLoss` distance is their product with its own (mean-1)
weights, exactly what calling the module computes. The same per-map errors give the map-subset
curve (:func:`subset_scores`): the score of the top-k, bottom-k and random-k VFSS maps as a
function of k, with the selection masks of :func:`psychovis.psychophysics.selection_mask`.

References:
    N. Ponomarenko et al., "Image database TID2013: Peculiarities, results and perspectives",
    Signal Processing: Image Communication 30, 2015.
    H. Lin, V. Hosu, D. Saupe, "KADID-10k: A Large-scale Artificially Distorted IQA Database",
    QoMEX 2019.
    R. Zhang, P. Isola, A. A. Efros, E. Shechtman, O. Wang, "The Unreasonable Effectiveness of Deep
    Features as a Perceptual Metric", CVPR 2018 (BAPPS, 2AFC score, LPIPS).
    T. Tariq, M. Kim et al., arXiv:1812.00412 (VFSS, top-k maps).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.stats import kendalltau, rankdata, spearmanr

from psychovis.backbones import FeatureExtractor
from psychovis.errors import DataError, ParamsError
from psychovis.images import read_image
from psychovis.loss import PsychovisualLoss
from psychovis.params import BAPPS_SUBSETS
from psychovis.psychophysics import SELECTIONS, Distance, per_pair_distance, selection_mask

PathLike = str | Path

DATASETS: tuple[str, ...] = ("tid2013", "kadid10k", "bapps")
"""The data sets with a reader, as named in ``params.yaml`` and in the scores table."""
"""BAPPS 2AFC subsets: ``val`` has the first six, ``train`` has traditional, cnn and mix."""
BAPPS_SPLITS: tuple[str, ...] = ("val", "train")
SCORE_COLUMNS: tuple[str, ...] = ("dataset", "distance", "metric", "value", "ci_low", "ci_high", "n")
"""Columns of the scores table (one row per data set, distance and metric)."""
SUBSET_COLUMNS: tuple[str, ...] = ("dataset", "metric", "k", "selection", "seed", "value")
"""Columns of the map-subset table (one row per data set, metric, k, selection and random seed)."""
CI_LEVEL = 0.95
MIN_IMAGE_SIZE = 16
"""Smallest image side read (LPIPS-VGG needs 16 pixels)."""

TID2013_LAYOUT = (
    "root/reference_images/I01.BMP..I25.BMP, root/distorted_images/i01_01_1.bmp.. (i<ref>_<type>_<level>.bmp), "
    "root/mos_with_names.txt (lines '<mos> <distorted file>')"
)
KADID10K_LAYOUT = "root/dmos.csv (header dist_img,ref_img,dmos,var) and root/images/ (I01.png, I01_01_01.png, ...)"
BAPPS_LAYOUT = "root/<split>/<subset>/{ref,p0,p1}/<id>.png and root/<split>/<subset>/judge/<id>.npy (root = .../2afc)"

_TID_DISTORTED = re.compile(r"^i(\d{2})_(\d{2})_(\d)\.bmp$", re.IGNORECASE)
_TID_REFERENCE = re.compile(r"^i(\d{2})\.bmp$", re.IGNORECASE)
_KADID_DISTORTED = re.compile(r"^i(\d+)_(\d+)_(\d+)\.png$", re.IGNORECASE)


# ------------------------------------------------------------------------------------------- readers


def _folder(path: Path, what: str, layout: str) -> Path:
    if not path.is_dir():
        state = "is not a folder" if path.exists() else "does not exist"
        raise DataError(f"{what} {path} {state}; expected the public layout {layout}")
    return path


def _child(folder: Path, name: str, what: str, layout: str, kind: str = "file") -> Path:
    """``folder/name``, matched case-insensitively (archives unpacked on other systems change case)."""
    exact = folder / name
    if (exact.is_dir() if kind == "folder" else exact.is_file()) and exact.name == name:
        return exact
    for candidate in folder.iterdir():
        if candidate.name.lower() == name.lower() and (candidate.is_dir() if kind == "folder" else candidate.is_file()):
            return candidate
    raise DataError(f"{what}: {kind} {exact} is missing; expected the public layout {layout}")


def _index(folder: Path) -> dict[str, Path]:
    """Lower-cased file name -> path of every file directly in ``folder``."""
    return {path.name.lower(): path for path in folder.iterdir() if path.is_file()}


def read_tid2013(root: PathLike) -> pd.DataFrame:
    """Read TID2013 in its public layout.

    Args:
        root: the unpacked ``tid2013`` folder, holding ``reference_images/`` (``I01.BMP`` ..
            ``I25.BMP``), ``distorted_images/`` (``i<ref>_<type>_<level>.bmp``, 3000 files) and
            ``mos_with_names.txt`` (lines ``<mos> <distorted file name>``). File and folder names
            are matched case-insensitively (the archive mixes ``I25_01_1.BMP`` and ``i01_01_1.bmp``);
            the reference of a distorted image is the one with the same two-digit number.

    Returns:
        One row per line of ``mos_with_names.txt``, in file order: ``reference``, ``distorted``
        (absolute paths), ``score`` (the MOS, 0..9, higher = better quality), ``dataset``
        (``"tid2013"``), ``distortion`` (type 1..24) and ``level`` (1..5).

    Raises:
        DataError: the root, a folder, the MOS file or a listed image is missing, or a line of the
            MOS file is malformed; the one-line message names it and the expected layout.

    References:
        N. Ponomarenko et al., "Image database TID2013: Peculiarities, results and perspectives",
        Signal Processing: Image Communication 30, 2015.
    """
    root = _folder(Path(root).expanduser().resolve(), "TID2013 root", TID2013_LAYOUT)
    references = _child(root, "reference_images", "TID2013", TID2013_LAYOUT, "folder")
    distorted = _child(root, "distorted_images", "TID2013", TID2013_LAYOUT, "folder")
    mos_file = _child(root, "mos_with_names.txt", "TID2013", TID2013_LAYOUT)
    reference_by_number: dict[int, Path] = {}
    for name, path in _index(references).items():
        match = _TID_REFERENCE.match(name)
        if match:
            reference_by_number[int(match.group(1))] = path
    distorted_by_name = _index(distorted)
    rows = []
    for number, line in enumerate(mos_file.read_text(encoding="utf-8-sig", errors="replace").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            if len(fields) != 2:
                raise ValueError
            mos = float(fields[0])
        except ValueError:
            raise DataError(
                f"{mos_file}:{number} is not '<mos> <distorted file name>': {line.strip()[:60]!r}"
            ) from None
        name = fields[1]
        match = _TID_DISTORTED.match(name)
        if match is None:
            raise DataError(f"{mos_file}:{number} names {name!r}, not i<ref>_<type>_<level>.bmp")
        path = distorted_by_name.get(name.lower())
        if path is None:
            raise DataError(f"TID2013: {distorted / name} (listed in {mos_file.name}:{number}) is missing")
        reference = reference_by_number.get(int(match.group(1)))
        if reference is None:
            raise DataError(f"TID2013: reference image {references / f'I{match.group(1)}.BMP'} is missing")
        rows.append((str(reference), str(path), mos, int(match.group(2)), int(match.group(3))))
    if not rows:
        raise DataError(f"TID2013: {mos_file} lists no images; expected lines '<mos> <distorted file name>'")
    frame = pd.DataFrame(rows, columns=["reference", "distorted", "score", "distortion", "level"])
    frame.insert(3, "dataset", "tid2013")
    return frame


def read_kadid10k(root: PathLike) -> pd.DataFrame:
    """Read KADID-10k in its public layout.

    KADID-10k's ``dmos`` is the mean of crowd ratings of each distorted image *against its
    reference* on the 5-point degradation category scale (1 = very annoying .. 5 = imperceptible),
    so despite the "D" a **higher** value means **better** quality, the same direction as
    TID2013's MOS (its reference images would score 5).

    Args:
        root: the unpacked ``kadid10k`` folder, holding ``dmos.csv`` (header
            ``dist_img,ref_img,dmos,var``) and ``images/`` (``I01.png`` .. ``I81.png`` and
            ``I01_01_01.png`` .. ``I81_25_05.png``). Names are matched case-insensitively.

    Returns:
        One row per line of ``dmos.csv``, in file order: ``reference``, ``distorted`` (absolute
        paths), ``score`` (``dmos``, 1..5, higher = better quality), ``dataset`` (``"kadid10k"``),
        ``distortion`` (type 1..25) and ``level`` (1..5; both <NA> for a name outside the
        ``I<ref>_<type>_<level>.png`` pattern).

    Raises:
        DataError: the root, ``dmos.csv``, ``images/`` or a listed image is missing, or the CSV has
            other columns or a non-numeric ``dmos``.

    References:
        H. Lin, V. Hosu, D. Saupe, "KADID-10k: A Large-scale Artificially Distorted IQA Database",
        QoMEX 2019.
    """
    root = _folder(Path(root).expanduser().resolve(), "KADID-10k root", KADID10K_LAYOUT)
    table = _child(root, "dmos.csv", "KADID-10k", KADID10K_LAYOUT)
    images = _child(root, "images", "KADID-10k", KADID10K_LAYOUT, "folder")
    by_name = _index(images)
    with table.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        needed = ["dist_img", "ref_img", "dmos"]
        if not set(needed) <= set(header):
            raise DataError(f"KADID-10k: {table} has columns {header}, expected dist_img,ref_img,dmos,var")
        rows = []
        for number, record in enumerate(reader, 2):
            record = {key.strip(): (value or "").strip() for key, value in record.items() if key is not None}
            try:
                dmos = float(record["dmos"])
            except ValueError:
                raise DataError(f"{table}:{number} has a non-numeric dmos {record['dmos']!r}") from None
            paths = []
            for column in ("ref_img", "dist_img"):
                path = by_name.get(record[column].lower())
                if path is None:
                    raise DataError(
                        f"KADID-10k: {images / record[column]} (listed in {table.name}:{number}) is missing"
                    )
                paths.append(str(path))
            match = _KADID_DISTORTED.match(record["dist_img"])
            distortion, level = (int(match.group(2)), int(match.group(3))) if match else (None, None)
            rows.append((*paths, dmos, distortion, level))
    if not rows:
        raise DataError(f"KADID-10k: {table} lists no images")
    frame = pd.DataFrame(rows, columns=["reference", "distorted", "score", "distortion", "level"])
    frame.insert(3, "dataset", "kadid10k")
    frame[["distortion", "level"]] = frame[["distortion", "level"]].astype("Int64")
    return frame


def _judge(path: Path) -> float:
    try:
        value = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"BAPPS: {path} is not a readable .npy array ({detail})") from exc
    array = np.asarray(value, dtype=np.float64).reshape(-1) if np.asarray(value).dtype.kind in "fiub" else None
    if array is None or array.size != 1 or not 0.0 <= array[0] <= 1.0:
        raise DataError(f"BAPPS: {path} must hold one number in [0, 1] (fraction preferring p1)")
    return float(array[0])


def read_bapps_2afc(root: PathLike, subsets: Sequence[str] | None = None, split: str = "val") -> pd.DataFrame:
    """Read the 2AFC part of BAPPS (Berkeley-Adobe Perceptual Patch Similarity) in its public layout.

    Args:
        root: the ``2afc`` folder of the unpacked data set (``dataset/2afc``), holding
            ``<split>/<subset>/{ref,p0,p1}/<id>.png`` and ``<split>/<subset>/judge/<id>.npy`` (one
            float: the fraction of people who found ``p1`` closer to ``ref``).
        subsets: which subsets of the split (see :data:`BAPPS_SUBSETS`); None reads every subset
            folder present.
        split: ``val`` (the evaluation split of the paper) or ``train``.

    Returns:
        One row per triplet, subsets in the order given (else sorted), ids sorted: ``ref``,
        ``p0``, ``p1`` (absolute paths), ``judge`` (float in [0, 1]), ``subset``, ``id`` and
        ``dataset`` (``"bapps"``). Triplets are the ``judge/*.npy`` files.

    Raises:
        DataError: the root, split, a subset, one of its four folders or a patch is missing, a
            judge file is not a one-number array in [0, 1], or a subset holds no triplet.
        ParamsError: an unknown split or subset name.

    References:
        R. Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric",
        CVPR 2018.
    """
    if split not in BAPPS_SPLITS:
        raise ParamsError(f"BAPPS split must be one of {list(BAPPS_SPLITS)}, got {split!r}")
    if subsets is not None:
        unknown = [subset for subset in subsets if subset not in BAPPS_SUBSETS]
        if unknown or not subsets:
            raise ParamsError(f"BAPPS subsets must be a non-empty list from {list(BAPPS_SUBSETS)}, got {list(subsets)}")
    root = _folder(Path(root).expanduser().resolve(), "BAPPS 2AFC root", BAPPS_LAYOUT)
    split_folder = root / split
    if not split_folder.is_dir():
        hint = f" (found {root / '2afc' / split}: point at {root / '2afc'})" if (root / "2afc" / split).is_dir() else ""
        raise DataError(f"BAPPS: split folder {split_folder} is missing{hint}; expected {BAPPS_LAYOUT}")
    if subsets is None:
        subsets = sorted(path.name for path in split_folder.iterdir() if (path / "judge").is_dir())
        if not subsets:
            raise DataError(f"BAPPS: {split_folder} holds no subset folder with judge/; expected {BAPPS_LAYOUT}")
    frames = []
    for subset in subsets:
        folder = _folder(split_folder / subset, "BAPPS subset folder", BAPPS_LAYOUT)
        parts = {name: _folder(folder / name, "BAPPS folder", BAPPS_LAYOUT) for name in ("ref", "p0", "p1", "judge")}
        ids = sorted(path.stem for path in parts["judge"].glob("*.npy"))
        if not ids:
            raise DataError(f"BAPPS: {parts['judge']} holds no <id>.npy judgement; expected {BAPPS_LAYOUT}")
        columns: dict[str, list] = {"ref": [], "p0": [], "p1": []}
        for name in columns:
            present = {path.stem: path for path in parts[name].glob("*.png")}
            missing = [identifier for identifier in ids if identifier not in present]
            if missing:
                raise DataError(
                    f"BAPPS: {parts[name] / (missing[0] + '.png')} is missing ({len(missing)} of {len(ids)} "
                    f"{name} patches of {subset}); expected {BAPPS_LAYOUT}"
                )
            columns[name] = [str(present[identifier]) for identifier in ids]
        judge = [_judge(parts["judge"] / f"{identifier}.npy") for identifier in ids]
        frames.append(pd.DataFrame({**columns, "judge": judge, "subset": subset, "id": ids}))
    frame = pd.concat(frames, ignore_index=True)
    frame["dataset"] = "bapps"
    return frame


READERS: dict[str, Callable[..., pd.DataFrame]] = {
    "tid2013": read_tid2013,
    "kadid10k": read_kadid10k,
    "bapps": read_bapps_2afc,
}
"""Data set name -> reader."""


def subsample(frame: pd.DataFrame, max_pairs: int | None, seed: int = 0) -> pd.DataFrame:
    """At most ``max_pairs`` rows drawn uniformly without replacement (per BAPPS subset), order kept.

    Args:
        frame: a reader's frame.
        max_pairs: the most rows kept (per ``subset`` when the frame has that column); None keeps all.
        seed: seed of ``numpy.random.default_rng``.

    Returns:
        The kept rows, in their original order, with a fresh index.
    """
    if max_pairs is None:
        return frame.reset_index(drop=True)
    if isinstance(max_pairs, bool) or not isinstance(max_pairs, int | np.integer) or max_pairs < 1:
        raise ParamsError(f"max_pairs must be null or an integer >= 1, got {max_pairs!r}")
    groups = frame.groupby("subset", sort=False).indices.values() if "subset" in frame else [np.arange(len(frame))]
    rng = np.random.default_rng(seed)
    keep = [np.sort(rng.choice(rows, size=min(max_pairs, len(rows)), replace=False)) for rows in groups]
    return frame.iloc[np.sort(np.concatenate(keep))].reset_index(drop=True)


# ------------------------------------------------------------------------------------------ images


def to_common_size(image: np.ndarray, size: int | None) -> torch.Tensor:
    """An ``HxWx3`` image as a ``(3, size, size)`` tensor: shorter side resized to ``size``, centre crop.

    Args:
        image: float RGB in [0, 1], ``(H, W, 3)``.
        size: the output side; None keeps the native size (``(3, H, W)``).

    Returns:
        A float32 tensor in [0, 1]. Resizing is bilinear with antialiasing (when shrinking).
    """
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)
    if size is None:
        return tensor.contiguous()
    height, width = tensor.shape[1:]
    scale = size / min(height, width)
    new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
    if (new_h, new_w) != (height, width):
        tensor = F.interpolate(tensor[None], size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
        tensor = tensor[0].clamp(0.0, 1.0)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return tensor[:, top : top + size, left : left + size].contiguous()


class _ImageCache:
    """Read-and-resize with a small cache (references repeat across consecutive pairs)."""

    def __init__(self, size: int | None, capacity: int = 64) -> None:
        self.size, self.capacity, self.items = size, capacity, {}

    def __call__(self, path: str) -> torch.Tensor:
        if path not in self.items:
            if len(self.items) >= self.capacity:
                self.items.pop(next(iter(self.items)))
            self.items[path] = to_common_size(read_image(path, min_size=MIN_IMAGE_SIZE), self.size)
        return self.items[path]

    def batch(self, paths: Sequence[str]) -> torch.Tensor:
        tensors = [self(path) for path in paths]
        shapes = {tuple(tensor.shape) for tensor in tensors}
        if len(shapes) > 1:
            raise DataError(
                f"images of one batch differ in size {sorted(shapes)} (e.g. {paths[0]}); set human_judgement.size "
                "to resize them to a common size"
            )
        return torch.stack(tensors)


# --------------------------------------------------------------------------------------- distances


@dataclass
class PairDistances:
    """Every distance for every image pair, and the per-map feature errors behind them.

    Attributes:
        values: distance name -> ``(pairs,)`` float64 distances.
        map_errors: layer -> ``(pairs, maps)`` per-map squared feature difference
            ``mean_hw (phi_c(reference) - phi_c(distorted))^2`` (float64).
        backbone: the backbone of ``map_errors`` (None when there are none).
    """

    values: dict[str, np.ndarray]
    map_errors: dict[str, np.ndarray] = field(default_factory=dict)
    backbone: str | None = None


def _is_shared(distance: Distance, backbone: str) -> bool:
    return (
        isinstance(distance, PsychovisualLoss)
        and distance.data_range == (0.0, 1.0)
        and distance.extractor.spec.name == backbone
    )


def pair_distances(
    references: Sequence[PathLike],
    distorted: Sequence[PathLike],
    distances: Mapping[str, Distance],
    size: int | None = 256,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
    map_layers: Sequence[str] = (),
    backbone: str = "vgg16",
    progress: Callable[[int, int], None] | None = None,
) -> PairDistances:
    """Compute every distance for every ``(reference, distorted)`` image pair, in batches.

    :class:`~psychovis.loss.PsychovisualLoss` distances on ``backbone`` with inputs in [0, 1]
    share one forward pass of a network truncated after the deepest of their layers and
    ``map_layers``; their values are the per-map errors times each module's own mean-1 weights,
    which is what calling the module computes. Other distances (pixel MSE, LPIPS) are called as
    ``distance(reference batch, distorted batch)``.

    Args:
        references: reference image paths, one per pair.
        distorted: distorted image paths, one per pair.
        distances: name -> distance (from :func:`psychovis.psychophysics.build_distances`).
        size: common image side (see :func:`to_common_size`); None for native sizes.
        batch_size: pairs per forward pass.
        device: where to run.
        map_layers: layers whose per-map errors are wanted besides the distances' own (for
            :func:`subset_scores`).
        backbone: the backbone of the shared pass and of ``map_layers``.
        progress: optional ``progress(done, total)`` called after each batch.

    Returns:
        A :class:`PairDistances` with per-map errors for every layer of the shared pass.

    Raises:
        ParamsError: mismatched path lists, no distance, or a bad ``batch_size`` / ``size``.
        DataError: an image is missing or unreadable, or a batch mixes sizes with ``size`` None.
        ValueError: a distance returns other than one value per pair.
    """
    references, distorted = [str(path) for path in references], [str(path) for path in distorted]
    if len(references) != len(distorted):
        raise ParamsError(f"{len(references)} references but {len(distorted)} distorted images")
    if not distances and not map_layers:
        raise ParamsError("at least one distance is needed")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ParamsError(f"human_judgement.batch_size must be an integer >= 1, got {batch_size!r}")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int | np.integer) or size < MIN_IMAGE_SIZE):
        raise ParamsError(f"human_judgement.size must be null or an integer >= {MIN_IMAGE_SIZE}, got {size!r}")
    device = torch.device(device)
    shared = {name: distance for name, distance in distances.items() if _is_shared(distance, backbone)}
    generic = {name: distance for name, distance in distances.items() if name not in shared}
    layers: list[str] = list(dict.fromkeys([*map_layers, *(layer for d in shared.values() for layer in d.layers)]))
    rows = len(references)
    out = {name: np.empty(rows) for name in generic}
    errors: dict[str, np.ndarray] = {}
    images = _ImageCache(size)
    with torch.inference_mode():
        for module in distances.values():
            if isinstance(module, torch.nn.Module):
                module.to(device)
        extractor = FeatureExtractor(backbone, layers).to(device) if layers else None
        if extractor is not None:
            errors = {layer: np.empty((rows, maps)) for layer, maps in extractor.channels.items()}
        for start in range(0, rows, batch_size):
            stop = min(start + batch_size, rows)
            reference = images.batch(references[start:stop]).to(device)
            other = images.batch(distorted[start:stop]).to(device)
            if reference.shape != other.shape:
                raise DataError(
                    f"{references[start]} and {distorted[start]} differ in size; set human_judgement.size "
                    "to resize them to a common size"
                )
            for name, distance in generic.items():
                out[name][start:stop] = per_pair_distance(name, distance, reference, other)
            if extractor is not None:
                both = torch.cat([reference, other]).contiguous(memory_format=torch.channels_last)
                features = extractor(both)
                count = stop - start
                for layer in layers:
                    difference = features[layer][:count].float() - features[layer][count:].float()
                    errors[layer][start:stop] = difference.pow(2).mean(dim=(2, 3)).double().cpu().numpy()
            if progress is not None:
                progress(stop, rows)
    for name, distance in shared.items():
        total = np.zeros(rows)
        for layer in distance.layers:
            weight = distance.layer_weights(layer).double().cpu().numpy()
            total += errors[layer] @ weight / weight.size
        out[name] = total
    return PairDistances(
        values={name: out[name] for name in distances},
        map_errors=errors,
        backbone=backbone if errors else None,
    )


# ----------------------------------------------------------------------------------------- scores


def rank_correlations(distance: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """Signed Spearman and Kendall (tau-b) correlations of a distance with human scores.

    Args:
        distance: ``(n,)`` distances.
        score: ``(n,)`` human scores (MOS: higher = better quality, so a good distance gives
            **negative** correlations).

    Returns:
        ``{"srcc": rho, "krcc": tau}`` (NaN when either input is constant or ``n < 2``).

    Raises:
        ValueError: mismatched shapes.
    """
    distance, score = _pair(distance, score)
    if distance.size < 2 or np.ptp(distance) == 0 or np.ptp(score) == 0:
        return {"srcc": math.nan, "krcc": math.nan}
    return {"srcc": float(spearmanr(distance, score)[0]), "krcc": float(kendalltau(distance, score)[0])}


def two_afc_agreement(d0: np.ndarray, d1: np.ndarray, judge: np.ndarray) -> np.ndarray:
    """Per-triplet agreement of a distance with people: ``judge (d1<d0) + (1-judge) (d1>d0) + 0.5 (d1=d0)``.

    Args:
        d0: ``(n,)`` distance of ``p0`` from the reference.
        d1: ``(n,)`` distance of ``p1`` from the reference.
        judge: ``(n,)`` fraction of people who found ``p1`` closer, in [0, 1].

    Returns:
        ``(n,)`` float64 in [0, 1]; its mean is the 2AFC score.

    References:
        R. Zhang et al., CVPR 2018 (their ``score_2afc_dataset``).
    """
    d0, d1 = _pair(d0, d1)
    judge = np.asarray(judge, dtype=np.float64)
    if judge.shape != d0.shape:
        raise ValueError(f"judge must have shape {d0.shape}, got {judge.shape}")
    return judge * (d1 < d0) + (1.0 - judge) * (d1 > d0) + 0.5 * (d1 == d0)


def human_agreement(judge: np.ndarray) -> np.ndarray:
    """Per-triplet agreement of one person with another: ``judge^2 + (1 - judge)^2`` (the 2AFC ceiling)."""
    judge = np.asarray(judge, dtype=np.float64)
    return judge**2 + (1.0 - judge) ** 2


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"inputs must have one length, got {a.size} and {b.size}")
    return a, b


def bootstrap_indices(n: int, resamples: int, seed: int = 0) -> np.ndarray:
    """A ``(resamples, n)`` matrix of row indices drawn with replacement (``default_rng(seed)``)."""
    if isinstance(resamples, bool) or not isinstance(resamples, int | np.integer) or resamples < 0:
        raise ParamsError(f"bootstrap resamples must be an integer >= 0, got {resamples!r}")
    return np.random.default_rng(seed).integers(0, n, size=(int(resamples), n)) if n else np.zeros((resamples, 0), int)


def bootstrap_means(values: np.ndarray, resamples: int, seed: int = 0) -> np.ndarray:
    """The mean of ``values`` over each bootstrap resample, vectorised: ``(resamples,)``."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size == 0:
        return np.full(int(resamples), math.nan)
    return values[bootstrap_indices(values.size, resamples, seed)].mean(axis=1)


def bootstrap_correlations(
    distance: np.ndarray, score: np.ndarray, resamples: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """Spearman and Kendall correlations over bootstrap resamples of the pairs.

    Spearman's rho is vectorised (average ranks of every resample at once, then row-wise Pearson);
    Kendall's tau is computed per resample with :func:`scipy.stats.kendalltau`.

    Args:
        distance: ``(n,)`` distances.
        score: ``(n,)`` human scores.
        resamples: number of resamples.
        seed: seed of the resample indices (the same seed gives the same resamples).

    Returns:
        ``{"srcc": (resamples,), "krcc": (resamples,)}`` signed correlations (NaN for a resample
        where either side is constant).
    """
    distance, score = _pair(distance, score)
    index = bootstrap_indices(distance.size, resamples, seed)
    if distance.size < 2 or index.shape[0] == 0:
        return {"srcc": np.full(index.shape[0], math.nan), "krcc": np.full(index.shape[0], math.nan)}
    x, y = rankdata(distance[index], axis=1), rankdata(score[index], axis=1)
    x -= x.mean(axis=1, keepdims=True)
    y -= y.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = (x * y).sum(axis=1) / np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    tau = np.array([kendalltau(distance[rows], score[rows])[0] for rows in index], dtype=np.float64)
    return {"srcc": rho, "krcc": tau}


def percentile_ci(samples: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float]:
    """The percentile interval of bootstrap ``samples`` (NaN ignored; NaN when none is finite)."""
    samples = np.asarray(samples, dtype=np.float64)
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return math.nan, math.nan
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(samples, [tail, 100.0 - tail])
    return float(low), float(high)


def _record(dataset: str, distance: str, metric: str, value: float, samples: np.ndarray, n: int) -> dict:
    low, high = percentile_ci(samples)
    return {
        "dataset": dataset,
        "distance": distance,
        "metric": metric,
        "value": float(value),
        "ci_low": low,
        "ci_high": high,
        "n": int(n),
    }


def score_mos(
    dataset: str, values: Mapping[str, np.ndarray], score: np.ndarray, bootstrap: int = 200, seed: int = 0
) -> pd.DataFrame:
    """Sign-oriented SRCC and KRCC of each distance with mean opinion scores, with bootstrap CIs.

    Args:
        dataset: the data set's name (the ``dataset`` column).
        values: distance name -> ``(n,)`` distances.
        score: ``(n,)`` MOS (higher = better quality).
        bootstrap: resamples of the CI (0: no CI, NaN bounds).
        seed: seed of the resamples (shared by every distance: a paired bootstrap).

    Returns:
        :data:`SCORE_COLUMNS`, metrics ``srcc`` and ``krcc`` = ``-corr(distance, score)``: equal
        to ``|corr|`` when the distance grows as quality falls, negative when it orders backwards.
    """
    records = []
    for name, distance in values.items():
        point = rank_correlations(distance, score)
        samples = bootstrap_correlations(distance, score, bootstrap, seed)
        for metric in ("srcc", "krcc"):
            records.append(_record(dataset, name, metric, -point[metric], -samples[metric], len(score)))
    return pd.DataFrame(records, columns=list(SCORE_COLUMNS))


def score_2afc(
    d0: Mapping[str, np.ndarray],
    d1: Mapping[str, np.ndarray],
    judge: np.ndarray,
    subset: np.ndarray,
    bootstrap: int = 200,
    seed: int = 0,
    dataset: str = "bapps",
) -> pd.DataFrame:
    """2AFC score of each distance per BAPPS subset and averaged over subsets, with bootstrap CIs.

    Args:
        d0: distance name -> ``(n,)`` distances of ``p0`` from the reference.
        d1: distance name -> ``(n,)`` distances of ``p1``.
        judge: ``(n,)`` fraction of people who found ``p1`` closer.
        subset: ``(n,)`` subset name of each triplet.
        bootstrap: resamples of the CI (0: no CI).
        seed: seed of the resamples (the same resamples for every distance).
        dataset: prefix of the ``dataset`` column: ``"<dataset>/<subset>"`` per subset and
            ``dataset`` for the mean over subsets (a stratified bootstrap: each subset resampled
            on its own, then the per-subset means averaged).

    Returns:
        :data:`SCORE_COLUMNS` with metric ``2afc``; ``distance = "human"`` is the human ceiling
        :func:`human_agreement`.
    """
    judge = np.asarray(judge, dtype=np.float64)
    subset = np.asarray(subset).astype(str)
    names = list(dict.fromkeys(subset.tolist()))
    per_triplet = {name: two_afc_agreement(d0[name], d1[name], judge) for name in d0}
    per_triplet["human"] = human_agreement(judge)
    records = []
    for name, agreement in per_triplet.items():
        means, samples = [], []
        for position, part in enumerate(names):
            rows = subset == part
            means.append(agreement[rows].mean())
            samples.append(bootstrap_means(agreement[rows], bootstrap, seed + position))
            records.append(_record(f"{dataset}/{part}", name, "2afc", means[-1], samples[-1], int(rows.sum())))
        if len(names) > 1:
            records.append(_record(dataset, name, "2afc", np.mean(means), np.mean(samples, axis=0), len(judge)))
    return pd.DataFrame(records, columns=list(SCORE_COLUMNS))


# ------------------------------------------------------------------------------------ map subsets


def subset_distances(
    map_errors: Mapping[str, np.ndarray],
    vfss_scores: Mapping[str, np.ndarray],
    ks: Sequence[int],
    seeds: int | Sequence[int] = 5,
) -> list[tuple[int, str, int | None, np.ndarray]]:
    """The VGG distance restricted to the top-k, bottom-k and random-k VFSS maps, from per-map errors.

    Each selection is a binary mask of :func:`psychovis.psychophysics.selection_mask` rescaled to
    mean 1 per layer (as :class:`~psychovis.loss.PsychovisualLoss` rescales weights), so the
    distance is ``sum_layers mean_c w_c e_c``, what the loss module with those masks computes.

    Args:
        map_errors: layer -> ``(pairs, maps)`` per-map errors (from :func:`pair_distances`).
        vfss_scores: layer -> VFSS of each map, in channel order.
        ks: maps per layer (``min(k, maps)`` in a smaller layer).
        seeds: the ``randomk`` seeds, or how many (``0 .. seeds-1``).

    Returns:
        ``(k, selection, seed, distances)`` tuples: ``topk`` and ``bottomk`` per k (seed None),
        ``randomk`` per k and seed; ``distances`` of shape ``(pairs,)``.

    Raises:
        ParamsError: no per-map errors, a bad k, or VFSS scores missing or of the wrong length.
    """
    if not map_errors:
        raise ParamsError("map subsets need per-map errors: pass map_layers to pair_distances")
    seed_list = list(range(seeds)) if isinstance(seeds, int | np.integer) else [int(s) for s in seeds]
    if not ks or any(isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1 for k in ks):
        raise ParamsError(f"subset ks must be integers >= 1, got {list(ks)}")
    combos: list[tuple[int, str, int | None]] = [(int(k), s, None) for k in ks for s in SELECTIONS if s != "randomk"]
    combos += [(int(k), "randomk", seed) for k in ks for seed in seed_list]
    pairs = next(iter(map_errors.values())).shape[0]
    totals = np.zeros((pairs, len(combos)))
    for layer, errors in map_errors.items():
        if layer not in vfss_scores:
            raise ParamsError(f"no VFSS scores for layer {layer}")
        scores = np.asarray(vfss_scores[layer], dtype=np.float64)
        if scores.size != errors.shape[1]:
            raise ParamsError(f"{layer} has {errors.shape[1]} maps but {scores.size} VFSS scores")
        masks = np.stack(
            [selection_mask(scores, selection, min(k, scores.size), seed or 0) for k, selection, seed in combos], axis=1
        )
        weights = masks * (scores.size / masks.sum(axis=0))
        totals += errors @ weights / scores.size
    return [(k, selection, seed, totals[:, index]) for index, (k, selection, seed) in enumerate(combos)]


def subset_scores(
    dataset: str,
    frame: pd.DataFrame,
    map_errors: Mapping[str, np.ndarray],
    vfss_scores: Mapping[str, np.ndarray],
    ks: Sequence[int],
    seeds: int | Sequence[int] = 5,
) -> pd.DataFrame:
    """The map-subset curve on human data: score of the k top-, bottom- and random-VFSS maps vs k.

    Args:
        dataset: the data set's name.
        frame: the reader's frame (MOS: ``score`` column; 2AFC: ``judge`` and ``subset``).
        map_errors: layer -> per-map errors; for 2AFC the ``2n`` rows are the ``(ref, p0)`` pairs
            followed by the ``(ref, p1)`` pairs.
        vfss_scores: layer -> VFSS of each map.
        ks: maps per layer.
        seeds: the ``randomk`` seeds, or how many.

    Returns:
        :data:`SUBSET_COLUMNS`: metric ``srcc`` (sign-oriented, as in :func:`score_mos`) for MOS
        data, ``2afc`` (mean over subsets of the per-subset scores) for 2AFC data; ``seed`` is
        <NA> for the deterministic selections.
    """
    records = []
    is_2afc = "judge" in frame
    for k, selection, seed, distance in subset_distances(map_errors, vfss_scores, ks, seeds):
        if is_2afc:
            n = len(frame)
            agreement = two_afc_agreement(distance[:n], distance[n:], frame["judge"].to_numpy())
            value = float(pd.Series(agreement).groupby(frame["subset"].to_numpy()).mean().mean())
            metric = "2afc"
        else:
            value, metric = -rank_correlations(distance, frame["score"].to_numpy())["srcc"], "srcc"
        records.append(
            {"dataset": dataset, "metric": metric, "k": k, "selection": selection, "seed": seed, "value": value}
        )
    result = pd.DataFrame(records, columns=list(SUBSET_COLUMNS))
    result["seed"] = result["seed"].astype("Int64")
    return result


def subset_summary(subsets: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation (over random seeds) per ``(dataset, metric, k, selection)``."""
    summary = (
        subsets.groupby(["dataset", "metric", "k", "selection"], sort=False)["value"]
        .agg(["mean", "std", "count"])
        .reset_index()
    )
    summary["std"] = summary["std"].fillna(0.0)
    return summary


# ------------------------------------------------------------------------------------------- runner


def empty_scores() -> pd.DataFrame:
    """A scores table with the columns and dtypes of :func:`evaluate` and no rows."""
    return pd.DataFrame(
        {
            "dataset": pd.Series(dtype="object"),
            "distance": pd.Series(dtype="object"),
            "metric": pd.Series(dtype="object"),
            "value": pd.Series(dtype="float64"),
            "ci_low": pd.Series(dtype="float64"),
            "ci_high": pd.Series(dtype="float64"),
            "n": pd.Series(dtype="int64"),
        }
    )


def empty_subsets() -> pd.DataFrame:
    """A map-subset table with the columns and dtypes of :func:`evaluate` and no rows."""
    return pd.DataFrame(
        {
            "dataset": pd.Series(dtype="object"),
            "metric": pd.Series(dtype="object"),
            "k": pd.Series(dtype="int64"),
            "selection": pd.Series(dtype="object"),
            "seed": pd.Series(dtype="Int64"),
            "value": pd.Series(dtype="float64"),
        }
    )


def evaluate(
    datasets: Mapping[str, pd.DataFrame],
    distances: Mapping[str, Distance],
    vfss_scores: Mapping[str, np.ndarray] | None = None,
    layers: Sequence[str] = ("relu3_2",),
    size: int | None = 256,
    batch_size: int = 16,
    bootstrap: int = 200,
    subset_ks: Sequence[int] = (),
    subset_seeds: int | Sequence[int] = 5,
    seed: int = 0,
    device: torch.device | str = "cpu",
    backbone: str = "vgg16",
    progress: Callable[[str, int, int], None] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every distance on every data set, and the map-subset curve.

    Args:
        datasets: name -> a reader's frame (MOS frames have ``reference, distorted, score``;
            2AFC frames ``ref, p0, p1, judge, subset``).
        distances: name -> distance (from :func:`psychovis.psychophysics.build_distances`).
        vfss_scores: layer -> VFSS of each map (needed when ``subset_ks`` is not empty).
        layers: the layers of the map-subset curve (the VGG distances' layers).
        size: common image side (see :func:`to_common_size`).
        batch_size: pairs per forward pass.
        bootstrap: resamples of the confidence intervals.
        subset_ks: k values of the map-subset curve; empty to skip it.
        subset_seeds: ``randomk`` seeds, or how many.
        seed: seed of the bootstrap.
        device: where to run.
        backbone: the backbone of the shared forward pass.
        progress: optional ``progress(dataset, done, total)``.

    Returns:
        ``(scores, subsets)``: frames with :data:`SCORE_COLUMNS` and :data:`SUBSET_COLUMNS`.

    Raises:
        DataError: an image is missing or unreadable.
        ParamsError: a frame of neither kind, or a bad parameter.
    """
    scores, subsets = [], []
    map_layers = list(layers) if subset_ks else []
    for name, frame in datasets.items():
        report = None if progress is None else (lambda done, total, name=name: progress(name, done, total))
        if {"ref", "p0", "p1", "judge", "subset"} <= set(frame.columns):
            pairs = pair_distances(
                [*frame["ref"], *frame["ref"]],
                [*frame["p0"], *frame["p1"]],
                distances,
                size,
                batch_size,
                device,
                map_layers,
                backbone,
                report,
            )
            n = len(frame)
            d0 = {key: value[:n] for key, value in pairs.values.items()}
            d1 = {key: value[n:] for key, value in pairs.values.items()}
            scores.append(
                score_2afc(d0, d1, frame["judge"].to_numpy(), frame["subset"].to_numpy(), bootstrap, seed, name)
            )
        elif {"reference", "distorted", "score"} <= set(frame.columns):
            pairs = pair_distances(
                frame["reference"],
                frame["distorted"],
                distances,
                size,
                batch_size,
                device,
                map_layers,
                backbone,
                report,
            )
            scores.append(score_mos(name, pairs.values, frame["score"].to_numpy(), bootstrap, seed))
        else:
            raise ParamsError(f"data set {name!r} has columns {list(frame.columns)}, neither MOS nor 2AFC")
        if subset_ks:
            if vfss_scores is None:
                raise ParamsError("the map-subset curve needs VFSS scores")
            subsets.append(subset_scores(name, frame, pairs.map_errors, vfss_scores, subset_ks, subset_seeds))
    score_frame = pd.concat([empty_scores(), *scores], ignore_index=True) if scores else empty_scores()
    subset_frame = pd.concat([empty_subsets(), *subsets], ignore_index=True) if subsets else empty_subsets()
    return score_frame.astype(empty_scores().dtypes.to_dict()), subset_frame.astype(empty_subsets().dtypes.to_dict())


def json_number(value: float) -> float | None:
    return round(float(value), 5) if math.isfinite(value) else None


def summary_metrics(scores: pd.DataFrame) -> dict[str, dict[str, dict[str, float | None]]]:
    """``dataset -> distance -> {metric: value, metric_ci_low, metric_ci_high}`` for a metrics file, JSON-safe."""
    metrics: dict[str, dict[str, dict[str, float | None]]] = {}
    for row in scores.itertuples(index=False):
        entry = metrics.setdefault(str(row.dataset), {}).setdefault(str(row.distance), {})
        entry[str(row.metric)] = json_number(row.value)
        entry[f"{row.metric}_ci_low"] = json_number(row.ci_low)
        entry[f"{row.metric}_ci_high"] = json_number(row.ci_high)
    return metrics
