"""Make this machine's rerun of the last commit the baseline experiments are compared with.

The committed results were computed on another CPU. The same code and params give other low digits
here (BLAS kernels differ), so a first ``dvc repro`` rewrites git-tracked outputs, and ``dvc metrics
diff`` or ``make exp`` would mix that drift into what an experiment changed. When the params, the
pipeline and the code are exactly the last commit's, :func:`record_baseline` commits the outputs that
``dvc repro`` rewrote, as "this machine's rerun", so later differences are the experiment's own.
``make repro`` ends with it (``make repro BASELINE=0`` skips it; ``git reset --soft HEAD~1`` undoes it).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

INPUTS = ("params.yaml", "dvc.yaml", "src", "stages")
"""What decides the results: while these are the last commit's, a changed output is this CPU's drift."""

OUTPUTS = ("dvc.lock", "metrics", "data", "docs", "README.md")
"""Where the pipeline's git-tracked outputs live (``cache: false`` outputs, the report, the lock file)."""

FALLBACK_IDENTITY = ("-c", "user.name=psychovis baseline", "-c", "user.email=psychovis@localhost")
"""The committer when git has none configured (a fresh container), so the step never stops there."""


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args[:2])} failed: {(done.stderr.strip() or done.stdout.strip())[:200]}")
    return done.stdout


def _listed(paths: Sequence[str], most: int = 4) -> str:
    shown = ", ".join(paths[:most])
    return shown + (f" and {len(paths) - most} more" if len(paths) > most else "")


def record_baseline(repo: Path) -> str:
    """Commit the outputs a rerun of the last commit rewrote on this machine; say what was done.

    Args:
        repo: the repository's root (a git repository).

    Returns:
        One line: what was recorded (and how to undo it), or why nothing was.

    Raises:
        RuntimeError: git failed (the message is git's).
    """
    head_commit = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=repo, capture_output=True)
    if head_commit.returncode != 0:
        return "baseline: not a git repository with a commit; nothing to record"
    changed_inputs = [line[3:] for line in _git(repo, "status", "--porcelain", "--", *INPUTS).splitlines()]
    if changed_inputs:
        return (
            f"baseline: not recorded, {_listed(changed_inputs)} differ from the last commit (your change): "
            "commit them yourself when these results are your new baseline"
        )
    rewritten = _git(repo, "diff", "--name-only", "HEAD", "--", *OUTPUTS).split()
    if not rewritten:
        return "baseline: this machine reproduces the last commit's results exactly; nothing to record"
    identity: tuple[str, ...] = ()
    if not subprocess.run(["git", "config", "user.email"], cwd=repo, capture_output=True, text=True).stdout.strip():
        identity = FALLBACK_IDENTITY
    head = _git(repo, "rev-parse", "--short", "HEAD").strip()
    stale = stale_stages(repo)
    # Drift only when the commit's dvc.lock was made by this code and params; else its outputs were stale.
    why = f"its dvc.lock was made by other code or params for {_listed(stale)}" if stale else "in low digits"
    message = (
        f"Baseline: this machine's rerun of {head} (same params and code; {len(rewritten)} outputs differ, {why})"
        "\n\nRecorded by `make repro` (psychovis.pipeline.baseline) so that `dvc metrics diff` and "
        "`make exp` show only what an experiment changes."
    )
    _git(repo, *identity, "commit", "-q", "-m", message, "--", *rewritten)
    commit = _git(repo, "rev-parse", "--short", "HEAD").strip()
    return (
        f"baseline: recorded this machine's rerun as commit {commit} ({len(rewritten)} outputs differed from {head}, "
        f"{why}: {_listed(rewritten)}); experiments now compare against it. Undo: git reset --soft HEAD~1"
    )


def stale_stages(repo: Path) -> list[str]:
    """The stages whose code or params deps in the committed ``dvc.lock`` differ from the rerun's (or are new).

    None means the commit's outputs were made by the same code and params, so what differs is this CPU's
    rounding; otherwise the commit carried outputs of other code (a lock not regenerated before committing).
    """
    import yaml

    def code_and_params(stage: dict) -> tuple[dict, object]:
        deps = {dep["path"]: dep.get("md5") for dep in stage.get("deps", []) if not dep["path"].startswith("data/")}
        return deps, stage.get("params")

    shown = subprocess.run(["git", "show", "HEAD:dvc.lock"], cwd=repo, capture_output=True, text=True, check=False)
    lock = repo / "dvc.lock"
    if shown.returncode != 0 or not lock.is_file():
        return []
    before = (yaml.safe_load(shown.stdout) or {}).get("stages", {})
    after = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    return [
        name
        for name, stage in after.items()
        if name not in before or code_and_params(before[name]) != code_and_params(stage)
    ]


def main() -> int:
    """Record the baseline of the repository in the current folder; exit 1 when git fails."""
    try:
        print(record_baseline(Path.cwd()))
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
