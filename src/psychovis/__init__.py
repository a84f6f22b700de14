"""psychovis: ask deep networks the questions a vision scientist asks a neuron.

Reproduces Tariq, Kim et al., "A Psychovisual Analysis on Deep CNN Features for Perceptual
Metrics and A Novel Psychovisual Loss" (arXiv:1812.00412) and turns its Visual Frequency
Sensitivity Score (VFSS) into a drop-in perceptual loss::

    from psychovis import PsychovisualLoss
    criterion = PsychovisualLoss("data/weights/vfss.safetensors")

The public names are imported on first use (PEP 562), so ``import psychovis.pipeline.params`` or a
stage that only needs pandas does not pay for importing torch and torchvision: a bad
``params.yaml`` or an unreachable tracking server is reported within a second or two.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from psychovis.distances.loss import PsychovisualLoss, psychovisual_loss
    from psychovis.feature_weights import FeatureWeights

__all__ = ["FeatureWeights", "PsychovisualLoss", "psychovisual_loss"]
__version__ = "0.1.0"

_LAZY = {
    "FeatureWeights": "psychovis.feature_weights",
    "PsychovisualLoss": "psychovis.distances.loss",
    "psychovisual_loss": "psychovis.distances.loss",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'psychovis' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
