"""The vocabularies of psychovis: every name a parameter or an API argument may take, in one place.

Torch-free on purpose: :mod:`psychovis.pipeline.params` validates ``params.yaml`` against these
tuples without importing torch, and the library modules that implement each name (backbones, CSF
models, losses, distances) import the same tuples, so the two can never drift apart. A test checks
that every implementation table has exactly these keys. The judges, distances and backbones come from
one record each in :mod:`psychovis.registry`.
"""

from __future__ import annotations

from psychovis.registry import BACKBONE_RECORDS, DISTANCE_RECORDS, JUDGE_RECORDS

BACKBONES: tuple[str, ...] = tuple(BACKBONE_RECORDS)
_VGG16_MAPS = {
    "relu1_1": 64, "relu1_2": 64, "relu2_1": 128, "relu2_2": 128,
    "relu3_1": 256, "relu3_2": 256, "relu3_3": 256,
    "relu4_1": 512, "relu4_2": 512, "relu4_3": 512, "relu5_1": 512, "relu5_2": 512, "relu5_3": 512,
}  # fmt: skip
LAYER_MAPS: dict[str, dict[str, int]] = {
    "vgg16": _VGG16_MAPS,
    "vgg16_random": _VGG16_MAPS,
    "alexnet": {"relu1": 64, "relu2": 192, "relu3": 384, "relu4": 256, "relu5": 256},
}
"""Backbone -> its ReLU layers -> number of feature maps (torch-free: checks run before the imports)."""
"""Networks with offline weights (``vgg16_random``: the same architecture, untrained, as a control)."""

CSF_MODELS: tuple[str, ...] = ("mannos_sakrison_code", "mannos_sakrison", "barten_2003", "standard_spatial_observer")
"""Human contrast sensitivity functions: as the authors' code writes Mannos-Sakrison, the textbook form, Barten,
and the Standard Spatial Observer (Watson & Ahumada 2005)."""

FREQUENCY_MAPPINGS: tuple[str, ...] = ("paper", "physical")
"""How cycles/degree become cycles/pixel: the authors' code, or the viewing geometry."""

GRATING_KINDS: tuple[str, ...] = ("concentric", "linear")

WEIGHT_SCHEMES: tuple[str, ...] = ("vfss", "topk", "vfss_normalised", "lpips_weighted", "human_fitted", "uniform")
"""How per-map weights were derived (see :data:`WEIGHTED_LOSSES`), or all equal."""

WEIGHTED_LOSSES: tuple[str, ...] = ("vfss", "topk", "vfss_normalised", "lpips_weighted", "human_fitted")
"""Perceptual losses with per-map weights, each read from ``data/weights/<loss>.safetensors``: the
paper's VFSS weights, its top-k maps, VFSS divided by each map's mean response (shape, not gain), the
LPIPS linear head (weights learned from human 2AFC judgements), all exported by the `weights` stage,
and ``human_fitted``: weights fitted to the ModelFest detection thresholds (exported by the
`modelfest` stage, at ``modelfest.layers``)."""

GEOMETRY_LOSS = "geometry_aware"
"""The plain VGG loss read at the network's own reference px/deg: the images are resampled from the
display's ``train.px_per_degree`` to the reference the `modelfest` stage fitted to people
(``data/modelfest/reference_geometry.json``) before the network sees them."""

LOSSES: tuple[str, ...] = ("pixel", "vgg", *WEIGHTED_LOSSES, GEOMETRY_LOSS)
"""Training losses of the SR models: L1 only, L1 plus the plain VGG loss, L1 plus a weighted one, or L1
plus the plain VGG loss at the reference geometry (:data:`GEOMETRY_LOSS`)."""

UPSAMPLERS: tuple[str, ...] = ("pixelshuffle", "icnr", "resize_conv")
"""How the SR network upsamples: sub-pixel convolution (default or ICNR init), or resize + convolution."""

SELECTIONS: tuple[str, ...] = ("topk", "bottomk", "randomk")
"""Ways of choosing k feature maps by VFSS: highest, lowest, or at random."""
SELECTION_COLOURS: dict[str, str] = {"topk": "tab:green", "bottomk": "tab:red", "randomk": "tab:grey"}
"""The matplotlib colour of each selection, the same in every experiment's figures."""

MAP_DISTANCES: tuple[str, ...] = ("vgg", "vfss", *SELECTIONS)
"""The distances on the VGG maps' per-map errors (the ModelFest stage fits per-map weights to people on them)."""

DISTANCES: tuple[str, ...] = tuple(DISTANCE_RECORDS)
"""Image distances the psychophysical and human-judgement experiments compare (LPIPS-Alex and DISTS are
the same implementations as the SR evaluation's judges, so they share nothing with the VGG-16 maps)."""

MODELFEST_DISTANCES: tuple[str, ...] = (*DISTANCES, "gain_normalised", "alexnet", "vgg16_random")
"""Deep observers of the ModelFest stage: the catalogue, the gain-normalised reading of the VGG maps,
and the plain feature distance of AlexNet (relu2) and of the untrained VGG-16 (controls)."""

MODELFEST_FAMILIES: tuple[str, ...] = (
    "gabor_csf", "size", "shape", "compound", "blob", "line", "string", "image", "oblique", "plaid", "other",
)  # fmt: skip
"""ModelFest stimulus families (per-family scores, held-out folds)."""

SUBSET_CONTROLS: tuple[str, ...] = ("raw", "gain_normalised")
"""How the psychophysics map-subset test weighs maps: as the loss does, or each map's error divided by
its own error at the criterion (every map counts equally, whatever its response gain)."""

VFSS_NORMALISATIONS: tuple[str, ...] = ("none", "mean_response")
"""``vfss.normalise``: the paper's VFSS, or VFSS divided by each map's mean response (shape, not gain)."""

INPUT_SCALINGS: tuple[str, ...] = ("imagenet", "matlab_literal")
"""``stimuli.input_scaling``: how [0, 1] stimuli enter the network. ``imagenet``: torchvision's mean/std
(what the network was trained on); ``matlab_literal``: as if [0, 1] images went unscaled into MATLAB's
``vgg16``, whose input layer subtracts a 0-255 mean (the stimulus arrives 255 times too dark)."""

INPUT_GAIN: dict[str, float] = {"imagenet": 1.0, "matlab_literal": 1.0 / 255.0}
"""Pixel gain applied to [0, 1] stimuli before the ImageNet mean/std, per ``stimuli.input_scaling``.

``imagenet`` is what torchvision's VGG-16 was trained on. ``matlab_literal`` reproduces the other
reading of the authors' code: MATLAB's Caffe-converted ``vgg16`` expects 0-255 images and its
input layer subtracts a 0-255 mean, ``y = 255 x - 255 m``; a [0, 1] image fed as is gives
``y = x - 255 m = 255 (x / 255 - m)``, the same input as a [0, 1] image scaled by 1/255 under
the network's own normalisation (a stimulus 255 times darker and lower in contrast)."""

BACKGROUNDS: tuple[str, ...] = ("grey", "natural", "texture")
"""Backgrounds of the psychophysical detection experiment."""

WINDOWS: tuple[str, ...] = ("tukey", "none")
"""Spatial windows of the psychophysical gratings."""

ORIENTATION_POOLINGS: tuple[str, ...] = ("preferred", "max", "mean")
"""How the atlas turns a (frequency x orientation) response grid into one frequency curve."""

DATASETS: tuple[str, ...] = ("tid2013", "kadid10k", "bapps")
"""Human-judgement data sets with a reader."""

BAPPS_SUBSETS: tuple[str, ...] = ("traditional", "cnn", "superres", "deblur", "color", "frameinterp", "mix")
"""BAPPS 2AFC subsets: ``val`` has the first six, ``train`` has traditional, cnn and mix."""

BAPPS_SPLITS: tuple[str, ...] = ("val", "train")

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")

JUDGES: tuple[str, ...] = tuple(JUDGE_RECORDS)
"""Image-quality judges of the `evaluate` stage, in report order (:data:`psychovis.registry.JUDGE_RECORDS`
describes each)."""
