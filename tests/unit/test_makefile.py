"""The Makefile's user-facing targets, read with ``make -n`` (what would run, nothing run)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import ROOT


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize(("args", "port"), [([], "5000"), (["PORT=5123"], "5123")])
def test_make_mlflow_serves_on_the_port_asked_for(args: list[str], port: str) -> None:
    # -o: take the set-up as done, so only the UI command is printed
    stamp = next(ROOT.glob(".venv/.installed-*"), None)
    old = ["-o", str(stamp.relative_to(ROOT))] if stamp else []
    printed = subprocess.run(
        ["make", "-n", *old, "mlflow", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    command = [line for line in printed.splitlines() if line.startswith("mlflow ui")]
    assert command and f"--port {port} " in command[-1] + " ", printed
