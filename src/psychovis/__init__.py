"""psychovis: ask deep networks the questions a vision scientist asks a neuron.

Reproduces Tariq, Kim et al., "A Psychovisual Analysis on Deep CNN Features for Perceptual
Metrics and A Novel Psychovisual Loss" (arXiv:1812.00412) and turns its Visual Frequency
Sensitivity Score (VFSS) into a drop-in perceptual loss::

    from psychovis import PsychovisualLoss
    criterion = PsychovisualLoss("data/weights/vfss.safetensors")
"""

from psychovis.feature_weights import FeatureWeights
from psychovis.loss import PsychovisualLoss, psychovisual_loss

__all__ = ["FeatureWeights", "PsychovisualLoss", "psychovisual_loss"]
__version__ = "0.1.0"
