"""One shared forward pass for many feature distances: per-map errors once, any weighting after.

Every VGG-based distance of the project (the plain perceptual loss, the VFSS-weighted one, the
top-/bottom-/random-k map selections) is ``sum_layers mean_c w_c e_c`` of the same per-map errors
``e_c = mean_hw (phi_c(x) - phi_c(y))^2``; only the weights ``w`` differ. So the experiments run
the network once per batch, keep ``e`` (``(pairs, maps)`` per layer), and turn it into as many
distances as they like by matrix products: a 500-draw random-subset null costs one product, not
500 forward passes.

- :func:`map_errors`: ``e`` from two feature dictionaries (what
  :class:`~psychovis.distances.loss.PsychovisualLoss` computes inside its forward, so a distance
  rebuilt from ``e`` equals calling the module).
- :func:`weighted_errors`: ``e @ W / maps`` for one weight vector or a matrix of them.
- :func:`selection_weights`: the mean-1 mask matrix of many top-/bottom-/random-k selections.
- :class:`~psychovis.distances.plan.SharedPlan`: which distances of a catalogue one forward pass
  can serve.

References:
    T. Tariq, M. Kim et al., arXiv:1812.00412 (per-map weights, top-k selection).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from psychovis.names import SELECTIONS
from psychovis.validation import integers_at_least
from psychovis.vfss import selection_mask

Distance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""An image distance: ``(reference, distorted)``, both ``(N, 3, H, W)`` in [0, 1] -> ``(N,)``."""

Selection = tuple[int, str, int | None]
"""``(k, selection, seed)``: k maps per layer chosen by ``topk``, ``bottomk`` or ``randomk`` (with its seed)."""


def map_errors(
    features_x: Mapping[str, torch.Tensor], features_y: Mapping[str, torch.Tensor], layers: Sequence[str]
) -> dict[str, torch.Tensor]:
    """Per-map squared feature differences ``mean_hw (phi_c(x) - phi_c(y))^2``, float32.

    Args:
        features_x: layer -> ``(N, C, H, W)`` features (e.g. of the prediction).
        features_y: layer -> features of the same shape (e.g. of the target).
        layers: which layers.

    Returns:
        Layer -> ``(N, C)`` errors (differentiable when the inputs are).
    """
    return {layer: (features_x[layer].float() - features_y[layer].float()).pow(2).mean(dim=(2, 3)) for layer in layers}


def weighted_errors(errors: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``errors @ weights / maps``: the distance of mean-1 per-map ``weights`` (one layer).

    Args:
        errors: ``(..., maps)`` per-map errors.
        weights: ``(maps,)`` or ``(maps, K)`` per-map weights, rescaled to mean 1 per column as
            :class:`PsychovisualLoss` rescales them.

    Returns:
        ``(...)`` or ``(..., K)`` distances.
    """
    return errors @ weights / weights.shape[0]


def selections(ks: Sequence[int], seeds: int | Sequence[int]) -> list[Selection]:
    """The map selections of a subset curve: top-k and bottom-k per k, then random-k per k and seed.

    Args:
        ks: maps per layer, each ``>= 1``.
        seeds: the ``randomk`` seeds, or how many (``0 .. seeds-1``).
    """
    ks = integers_at_least("subset ks", ks)
    seed_list = list(range(seeds)) if isinstance(seeds, int | np.integer) else [int(s) for s in seeds]
    chosen: list[Selection] = [(k, s, None) for k in ks for s in SELECTIONS if s != "randomk"]
    return chosen + [(k, "randomk", seed) for k in ks for seed in seed_list]


def selection_weights(scores: np.ndarray, chosen: Sequence[Selection]) -> np.ndarray:
    """The ``(maps, len(chosen))`` mean-1 mask matrix of ``chosen`` selections of one layer.

    Each column is :func:`~psychovis.distances.selection.selection_mask` (``min(k, maps)`` maps)
    rescaled to mean 1, so ``weighted_errors(errors, W)[..., j]`` is the VGG distance restricted
    to the maps of selection ``j``: what ``PsychovisualLoss`` with that mask computes.
    """
    scores = np.asarray(scores, dtype=np.float64)
    masks = np.stack(
        [selection_mask(scores, selection, min(k, scores.size), seed or 0) for k, selection, seed in chosen], axis=1
    )
    return masks * (scores.size / masks.sum(axis=0))


def per_pair_distance(name: str, distance: Distance, reference: torch.Tensor, distorted: torch.Tensor) -> np.ndarray:
    """Run a distance on a batch of pairs, checking it returns one value per pair.

    Raises:
        ValueError: the distance reduced the batch (e.g. ``reduction="mean"``).
    """
    value = torch.as_tensor(distance(reference, distorted)).detach().reshape(-1)
    if value.numel() != len(reference):
        raise ValueError(
            f"distance {name!r} returned {value.numel()} values for {len(reference)} image pairs; "
            "it must return one value per image pair (e.g. reduction='none')"
        )
    return value.double().cpu().numpy()
