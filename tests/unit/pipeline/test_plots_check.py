"""``python -m psychovis.pipeline.plots_check``: names the plots `dvc plots diff` leaves out, on a real git + DVC repo.

The repo has two commits: A (``fig.png``, a cached image, and ``curve.csv``) and B (both changed,
plus ``extra.png``, which A does not declare). A's ``fig.png`` is then removed from the DVC cache,
as on a machine that never pulled it: `dvc plots diff A B` exits 0 and draws only B's images.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from psychovis.pipeline import plots_check

MAKE = """import sys
from pathlib import Path
for name in sys.argv[2:]:
    Path(name).write_bytes(b"\\x89PNG\\r\\n\\x1a\\n" + sys.argv[1].encode())
Path("curve.csv").write_text(f"step,loss\\n1,2\\n2,{sys.argv[1]}\\n")
"""


def _stage(images: list[str], version: str) -> dict:
    return {
        "stages": {
            "make": {
                "cmd": f"python make.py {version} {' '.join(images)}",
                "deps": ["make.py"],
                "plots": [*images, {"curve.csv": {"cache": False, "x": "step", "y": "loss"}}],
            }
        }
    }


def _run(repo: Path, *command: str) -> str:
    done = subprocess.run(command, cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0, f"{command}: {done.stderr[-2000:]}"
    return done.stdout.strip()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path_factory.mktemp("plots_repo")
    dvc = [sys.executable, "-m", "dvc"]
    _run(repo, "git", "init", "-q")
    _run(repo, "git", "config", "user.email", "test@example.com")
    _run(repo, "git", "config", "user.name", "test")
    _run(repo, *dvc, "init", "-q")
    _run(repo, *dvc, "config", "core.analytics", "false")
    (repo / "make.py").write_text(MAKE)
    for version, images in (("1", ["fig.png"]), ("2", ["fig.png", "extra.png"])):
        (repo / "dvc.yaml").write_text(yaml.safe_dump(_stage(images, version)))
        _run(repo, *dvc, "repro", "-q")
        _run(repo, "git", "add", "-A")
        _run(repo, "git", "commit", "-qm", f"version {version}")
    lock = yaml.safe_load(_run(repo, "git", "show", "HEAD~1:dvc.lock"))
    digest = next(out["md5"] for out in lock["stages"]["make"]["outs"] if out["path"] == "fig.png")
    (repo / ".dvc" / "cache" / "files" / "md5" / digest[:2] / digest[2:]).unlink()  # A's image, never pulled
    return repo


@pytest.mark.slow
def test_the_plots_left_out_are_named_per_revision_with_the_reason(repo: Path) -> None:
    missing = plots_check.missing_plots(["HEAD~1", "HEAD"], cwd=repo)
    assert missing == {
        "HEAD~1": [("extra.png", plots_check.NOT_DECLARED), ("fig.png", plots_check.NOT_IN_CACHE)],
    }
    text = plots_check.report(missing, ["HEAD~1", "HEAD"])
    assert "leaves out 2 plot(s)" in text and "fig.png: declared, but" in text and "dvc pull" in text


@pytest.mark.slow
def test_a_complete_comparison_says_so(repo: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(repo)
    assert plots_check.main(["HEAD"]) == 0  # the workspace against HEAD: every plot in both
    assert "every plot is drawn for every revision" in capsys.readouterr().out


@pytest.mark.slow
def test_the_command_exits_1_and_prints_the_missing_images(repo: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(repo)
    assert plots_check.main(["HEAD~1", "HEAD"]) == 1
    printed = capsys.readouterr().out
    assert "  HEAD~1:\n" in printed and "    fig.png: declared, but" in printed and "extra.png" in printed


@pytest.mark.slow
def test_an_unknown_revision_is_one_line(repo: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(repo)
    assert plots_check.main(["no-such-rev", "HEAD"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: dvc plots diff no-such-rev HEAD failed") and error.count("\n") == 1
