"""The tests' shared constants: the repository root, bad image inputs, the headless Chromium flags.

Both ``conftest.py`` files (``tests/`` and ``tests/stages/``) re-export these names, so ``from conftest
import ROOT`` works whichever of them pytest last imported as ``conftest``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from psychovis import weights_file

ROOT = Path(__file__).resolve().parents[1]
"""The repository root (``dvc.yaml``, ``params.yaml``, ``stages/``)."""


BAD_IMAGE_PAIRS = [
    (torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32), r"x values span .* expected \[0, 1\]"),
    (torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32) * 255, r"y values span"),
    (torch.rand(3, 32, 32), torch.rand(3, 32, 32), r"shape \(N, 3, H, W\)"),
    (torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32), r"shape \(N, 3, H, W\)"),
    (torch.rand(1, 3, 32, 32), torch.rand(2, 3, 32, 32), "shapes differ"),
    (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), torch.zeros(1, 3, 32, 32, dtype=torch.uint8), "floating-point"),
    (torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), "at least 16x16"),
    (torch.rand(0, 3, 32, 32), torch.rand(0, 3, 32, 32), "empty batch"),
    (np.zeros((1, 3, 32, 32)), torch.rand(1, 3, 32, 32), "torch.Tensor"),
    (torch.full((1, 3, 32, 32), float("nan")), torch.rand(1, 3, 32, 32), "NaN"),
]
"""Bad ``(x, y)`` inputs of an image metric and the message each must raise (LPIPS, DISTS)."""


# Headless Chromium, offline and quiet: the flags every browser check uses.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` (a file or a folder) not writable, even for root, while inside; writable again after.

    A user gets ``chmod a-w``; root, whom permissions do not stop, the immutable attribute
    (``chattr +i``, which refuses writes to everyone). Skips the test where neither is possible.
    """
    import pytest

    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(mode & ~0o222)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("running as root where the immutable attribute is not available: no way to make a file read-only")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


def weights_bytes(
    scheme: str = "topk", layers: list[str] | None = None, tensors: tuple[str, ...] = ("relu3_2",)
) -> bytes:
    """A psychovis weights file written by hand (no torch): a float32 vector of 4 per tensor, the metadata."""
    meta = {
        "format": weights_file.FORMAT,
        "backbone": "vgg16",
        "scheme": scheme,
        "layers": json.dumps(layers or list(tensors)),
    }
    header: dict[str, object] = {"__metadata__": {weights_file.METADATA_KEY: json.dumps(meta, sort_keys=True)}}
    for index, name in enumerate(tensors):
        header[name] = {"dtype": "F32", "shape": [4], "data_offsets": [16 * index, 16 * (index + 1)]}
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + b"\0" * 16 * len(tensors)
