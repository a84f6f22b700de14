"""After two experiments, `make exp` and the README's `dvc exp show` recipe fit a 120-column terminal.

Both run in a real pseudo-terminal of 120 columns (no ``COLUMNS`` variable), as a user's would.
"""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest
from stagekit import EXPERIMENTS, Repo

WIDTH = 120


def in_terminal(repo: Repo, *args: str, width: int = WIDTH) -> str:
    """Run ``args`` in ``repo`` with its stdout on a pty of ``width`` columns; return what it printed."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, width, 0, 0))
    env = {key: value for key, value in repo.env.items() if key not in ("COLUMNS", "LINES")}
    process = subprocess.Popen(
        list(args), cwd=repo.path, env=env, stdin=follower, stdout=follower, stderr=subprocess.PIPE
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the follower side closed: the process is done
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=600) == 0, process.stderr.read().decode() if process.stderr else ""
    text = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
    # the visible text: DVC colours its header cells
    while "\x1b[" in text:
        start = text.index("\x1b[")
        end = start + 2
        while end < len(text) and not text[end].isalpha():
            end += 1
        text = text[:start] + text[end + 1 :]
    return text


@pytest.mark.e2e
def test_make_exp_shows_the_changed_params_and_the_headline_in_120_columns(experiment_repo: Repo) -> None:
    shown = in_terminal(experiment_repo, sys.executable, "-m", "psychovis.pipeline.experiments")
    lines = shown.splitlines()
    assert max(len(line) for line in lines) <= WIDTH, shown
    for name, _ in EXPERIMENTS:
        assert name in lines[0], shown
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:] if line.startswith("  ")}
    # the two params the experiments changed, and no param they left alone
    assert {"weights.top_k", "train.perceptual_weight"} <= set(rows) and "stimuli.size" not in rows, shown
    assert "metrics/compare.json (the SR headline" in shown
    primary = next(key for key in rows if key.endswith("_vs_vgg.topk"))  # the SR headline, one value per column
    assert len(rows[primary]) == len(lines[0].split()), shown


@pytest.mark.e2e
def test_the_readme_exp_show_recipe_fits_120_columns(experiment_repo: Repo) -> None:
    shown = in_terminal(experiment_repo, "dvc", "exp", "show", "--only-changed", "--no-pager", "--drop", "Created|.*/")
    lines = shown.splitlines()
    assert max(len(line) for line in lines) <= WIDTH, shown
    for name, _ in EXPERIMENTS:
        assert name in shown, shown
