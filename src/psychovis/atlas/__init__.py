"""Tuning atlas: fitted spatial-frequency and orientation tuning of every feature map.

Beyond the paper (which probes one layer with concentric rings), the atlas probes every ReLU layer
with oriented linear gratings over frequency x orientation x phase and, per map:

- averages the spatial-mean responses over phase (so phase does not masquerade as tuning);
- finds the preferred (frequency, orientation) cell of the phase-averaged grid, as Brain-Score's
  grating benchmarks do (Marques et al. 2021; ``ringach2002_properties``, ``devalois1982b_properties``);
- takes the frequency tuning curve at the preferred orientation (``orientation_pooling="preferred"``,
  Brain-Score's choice), or the max or mean over orientations;
- fits a log-Gaussian in log2 frequency,
  ``baseline + amplitude * exp(-(log2 f - log2 f0)^2 / (2 s^2))``, amplitude >= 0, giving the
  preferred frequency ``f0`` (cycles/pixel and cycles/degree), the octave bandwidth
  ``FWHM = 2 sqrt(2 ln 2) s`` and R^2. The fit is vectorised over maps: a grid search over
  ``(log2 f0, log s)`` with amplitude and baseline in closed form (linear least squares) for every
  grid point and every map at once, then three local grid refinements per map (also batched);
- computes orientation selectivity as Brain-Score's ``calc_circular_variance``:
  ``CV = 1 - |sum_k r_k exp(2 i theta_k)| / sum_k |r_k|`` over the orientations at the preferred
  frequency. **0 = perfectly selective** (responds to one orientation only), **1 = unselective**
  (equal response to every orientation). The preferred orientation is the vector-sum angle
  ``arg(sum_k r_k exp(2 i theta_k)) / 2`` in [0, 180);
- flags maps with no reliable response (peak below ``min_response``, or a response range over the
  grid below ``min_relative_range`` times its mean) as ``reliable = False``: they are not fitted
  (NaN parameters) and their tuning class is ``unresponsive``.

Orientation convention (see :func:`psychovis.gratings.render`): ``orientation_deg`` is the
direction of the grating's wave vector, measured from +x (columns, left to right) towards +y
(rows, top to bottom), i.e. clockwise on screen; 0 deg = vertical bars, 90 deg = horizontal bars.

Frequencies are native in cycles/pixel; cycles/degree need a viewing geometry. ``paper`` uses the
authors' code constant (0.016172 cyc/px per cpd at d = 103.35 in, 89.7 px/in, i.e. the same as a
physical display of 61.8 px/deg); ``physical`` uses the pixels per degree of that geometry (about
161.7). Every mapping is therefore one number, cycles/degree per cycle/pixel (:class:`Variant`).

Modules: ``stimuli`` (oriented gratings), ``responses`` (probing any network into a response
grid), ``fit`` (orientation and log-Gaussian frequency tuning per map), ``sensitivity`` (VFSS
under other CSFs and geometries; agreement with the LPIPS heads) and ``figures``.

References:
    Tariq, Kim et al., arXiv:1812.00412 (VFSS).
    Marques, Schrimpf, DiCarlo, "Multi-scale hierarchical neural network models that bridge from
    single neurons in the primate primary visual cortex to object recognition behavior", 2021
    (Brain-Score V1 property benchmarks; ``brainscore_vision/benchmark_helpers/properties_common.py``).
    Ringach, Shapley, Hawken, J. Neurosci. 22(13), 2002 (circular variance).
"""

from psychovis.atlas.fit import (
    LogGaussianFit,
    circular_variance,
    fit_atlas,
    fit_log_gaussian,
    frequency_curves,
    layer_summary,
    log_gaussian,
    preferred_orientation,
    reliable_maps,
)
from psychovis.atlas.responses import (
    ResponseGrid,
    grid_from_frame,
    module_responses,
    response_grid,
)
from psychovis.atlas.sensitivity import (
    Variant,
    csf_curve,
    lpips_agreement,
    sensitivity_table,
    sensitivity_variants,
)
from psychovis.atlas.stimuli import (
    atlas_stimuli,
    cpd_per_cpp,
    even_orientations,
    even_phases,
    example_stimuli,
    layers_for,
    log_frequencies,
    stimuli_from_params,
)

__all__ = [
    "LogGaussianFit",
    "ResponseGrid",
    "Variant",
    "atlas_stimuli",
    "circular_variance",
    "cpd_per_cpp",
    "csf_curve",
    "even_orientations",
    "even_phases",
    "example_stimuli",
    "fit_atlas",
    "fit_log_gaussian",
    "frequency_curves",
    "grid_from_frame",
    "layer_summary",
    "layers_for",
    "log_frequencies",
    "log_gaussian",
    "lpips_agreement",
    "module_responses",
    "preferred_orientation",
    "reliable_maps",
    "response_grid",
    "sensitivity_table",
    "sensitivity_variants",
    "stimuli_from_params",
]
