"""``base.threads``: validated with a one-line error, resolved by a stated rule, applied by the runner."""

from __future__ import annotations

import subprocess
import sys

import pytest

from psychovis.errors import ParamsError
from psychovis.pipeline import params
from psychovis.pipeline.runner import apply_threads, resolve_threads

BASE = {"seed": 0, "device": "cpu", "backbone": "vgg16"}


@pytest.mark.parametrize("value", [1, 2, 64, "auto"])
def test_accepted_values(value) -> None:
    assert params.validate({"base": {**BASE, "threads": value}}, ["base"])["base"]["threads"] == value


@pytest.mark.parametrize("value", [0, -1, 2.0, True, "two", "all", None, 5000])
def test_rejected_values_name_the_key_and_the_allowed_ones(value) -> None:
    with pytest.raises(ParamsError) as caught:
        params.validate({"base": {**BASE, "threads": value}}, ["base"])
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("params.yaml: base.threads must be 'auto' or an integer in [1, 1024], got ")


def test_missing_threads_is_named() -> None:
    with pytest.raises(ParamsError, match=r"base\.threads is missing"):
        params.validate({"base": BASE}, ["base"])


def test_auto_leaves_the_busy_cores_alone() -> None:
    assert resolve_threads(3) == 3
    assert resolve_threads("auto", cpus=2, load=0.1) == 2  # idle: every usable core
    assert resolve_threads("auto", cpus=2, load=1.2) == 1  # the other core is busy
    assert resolve_threads("auto", cpus=2, load=9.0) == 1  # never below 1
    assert resolve_threads("auto", cpus=8, load=2.6) == 5


@pytest.mark.slow
def test_apply_sets_torch_threads_or_the_environment() -> None:
    code = (
        "import os, sys; from psychovis.pipeline.runner import apply_threads; apply_threads(1);"
        "assert 'torch' not in sys.modules and os.environ['OMP_NUM_THREADS'] == '1';"
        "import torch; assert torch.get_num_threads() == 1"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={"PATH": "", "PYTHONPATH": ":".join(sys.path)})
    import torch

    before = torch.get_num_threads()
    try:
        assert apply_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
