"""dvc.yaml declares exactly the files each stage writes, and a failing stage under `dvc repro` loses nothing.

What a stage wrote comes from its own transaction (:func:`psychovis.io.stage_transaction` sees every
:func:`psychovis.io.atomic_path` write): with ``PSYCHOVIS_PARAMS_TRACE`` set, each stage run lists
them in its trace file (``wrote``). The tiny repo's ``dvc repro`` (the session's tiny repo, shared with the
params tests) is traced, so this costs no extra run. The declared side is DVC's own resolution of
dvc.yaml (matrix instances and ``${...}`` interpolated).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from stagekit import Repo


def declared_outs(repo: Path) -> dict[str, tuple[str, set[str], set[str]]]:
    """Stage instance -> (its resolved cmd, its outs/metrics/plots, those without ``persist: true``)."""
    from dvc.repo import Repo as DvcRepo

    found = {}
    with DvcRepo(str(repo)) as dvc:
        for stage in dvc.index.stages:
            if not getattr(stage, "cmd", None):
                continue
            outs = {out.def_path for out in stage.outs}
            volatile = {out.def_path for out in stage.outs if not out.persist}
            found[stage.addressing] = (stage.cmd, outs, volatile)
    return found


def written_by_cmd(traces: Path) -> dict[str, set[str]]:
    """Resolved command line -> the outputs its traced runs wrote."""
    wrote: dict[str, set[str]] = {}
    for path in sorted(traces.glob("*.json")):
        trace = json.loads(path.read_text())
        cmd = " ".join(["python", f"stages/{trace['stage']}.py", *trace["argv"]])
        wrote.setdefault(cmd, set()).update(trace.get("wrote", []))
    return wrote


@pytest.mark.e2e
def test_each_stage_declares_exactly_what_it_writes(tiny_repo_built: Repo) -> None:
    repo = tiny_repo_built
    declared = declared_outs(repo.path)
    wrote = written_by_cmd(repo.traces)
    assert declared and wrote
    problems = []
    for name, (cmd, outs, volatile) in sorted(declared.items()):
        if cmd not in wrote:
            problems.append(f"{name}: no traced run of `{cmd}`")
            continue
        # A declared folder (evaluate's per-model score cache) holds whatever is written below it.
        folders = {out for out in outs if (repo.path / out).is_dir()}
        undeclared = {path for path in wrote[cmd] - outs if not any(path.startswith(f"{f}/") for f in folders)}
        if undeclared:
            problems.append(f"{name} writes {sorted(undeclared)} but dvc.yaml does not declare them")
        # Every declared file, every run (human_judgement's `skipped` form too): with `persist: true`
        # nothing else would replace a stale one. A folder is a cache that keeps what earlier runs wrote.
        if outs - folders - wrote[cmd]:
            problems.append(f"{name} declares {sorted(outs - folders - wrote[cmd])} but did not write them")
        if volatile:
            problems.append(f"{name}: {sorted(volatile)} lack `persist: true` (DVC would delete them before a run)")
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_no_stage_output_is_committed_outside_dvc() -> None:
    """A stage output in git must be a `cache: false` output (DVC's way); cached ones live in DVC's cache."""
    from dvc.repo import Repo as DvcRepo

    with DvcRepo(str(ROOT)) as dvc:
        cached = sorted(out.def_path for stage in dvc.index.stages for out in stage.outs if out.use_cache)
    tracked = set(subprocess.run(["git", "ls-files", *cached], cwd=ROOT, capture_output=True, text=True).stdout.split())
    assert not tracked, f"cached stage outputs committed to git: {sorted(tracked)}; `git rm --cached` them"


def test_every_weighted_fine_tune_runs_after_weights() -> None:
    """`dvc dag` has `<exporter> -> train_weighted@<loss>-<seed>` for every weighted loss and seed, where the
    exporter is the stage that writes ``data/weights/<loss>.safetensors`` (`weights`; `modelfest` for
    ``human_fitted``, the weights fitted to people)."""
    from dvc.repo import Repo as DvcRepo

    params = yaml.safe_load((ROOT / "params.yaml").read_text())["train"]
    exporter = {loss: "modelfest" if loss == "human_fitted" else "weights" for loss in params["weighted_losses"]}
    with DvcRepo(str(ROOT)) as dvc:
        graph = dvc.index.graph
        weighted = [stage for stage in graph if stage.addressing.startswith("train_weighted@")]
        writers = {
            str(out.def_path): stage.addressing for stage in graph if not stage.is_data_source for out in stage.outs
        }
        # networkx edges point from a stage to the stages it depends on
        after_exporter = {
            stage.addressing
            for stage in weighted
            for loss in [stage.addressing.split("@")[1].rsplit("-", 1)[0]]
            if any(up.addressing == exporter.get(loss) for up in graph.successors(stage))
        }
    expected = {f"train_weighted@{loss}-{seed}" for loss in params["weighted_losses"] for seed in params["seeds"]}
    assert expected == {stage.addressing for stage in weighted}
    assert after_exporter == expected, f"no edge from the weights' exporter to {sorted(expected - after_exporter)}"
    assert {writers[f"data/weights/{loss}.safetensors"] for loss in exporter} == set(exporter.values())


def _snapshot(project: Path) -> dict[str, bytes]:
    """Every output-like file: data/, metrics/, docs/, README.md (relative path -> bytes)."""
    files = {}
    for top in ("data", "metrics", "docs", "README.md", "dvc.lock"):
        root = project / top
        paths = [root] if root.is_file() else sorted(root.rglob("*")) if root.exists() else []
        for path in paths:
            if path.is_file():
                files[path.relative_to(project).as_posix()] = path.read_bytes()
    return files


@pytest.mark.e2e
def test_a_failing_stage_under_dvc_repro_keeps_every_output(tiny_repo_built: Repo, tmp_path: Path) -> None:
    """issue 22: `dvc repro -f -s report` with MLflow unreachable used to delete docs/results.md for good."""
    repo = tiny_repo_built.copy(tmp_path)
    copy = repo.path
    before = _snapshot(copy)
    # report: only uncached outputs; tuning: cached and uncached outs, metrics and plots.
    for stage in ("report", "tuning"):
        result = repo.run("dvc", "repro", "-f", "-s", stage, MLFLOW_TRACKING_URI="http://127.0.0.1:9")
        assert result.returncode != 0, f"{stage} did not fail:\n{result.stdout[-2000:]}"
        assert "127.0.0.1:9" in result.stderr, result.stderr[-2000:]
        after = _snapshot(copy)
        lost = sorted(set(before) - set(after))
        changed = sorted(path for path in set(before) & set(after) if before[path] != after[path])
        assert not lost and not changed, f"{stage}: lost {lost}, changed {changed}"
        assert not sorted(set(after) - set(before)), f"{stage} left new files: {sorted(set(after) - set(before))}"
    status = repo.check("dvc", "status", "--json")
    assert json.loads(status) == {}, status


def test_every_training_curve_is_a_declared_plot_with_x_and_y() -> None:
    """Issue 22: the fine-tunes' ``data/curves/<loss>-s<seed>.csv`` were plain outs: `dvc plots show` skipped them."""
    from dvc.repo import Repo as DvcRepo

    curves: dict[str, list[tuple[str, object]]] = {}
    with DvcRepo(str(ROOT)) as dvc:
        for stage in dvc.index.stages:
            if stage.addressing.startswith(("pretrain@", "train_")):
                curves[stage.addressing] = [
                    (out.def_path, out.plot) for out in stage.outs if out.def_path.startswith("data/curves/")
                ]
    assert len([name for name in curves if name.startswith("train_")]) >= 3, sorted(curves)
    problems = []
    for name, outs in sorted(curves.items()):
        tables = [(path, plot) for path, plot in outs if path.endswith(".csv")]
        if len(tables) != 1:
            problems.append(f"{name}: {len(tables)} curve CSVs declared, expected 1")
        for path, plot in tables:
            if not isinstance(plot, dict) or plot.get("x") != "step" or plot.get("y") not in ("loss", "pixel"):
                problems.append(f"{name}: {path} is not a plot of a loss column against step ({plot!r})")
    assert not problems, "\n".join(problems)
