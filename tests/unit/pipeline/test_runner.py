"""Tests of the stage runner: device resolution."""

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
