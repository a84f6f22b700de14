"""Image distances on deep features: the psychovisual loss, LPIPS, and the engine they share.

- :mod:`~psychovis.distances.loss`: :class:`PsychovisualLoss`, the per-map weighted VGG loss
  (uniform weights: the plain VGG loss).
- :mod:`~psychovis.distances.lpips`: LPIPS v0.1 from offline parts.
- :mod:`~psychovis.distances.engine`: per-map errors once, then any weighting or map subset as a
  matrix product; :mod:`~psychovis.distances.plan` groups the distances one forward pass serves.
- :mod:`~psychovis.distances.catalogue`: the named distances the experiments compare.
"""

from psychovis.distances.catalogue import build_distances, pixel_mse
from psychovis.distances.engine import Distance
from psychovis.distances.loss import PsychovisualLoss, psychovisual_loss
from psychovis.distances.lpips import LPIPS

__all__ = ["LPIPS", "Distance", "PsychovisualLoss", "build_distances", "pixel_mse", "psychovisual_loss"]
