"""One tiny git + DVC copy of the project, built once per session, for the DVC user-experience tests.

Not a test module (pytest does not collect it); imported by test_params_deps, test_exp_show and
test_plots_render. :func:`baseline` runs ``dvc repro`` on a tiny config with
``PSYCHOVIS_PARAMS_TRACE`` set (every stage writes the params keys it read) and commits the result
as the baseline; :func:`experiments` then runs the ``dvc exp run -S ...`` cases once and keeps what
each one reran.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from conftest import ROOT

# Small enough for seconds per stage, but every stage family runs: the weighted losses include topk,
# so `weights.top_k` has dependents to rerun (and others that must not rerun).
TINY: dict[str, dict[str, Any]] = {
    "base": {"device": "cpu"},
    "stimuli": {"size": 32, "frequency_step_cpd": 6.0},
    "features": {"layers": ["relu1_1", "relu3_2"], "batch_size": 8},
    "weights": {"layers": ["relu3_2"], "top_k": 8},
    "pretrain": {"iterations": 2},
    "train": {
        "baseline_losses": ["vgg"],
        "weighted_losses": ["vfss", "topk"],
        "seeds": [0],
        "layers": ["relu3_2"],
        "iterations": 2,
        "batch_size": 2,
        "crop_size": 32,
        "channels": 8,
        "residual_blocks": 1,
        "log_every": 1,
        "test_images": 3,
    },
    "evaluate": {"judges": ["psnr_y", "gmsd"], "max_size": 64, "figure_crop": 32, "frequency_bands": 4},
    "compare": {"resamples": 200},
    "psychophysics": {
        "distances": ["pixel_mse", "vgg", "vfss", "topk", "bottomk", "randomk"],
        "size": 64,
        "frequencies": 4,  # at least 3 must be Nyquist-safe (psychophysics.nyquist_safe_cpp)
        "contrasts": 6,
        "phases": 1,
        "backgrounds": ["grey", "texture"],
        "top_k": 8,
        "subset_ks": [4, 8],
        "null_draws": 10,
        "criterion_contrasts": [0.01, 0.1],
        "reference_csfs": ["mannos_sakrison_code", "barten_2003"],
    },
    "atlas": {
        "backbones": ["vgg16"],
        "size": 32,
        "frequencies": 4,
        "orientations": 4,
        "phases": 2,
        "layers": ["relu1_2", "relu2_2"],
        "sensitivity_pixels_per_degree": None,
        "top_k": 8,
        "example_maps": 2,
    },
}
# What the project needs to run and render: the code, the pipeline, the plot templates, the docs the
# report stage rewrites, and .dvc/config (it names the offline plots page).
COPIED = ("dvc.yaml", "stages", "src", "plots", "docs", "README.md")
# (experiment name, -S overrides) run by :func:`experiments`, in this order.
EXPERIMENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("topk4", ("weights.top_k=4",)),
    ("perceptual", ("train.perceptual_weight=0.2",)),
)
_RAN = re.compile(r"^Running stage '([^']+)'", re.MULTILINE)


@dataclass
class Repo:
    """The tiny repository, its environment, the params trace folder, and what each experiment reran."""

    path: Path
    env: dict[str, str]
    traces: Path
    reran: dict[str, set[str]] = field(default_factory=dict)

    def run(self, *args: str, timeout: float = 1200, **env: str) -> subprocess.CompletedProcess[str]:
        """Run a command in the repository (``env`` added to its environment)."""
        return subprocess.run(
            list(args), cwd=self.path, env={**self.env, **env}, capture_output=True, text=True, timeout=timeout
        )

    def check(self, *args: str, timeout: float = 1200, **env: str) -> str:
        """:meth:`run`, failing with the command's output unless it succeeds; returns stdout."""
        result = self.run(*args, timeout=timeout, **env)
        assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return result.stdout


def stages_run(output: str) -> set[str]:
    """The stages a ``dvc repro`` / ``dvc exp run`` output says it ran."""
    return set(_RAN.findall(output))


def tiny_params(overrides: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The repository's params.yaml with :data:`TINY` (then ``overrides``) applied."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for layer in (TINY, overrides or {}):
        for section, values in layer.items():
            params[section].update(values)
    return params


_CACHE: dict[str, Repo] = {}


def baseline(factory: Any) -> Repo:
    """Build (once per session) the tiny repo: copy, ``git init``, ``dvc repro`` (traced), commit."""
    if "baseline" in _CACHE:
        return _CACHE["baseline"]
    base = factory.mktemp("dvcux")
    path = base / "project"
    path.mkdir()
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, path / name)
    (path / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PSYCHOVIS_", "MLFLOW_", "DVC_")) and key != "COLUMNS"
    }
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONPATH=str(path / "src"),
        MLFLOW_TRACKING_URI=f"sqlite:///{base / 'mlflow.db'}",
        TQDM_DISABLE="1",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="1",
        GIT_AUTHOR_NAME="test",
        GIT_AUTHOR_EMAIL="test@example.com",
        GIT_COMMITTER_NAME="test",
        GIT_COMMITTER_EMAIL="test@example.com",
    )
    repo = Repo(path, env, base / "traces")
    repo.check("git", "init", "-q")
    repo.check("dvc", "init", "-q")
    shutil.copy2(ROOT / ".dvc" / "config", path / ".dvc" / "config")
    repo.check("dvc", "repro", PSYCHOVIS_PARAMS_TRACE=str(repo.traces))
    repo.check("git", "add", "-A")
    repo.check("git", "commit", "-qm", "baseline")
    _CACHE["baseline"] = repo
    return repo


def experiments(factory: Any) -> Repo:
    """The baseline repo after the :data:`EXPERIMENTS` ran (once per session); ``reran`` per name."""
    repo = baseline(factory)
    if not repo.reran:
        for name, overrides in EXPERIMENTS:
            flags = [item for override in overrides for item in ("-S", override)]
            repo.reran[name] = stages_run(repo.check("dvc", "exp", "run", "-n", name, *flags))
    return repo
