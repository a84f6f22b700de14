"""Every distance on every stimulus of the experiment, from one shared forward pass per batch."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from psychovis.distances import engine
from psychovis.distances.dists import DISTS
from psychovis.distances.engine import Distance, per_pair_distance
from psychovis.distances.plan import SharedPlan
from psychovis.errors import ParamsError
from psychovis.progress import Progress
from psychovis.psychophysics.stimuli import GREY, StimulusSpec, _check_backgrounds, render_stimuli
from psychovis.validation import integer_at_least


@dataclass
class DistanceGrid:
    """Every distance, on every background, frequency and contrast of the experiment.

    Attributes:
        backgrounds: background names, in order (axis 0 of the arrays).
        frequency_cpd: the grating frequencies (axis 1), and ``frequency_cpp`` in cycles/pixel.
        contrasts: the contrast grid (axis 2).
        values: distance name -> ``(backgrounds, frequencies, contrasts)`` distance of the
            stimulus from its background, averaged over phases.
        criterion: distance name -> the distance of the reference grating on grey (the main
            criterion, at ``spec.reference_contrast``).
        criterion_contrasts: the reference contrasts of the criterion levels (the main one first).
        criteria: distance name -> ``(levels,)`` the criterion at each of ``criterion_contrasts``.
        clipped_fraction: ``(backgrounds, frequencies, contrasts)`` mean fraction of clipped pixels.
        map_errors: layer -> ``(backgrounds, frequencies, contrasts, maps)`` per-map squared feature
            difference ``mean_hw (phi_c(stimulus) - phi_c(background))^2`` averaged over phases,
            for the layers of the ``PsychovisualLoss`` distances (empty when there are none).
        map_criterion: layer -> ``(maps,)`` the same for the reference grating on grey.
        map_criteria: layer -> ``(levels, maps)`` the same at every criterion level.
        map_backbone: the backbone of ``map_errors``.
    """

    backgrounds: list[str]
    frequency_cpd: np.ndarray
    frequency_cpp: np.ndarray
    contrasts: np.ndarray
    values: dict[str, np.ndarray]
    criterion: dict[str, float]
    clipped_fraction: np.ndarray
    map_errors: dict[str, np.ndarray] = field(default_factory=dict)
    map_criterion: dict[str, np.ndarray] = field(default_factory=dict)
    map_backbone: str | None = None
    criterion_contrasts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    criteria: dict[str, np.ndarray] = field(default_factory=dict)
    map_criteria: dict[str, np.ndarray] = field(default_factory=dict)


def distance_grid(
    distances: Mapping[str, Distance],
    backgrounds: Mapping[str, np.ndarray],
    spec: StimulusSpec,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> DistanceGrid:
    """Evaluate every distance on every (background, frequency, contrast, phase) stimulus.

    Stimuli are rendered on the fly in batches of ``batch_size``; the reference grating on uniform
    grey (for the criterion) is in the same run. Feature distances (``PsychovisualLoss`` with
    inputs in [0, 1], and ``LPIPS``) on one backbone share one forward pass of a network truncated
    after their deepest layer, and the backgrounds' features are computed once; any other
    callable is called as ``distance(background batch, stimulus batch)``.

    Args:
        distances: name -> distance (e.g. from :func:`build_distances`).
        backgrounds: name -> ``(size, size)`` grey background in [0, 1] (see :func:`make_backgrounds`).
        spec: the experiment.
        batch_size: stimuli per forward pass.
        device: where to render and run.
        progress: report progress (a bar on a terminal, periodic lines in a log).

    Returns:
        A :class:`DistanceGrid`.

    Raises:
        ParamsError: no distance, or a bad ``batch_size``.
        ValueError: a background of the wrong shape or range, or a distance returning a wrong shape.
    """
    if not distances:
        raise ParamsError("at least one distance is needed")
    batch_size = integer_at_least("batch_size", batch_size)
    device = torch.device(device)
    checked = _check_backgrounds(backgrounds, spec.size)
    names = list(checked)
    n_b, n_f, n_c, n_p = len(names), len(spec.frequencies_cpd), len(spec.contrasts), spec.phases
    # Rows: every (background, frequency, contrast, phase), then the reference gratings on grey
    # (every criterion level x phase).
    bi, fi, ci, pi = (grid.ravel() for grid in np.meshgrid(*map(np.arange, (n_b, n_f, n_c, n_p)), indexing="ij"))
    levels = np.asarray(spec.reference_contrasts)
    n_r = levels.size
    freq_cpp = np.concatenate(
        [spec.frequency_cpp[fi], np.full(n_r * n_p, float(spec.cpp(spec.reference_frequency_cpd)))]
    )
    contrast = np.concatenate([np.asarray(spec.contrasts)[ci], np.repeat(levels, n_p)])
    phase = np.concatenate([spec.phase_rad[pi], np.tile(spec.phase_rad, n_r)])
    background_index = np.concatenate([bi, np.full(n_r * n_p, n_b)])  # index n_b: the grey of the criterion
    rows = len(background_index)

    stack = np.stack([*(checked[name] for name in names), np.full((spec.size, spec.size), GREY)])
    background_images = torch.from_numpy(stack).to(device)
    window = torch.from_numpy(spec.spatial_window()).to(device)
    as_tensor = {
        "freq": torch.from_numpy(freq_cpp).to(device),
        "contrast": torch.from_numpy(contrast).to(device),
        "phase": torch.from_numpy(phase).to(device),
        "background": torch.from_numpy(background_index).to(device),
    }

    plan = SharedPlan.of(distances)
    out = {name: np.empty(rows) for name in distances}
    errors: dict[str, np.ndarray] = {}
    clipped = np.empty(rows)

    with torch.inference_mode():
        references = background_images.float()[:, None].expand(-1, 3, -1, -1).contiguous()
        extractor, reference_features, errors, normalised_reference = plan.start(distances, references, rows, device)
        # DISTS sees each background once (DISTS.prepare), not once per stimulus: half of its forward
        # passes, and DISTS is most of this stage's time.
        prepared = {name: d.prepare(references) for name, d in plan.generic.items() if isinstance(d, DISTS)}
        for start in Progress(range(0, rows, batch_size), desc="psychophysics", unit="batch", enabled=progress):
            stop = min(start + batch_size, rows)
            index = slice(start, stop)
            which = as_tensor["background"][index]
            images, clip = render_stimuli(
                background_images[which],
                window,
                as_tensor["freq"][index],
                as_tensor["contrast"][index],
                as_tensor["phase"][index],
            )
            clipped[index] = clip.cpu().numpy()
            if plan.generic:
                references = background_images[which].float()[:, None].expand(-1, 3, -1, -1).contiguous()
                for name, distance in plan.generic.items():
                    if name in prepared:
                        chosen = [tuple(part[which] for part in stage) for stage in prepared[name]]
                        out[name][index] = distance.compare(images, chosen).double().cpu().numpy()
                    else:
                        out[name][index] = per_pair_distance(name, distance, references, images)
            if extractor is not None:
                # channels_last runs the convolutions about 20 % faster on CPU (and on GPU).
                features = extractor(images.contiguous(memory_format=torch.channels_last))
                backgrounds_of_batch = {layer: reference_features[layer][which] for layer in plan.map_layers}
                for layer, error in engine.map_errors(features, backgrounds_of_batch, plan.map_layers).items():
                    errors[layer][index] = error.double().cpu().numpy()
                for name, value in plan.lpips_values(features, normalised_reference, which).items():
                    out[name][index] = value.cpu().numpy()
        out.update(plan.weighted_values(errors))

    def by_grid(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        main = values[: n_b * n_f * n_c * n_p].reshape(n_b, n_f, n_c, n_p, *values.shape[1:]).mean(axis=3)
        references = values[n_b * n_f * n_c * n_p :]
        return main, references.reshape(n_r, n_p, *values.shape[1:]).mean(axis=1)

    values, criteria = {}, {}
    for name in distances:
        values[name], criteria[name] = by_grid(out[name])
    map_errors, map_criteria = {}, {}
    for layer, matrix in errors.items():
        map_errors[layer], map_criteria[layer] = by_grid(matrix)
    return DistanceGrid(
        backgrounds=names,
        frequency_cpd=np.asarray(spec.frequencies_cpd),
        frequency_cpp=spec.frequency_cpp,
        contrasts=np.asarray(spec.contrasts),
        values=values,
        criterion={name: float(levels_of[0]) for name, levels_of in criteria.items()},
        clipped_fraction=by_grid(clipped)[0],
        map_errors=map_errors,
        map_criterion={layer: levels_of[0] for layer, levels_of in map_criteria.items()},
        map_backbone=plan.backbone if map_errors else None,
        criterion_contrasts=levels,
        criteria=criteria,
        map_criteria=map_criteria,
    )
