"""Default feature weights shipped inside psychovis, for :meth:`PsychovisualLoss.pretrained`.

The files in ``src/psychovis/pretrained/`` (package data, outside this subpackage so that
refreshing them does not invalidate the pipeline stages that import the loss) are copies of a
pipeline run's exported weights (a few KB each), with provenance in their metadata: the source
file and its md5, the git commit, and the params keys that shaped them.
:mod:`psychovis.pipeline.shipped_weights` refreshes them from a finished run.
"""

from __future__ import annotations

from pathlib import Path

from psychovis.errors import ParamsError, quote

SHIPPED_SCHEMES = ("vfss", "topk", "vfss_normalised", "lpips_weighted")
"""The shipped schemes (one ``<scheme>.safetensors`` each)."""
FOLDER = Path(__file__).resolve().parents[1] / "pretrained"


def pretrained_path(name: str) -> Path:
    """The shipped weights file of scheme ``name``.

    Raises:
        ParamsError: an unknown name (the message lists the shipped ones).
    """
    if name not in SHIPPED_SCHEMES:
        raise ParamsError(f"pretrained weights must be one of {list(SHIPPED_SCHEMES)}, got {quote(name)}")
    return FOLDER / f"{name}.safetensors"
