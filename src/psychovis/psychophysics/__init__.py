"""Does VFSS mean anything? An offline psychophysical test of image distances.

A human observer's contrast sensitivity function (CSF) is measured by finding, at each spatial
frequency, the smallest contrast at which a grating becomes detectable. The same experiment can
be run on any image distance ``d(reference, distorted)``: add a grating of frequency ``f`` and
contrast ``c`` to a background, and find the contrast at which ``d(background, stimulus)``
reaches a fixed criterion. ``1 / threshold`` over frequency is the distance's own "CSF", to be
compared with the human one. A distance built on feature maps that are weighted by VFSS (how
much a map's response changes where human sensitivity is high) should, if VFSS means anything,
have a CSF closer to the human one than the plain VGG distance, and the top-VFSS maps should be
closer than the bottom-VFSS or randomly chosen maps.

The protocol, with its choices (each a parameter):

- Stimulus: a vertical linear sinusoidal grating of ``f`` cycles/degree (converted to cycles/pixel
  by :func:`psychovis.gratings.cycles_per_pixel`, the paper's mapping by default), Michelson
  contrast ``c`` about a mean of 0.5, multiplied by a spatial window ``w`` and added to a
  background: ``clip(background + 0.5 c w sin(2 pi f x + phase), 0, 1)``, grey, copied into R, G
  and B. The window (a separable Tukey window by default, flat over the central half) keeps the
  grating away from the image border, where the network's zero padding would respond to the
  grating's phase at the edge rather than to its frequency.
- Phases: the distance is averaged over ``phases`` phases ``pi/2 + k pi / phases`` (a quadrature
  pair by default), as psychophysics randomises phase. With two or more phases the pixel MSE of a
  grating on grey is exactly ``c^2 mean(w^2) / 8`` at every frequency, so the pixel-MSE "CSF" is
  flat (a check of the apparatus).
- Backgrounds: uniform grey 0.5; a grey-level natural photograph (a bundled image, centre square
  crop, area-resized); band-limited white noise (contrast masking). Textured backgrounds are
  confined to ``[0.5 - a, 0.5 + a]`` (``a`` = ``amplitude``, 0.25 by default), so no pixel clips
  below contrast ``1 - 2a`` (0.5): thresholds are far lower, and each threshold reports the
  fraction of clipped pixels so the rare exception is visible.
- Criterion: one per distance, fixed across backgrounds: the distance produced on the grey
  background by the reference grating (``reference_contrast`` = 0.01 at ``reference_frequency_cpd``
  = 8 cpd, about the peak of the Mannos-Sakrison CSF, where human observers detect roughly 0.5-1 %
  contrast). So every distance is calibrated to a human-like threshold at the CSF peak, its
  sensitivity is ``1 / reference_contrast`` at the reference frequency on grey (distances become
  comparable), and a background that raises the threshold (masking) shows as a lower
  sensitivity. The networks are not linear, so the shape of their "CSF" depends on this level:
  a criterion set by a suprathreshold contrast (0.1) gives VGG curves that rise to the highest
  frequency, 0.01 gives band-pass curves; report the level with the result.
- Threshold: the distance is evaluated on a log-spaced grid of contrasts, all in one batch, and
  the first crossing of the criterion is interpolated linearly in log-distance vs log-contrast
  (exact for a power law ``d = g c^p``; with the default 12 contrasts from 0.001 to 1, VGG
  thresholds differ from those of a 24-contrast grid by 0.3 % (median), 7 % at most).
  Thresholds outside the grid are NaN; a curve that is not non-decreasing in contrast is
  flagged (``monotone`` False) and its first crossing is used.
- Robustness (:mod:`~psychovis.psychophysics.robustness`): the top-/bottom-k result is placed in a
  null of hundreds of random k-map subsets and repeated over criterion levels, a Nyquist-safe
  frequency range, every human CSF and a gain-normalised control. The lowest frequency must put
  ``min_cycles`` (2) cycles across the stimulus.
- Geometry (:func:`~psychovis.psychophysics.thresholds.geometry_sweep`): the gratings are rendered
  in pixels at the stimuli's mapping (the paper's: an effective 61.8 px/deg); every curve is also
  re-read at other px/deg (``sweep_px_per_degree``) and scored again, a sensitivity analysis of
  every conclusion about "human-like" curves.
- Scores against the human CSF (:func:`psychovis.csf.contrast_sensitivity`): the Pearson
  correlation of log sensitivity with log human sensitivity over frequency, the peak frequency,
  and the log-log slope above the peak (the high-frequency fall-off).

All VGG-based distances (plain, VFSS-weighted, top-k/bottom-k/random-k selections, and LPIPS) are
computed from one shared forward pass (:mod:`psychovis.distances.engine`): per-map squared
feature differences are kept, and every weighting is a matrix product of them. That is what makes the
random-subset null (:func:`~psychovis.psychophysics.robustness.robustness_table`) nearly free.

Modules, in the order of the experiment: ``stimuli`` (gratings and backgrounds), ``grid`` (every
distance on every stimulus), ``thresholds`` (thresholds, CSF scores, masking), ``robustness`` (the
random-subset null, the criterion sweep, Nyquist-safe scores, every human CSF, the gain-normalised
control), ``summary`` (the metrics file) and ``figures``.

References:
    T. Tariq, M. Kim et al., "A Psychovisual Analysis on Deep CNN Features for Perceptual Metrics
    and A Novel Psychovisual Loss", arXiv:1812.00412.
    J. L. Mannos, D. J. Sakrison, "The effects of a visual fidelity criterion on the encoding of
    images", IEEE Trans. Information Theory 20(4), 1974.
    D. G. Pelli, B. Farell, "Why use noise?", JOSA A 16(3), 1999 (white-noise masking).
    F. A. A. Kingdom, N. Prins, "Psychophysics: A Practical Introduction", 2nd ed., Academic
    Press, 2016 (thresholds, criteria and phase randomisation).
"""

from psychovis.psychophysics.grid import DistanceGrid, distance_grid
from psychovis.psychophysics.robustness import (
    inside_band,
    log_correlations,
    null_summary,
    percentile_in,
    robustness_table,
    selection_thresholds,
)
from psychovis.psychophysics.stimuli import StimulusSpec, example_stimulus, make_backgrounds, render_stimuli
from psychovis.psychophysics.summary import geometry_metrics, headline_metrics, summary_metrics
from psychovis.psychophysics.thresholds import (
    find_thresholds,
    geometry_sweep,
    masking_table,
    px_per_degree_as_run,
    score_thresholds,
    sensitivity_scores,
    thresholds_frame,
)

__all__ = [
    "DistanceGrid",
    "StimulusSpec",
    "distance_grid",
    "example_stimulus",
    "find_thresholds",
    "geometry_metrics",
    "geometry_sweep",
    "headline_metrics",
    "inside_band",
    "log_correlations",
    "make_backgrounds",
    "masking_table",
    "null_summary",
    "percentile_in",
    "px_per_degree_as_run",
    "render_stimuli",
    "robustness_table",
    "score_thresholds",
    "selection_thresholds",
    "sensitivity_scores",
    "summary_metrics",
    "thresholds_frame",
]
