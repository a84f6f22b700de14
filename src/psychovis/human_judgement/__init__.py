"""Do the distances agree with people? Scores on human-judgement data sets (TID2013, KADID-10k, BAPPS).

The psychophysical test (:mod:`psychovis.psychophysics`) asks whether a distance sees gratings as
a human observer does; this module asks the question on natural images that people have rated.
Every distance of :func:`psychovis.distances.catalogue.build_distances` (pixel MSE, plain VGG,
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
:class:`~psychovis.distances.loss.PsychovisualLoss` distance is their product with its own (mean-1)
weights, exactly what calling the module computes. The same per-map errors give the map-subset
curve (:func:`~psychovis.human_judgement.scoring.subset_scores`): the score of the top-k,
bottom-k and random-k VFSS maps as a function of k, with the selection masks of :func:`psychovis.vfss.selection_mask`.

Modules: ``readers`` (the data sets' public layouts), ``pairs`` (images to a common size, every
distance from one shared pass), ``stats`` (correlations, 2AFC, bootstrap), ``scoring`` (the
stage's engine and the map-subset curve) and ``figures``.

References:
    N. Ponomarenko et al., "Image database TID2013: Peculiarities, results and perspectives",
    Signal Processing: Image Communication 30, 2015.
    H. Lin, V. Hosu, D. Saupe, "KADID-10k: A Large-scale Artificially Distorted IQA Database",
    QoMEX 2019.
    R. Zhang, P. Isola, A. A. Efros, E. Shechtman, O. Wang, "The Unreasonable Effectiveness of Deep
    Features as a Perceptual Metric", CVPR 2018 (BAPPS, 2AFC score, LPIPS).
    T. Tariq, M. Kim et al., arXiv:1812.00412 (VFSS, top-k maps).
"""

from psychovis.human_judgement.pairs import PairDistances, pair_distances, to_common_size
from psychovis.human_judgement.readers import READERS, read_bapps_2afc, read_kadid10k, read_tid2013, subsample
from psychovis.human_judgement.scoring import (
    SUBSET_COLUMNS,
    empty_scores,
    empty_subsets,
    evaluate,
    subset_distances,
    subset_scores,
    subset_summary,
    summary_metrics,
)
from psychovis.human_judgement.stats import (
    SCORE_COLUMNS,
    bootstrap_correlations,
    bootstrap_indices,
    bootstrap_means,
    human_agreement,
    percentile_ci,
    rank_correlations,
    score_2afc,
    score_mos,
    two_afc_agreement,
)

__all__ = [
    "READERS",
    "SCORE_COLUMNS",
    "SUBSET_COLUMNS",
    "PairDistances",
    "bootstrap_correlations",
    "bootstrap_indices",
    "bootstrap_means",
    "empty_scores",
    "empty_subsets",
    "evaluate",
    "human_agreement",
    "pair_distances",
    "percentile_ci",
    "rank_correlations",
    "read_bapps_2afc",
    "read_kadid10k",
    "read_tid2013",
    "score_2afc",
    "score_mos",
    "subsample",
    "subset_distances",
    "subset_scores",
    "subset_summary",
    "summary_metrics",
    "to_common_size",
    "two_afc_agreement",
]
