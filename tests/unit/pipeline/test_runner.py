"""Tests of the stage runner: device resolution."""

import numpy as np
import pytest
import torch

from psychovis.errors import ParamsError
from psychovis.pipeline.runner import resolve_device


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ParamsError, match=r"base\.device.*auto.*cpu.*cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ParamsError, match="no CUDA device"):
            resolve_device("cuda")


def test_plateau_change_is_zero_on_a_flat_curve_and_positive_while_falling() -> None:
    from psychovis.pipeline.training import plateau_change

    assert plateau_change(np.ones(100)) == 0.0
    assert plateau_change(np.linspace(2.0, 1.0, 100)) > 0.0
    assert np.isnan(plateau_change(np.ones(1)))  # too short to have two windows
