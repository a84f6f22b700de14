"""Readers of human-judgement data sets in their public layouts: TID2013, KADID-10k, BAPPS 2AFC.

Each reader checks the layout and says what it expected, so a wrong path or a partial copy is one
clear :class:`~psychovis.errors.DataError`, not a missing-file traceback halfway through scoring.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from psychovis.errors import DataError, ParamsError, quote
from psychovis.names import BAPPS_SPLITS, BAPPS_SUBSETS

PathLike = str | Path

TID2013_LAYOUT = (
    "root/reference_images/I01.BMP..I25.BMP, root/distorted_images/i01_01_1.bmp.. (i<ref>_<type>_<level>.bmp), "
    "root/mos_with_names.txt (lines '<mos> <distorted file>')"
)
KADID10K_LAYOUT = "root/dmos.csv (header dist_img,ref_img,dmos,var) and root/images/ (I01.png, I01_01_01.png, ...)"
BAPPS_LAYOUT = "root/<split>/<subset>/{ref,p0,p1}/<id>.png and root/<split>/<subset>/judge/<id>.npy (root = .../2afc)"

_TID_DISTORTED = re.compile(r"^i(\d{2})_(\d{2})_(\d)\.bmp$", re.IGNORECASE)
_TID_REFERENCE = re.compile(r"^i(\d{2})\.bmp$", re.IGNORECASE)
_KADID_DISTORTED = re.compile(r"^i(\d+)_(\d+)_(\d+)\.png$", re.IGNORECASE)


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


def _text(path: Path, what: str) -> str:
    """The file's text as UTF-8 (a leading BOM dropped); another encoding is an error naming the byte."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{what}: {path} is not UTF-8 text (byte {exc.object[exc.start : exc.start + 1]!r} on line {line}); "
            "save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
        ) from None
    except OSError as exc:
        raise DataError(f"{what}: {path} cannot be read ({exc.strerror or exc})") from None


def _score(text: str, where: str, name: str) -> float:
    """A finite number from ``text``; NaN, infinity or text is an error naming ``where``."""
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{where} has a non-numeric {name} {text!r}; fix that line") from None
    if not math.isfinite(value):
        raise DataError(f"{where} has a non-finite {name} {text!r}; fix or remove that line")
    return value


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
    for number, line in enumerate(_text(mos_file, "TID2013").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            if len(fields) != 2:
                raise ValueError
            float(fields[0])
        except ValueError:
            raise DataError(
                f"{mos_file}:{number} is not '<mos> <distorted file name>': {line.strip()[:60]!r}"
            ) from None
        mos = _score(fields[0], f"{mos_file}:{number}", "MOS")
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
    with io.StringIO(_text(table, "KADID-10k"), newline="") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        needed = ["dist_img", "ref_img", "dmos"]
        if not set(needed) <= set(header):
            raise DataError(f"KADID-10k: {table} has columns {header}, expected dist_img,ref_img,dmos,var")
        rows = []
        for number, record in enumerate(reader, 2):
            record = {key.strip(): (value or "").strip() for key, value in record.items() if key is not None}
            dmos = _score(record["dmos"], f"{table}:{number}", "dmos")
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
        raise ParamsError(f"BAPPS split must be one of {list(BAPPS_SPLITS)}, got {quote(split)}")
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
        raise ParamsError(f"max_pairs must be null or an integer >= 1, got {quote(max_pairs)}")
    groups = frame.groupby("subset", sort=False).indices.values() if "subset" in frame else [np.arange(len(frame))]
    rng = np.random.default_rng(seed)
    keep = [np.sort(rng.choice(rows, size=min(max_pairs, len(rows)), replace=False)) for rows in groups]
    return frame.iloc[np.sort(np.concatenate(keep))].reset_index(drop=True)
