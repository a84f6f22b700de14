"""The README's recovery steps hold against real DVC (issue 23: a corrupted ``.dvc/tmp/rwlock`` after Ctrl-C)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from common import ROOT


def _dvc(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DVC_")}
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=project, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_a_corrupted_rwlock_prints_what_the_readme_quotes_and_its_fix_works(tmp_path: Path) -> None:
    readme = " ".join((ROOT / "README.md").read_text().split())
    quoted = "Unable to read RWLock-file '.dvc/tmp/rwlock'. JSON structure is corrupted"
    assert quoted in readme and "rm .dvc/tmp/rwlock" in readme
    assert _dvc(tmp_path, "init", "--no-scm", "-q").returncode == 0
    (tmp_path / "dvc.yaml").write_text("stages:\n  make:\n    cmd: echo made > out.txt\n    outs:\n      - out.txt\n")
    (tmp_path / ".dvc/tmp").mkdir(exist_ok=True)
    (tmp_path / ".dvc/tmp/rwlock").write_text('{"read": {"out.txt": [{"pid": 1, "cm')  # cut by Ctrl-C
    refused = _dvc(tmp_path, "repro")
    assert refused.returncode != 0 and quoted in refused.stderr + refused.stdout
    (tmp_path / ".dvc/tmp/rwlock").unlink()  # the README's fix, with no dvc process running
    assert _dvc(tmp_path, "repro").returncode == 0 and (tmp_path / "out.txt").read_text() == "made\n"
