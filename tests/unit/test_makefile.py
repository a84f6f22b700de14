"""The Makefile's user-facing targets, read with ``make -n`` (what would run, nothing run)."""

from __future__ import annotations

import re
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
    # MLflow 3.17 opens on GenAI at the plain URL: the target prints the model-training view's link.
    link = re.search(r"open (http://127\.0\.0\.1:(\d+)/#/experiments/\d+\?workflowType=machine_learning)", printed)
    assert link and link.group(2) == port, printed


def test_the_readme_links_the_mlflow_ui_in_its_model_training_view() -> None:
    """Every link into the local MLflow UI opens the runs table, not the GenAI page the plain URL shows."""
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"<(http://127\.0\.0\.1:\d+[^>]*)>", readme)
    assert links and all("workflowType=machine_learning" in link for link in links), links
