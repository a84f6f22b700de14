"""A weights file's header read without torch: format, scheme, layers (issue 23, cheap checks first)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from common import weights_bytes

from psychovis.errors import InvalidWeightsError, WeightsError
from psychovis.weights_file import check_file, read_header


def test_the_header_is_read_and_checked() -> None:
    header = read_header(weights_bytes(), "w.safetensors", scheme="topk")
    assert (header.backbone, header.scheme, header.layers) == ("vgg16", "topk", ["relu3_2"])


def test_a_file_of_another_scheme_is_refused() -> None:
    with pytest.raises(InvalidWeightsError, match=r"w\.safetensors holds 'vfss' weights, not the 'topk' weights"):
        read_header(weights_bytes(scheme="vfss"), "w.safetensors", scheme="topk")


def test_no_layers_is_one_line_not_a_key_error() -> None:
    with pytest.raises(InvalidWeightsError, match=r"holds no layers \(layers: \[\]\)"):
        read_header(weights_bytes(layers=[], tensors=()), "w.safetensors")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x01\x02", r"not a readable safetensors file"),
        (struct.pack("<Q", 10**9) + b"{}", r"not a readable safetensors file \(a header of 1000000000 bytes"),
        (struct.pack("<Q", 2) + b"{}", r"not a psychovis feature-weights file"),
        (weights_bytes(layers=["relu3_2", "relu4_1"]), r"damaged .*KeyError\('relu4_1'\)"),
    ],
)
def test_a_broken_header_is_named(data: bytes, message: str) -> None:
    with pytest.raises(WeightsError, match=message):
        read_header(data, "w.safetensors")


def test_a_folder_is_not_a_weights_file(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"is a folder, not a regular file|is a directory"):
        check_file(tmp_path)


@pytest.mark.parametrize(("scheme", "stage"), [("vfss", "weights"), ("topk", "weights"), ("human_fitted", "modelfest")])
def test_a_missing_file_names_the_stage_that_exports_it(tmp_path: Path, scheme: str, stage: str) -> None:
    with pytest.raises(WeightsError, match=rf"is missing; run `dvc repro {stage}`"):
        check_file(tmp_path / f"{scheme}.safetensors")
    with pytest.raises(WeightsError, match=rf"re-export it with `dvc repro {stage}`"):
        read_header(b"\x01\x02", tmp_path / f"{scheme}.safetensors")
