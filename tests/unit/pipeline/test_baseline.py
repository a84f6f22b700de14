"""`make repro` ends by committing what a rerun of the last commit rewrote on this machine, and nothing else.

Real git repositories in a temporary folder.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from psychovis.pipeline.baseline import record_baseline

IDENTITY = ("-c", "user.name=t", "-c", "user.email=t@example.org")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A committed run: params, code, a metrics file, the lock file."""
    for name, text in {
        "params.yaml": "weights:\n  top_k: 64\n",
        "src/psychovis/x.py": "X = 1\n",
        "metrics/compare.json": '{"gain": 0.00123}\n',
        "dvc.lock": "schema: '2.0'\n",
        "notes.txt": "mine\n",
    }.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, *IDENTITY, "commit", "-qm", "results from another machine")
    return tmp_path


def test_a_rerun_that_differs_in_low_digits_becomes_the_baseline(repo: Path) -> None:
    (repo / "metrics/compare.json").write_text('{"gain": 0.00124}\n')
    (repo / "notes.txt").write_text("my own edit\n")  # not an output: never committed by the step
    said = record_baseline(repo)
    assert "recorded this machine's rerun" in said and "metrics/compare.json" in said and "git reset --soft" in said
    assert _git(repo, "show", "--name-only", "--format=", "HEAD").split() == ["metrics/compare.json"]
    assert _git(repo, "status", "--porcelain").split() == ["M", "notes.txt"]
    assert "nothing to record" in record_baseline(repo)  # a second call finds nothing new


def test_a_commit_whose_lock_was_made_by_other_code_is_not_called_drift(repo: Path) -> None:
    # The commit's dvc.lock recorded another hash of a stage's code: its outputs were stale, not rounded.
    lock = "schema: '2.0'\nstages:\n  weights:\n    cmd: python w.py\n    deps:\n    - path: src/psychovis/x.py\n"
    (repo / "dvc.lock").write_text(lock + "      md5: aaa\n")
    _git(repo, *IDENTITY, "commit", "-qam", "a lock from older code")
    (repo / "dvc.lock").write_text(lock + "      md5: bbb\n")
    (repo / "metrics/compare.json").write_text('{"gain": 0.5}\n')
    said = record_baseline(repo)
    assert "made by other code or params for weights" in said and "low digits" not in said
    assert "made by other code" in _git(repo, "log", "-1", "--format=%s")
    (repo / "metrics/compare.json").write_text('{"gain": 0.51}\n')  # now the same lock: drift
    assert "in low digits" in record_baseline(repo)


def test_nothing_is_recorded_when_the_params_or_code_changed(repo: Path) -> None:
    (repo / "metrics/compare.json").write_text('{"gain": 0.002}\n')
    (repo / "params.yaml").write_text("weights:\n  top_k: 32\n")
    said = record_baseline(repo)
    assert "not recorded" in said and "params.yaml" in said
    assert len(_git(repo, "log", "--format=%h").split()) == 1
    (repo / "params.yaml").write_text("weights:\n  top_k: 64\n")
    (repo / "src/psychovis/new.py").write_text("Y = 2\n")  # an untracked module is a change too
    assert "src/psychovis/new.py" in record_baseline(repo)


def test_an_exact_rerun_records_nothing(repo: Path) -> None:
    assert "reproduces the last commit's results exactly" in record_baseline(repo)
    assert len(_git(repo, "log", "--format=%h").split()) == 1


def test_outside_git_it_says_so(tmp_path: Path) -> None:
    assert "not a git repository" in record_baseline(tmp_path)
