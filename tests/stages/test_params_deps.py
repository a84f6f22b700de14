"""dvc.yaml lists, per stage, exactly the params keys the stage reads, so a change reruns only its dependents.

The keys read are recorded by the stages themselves (``PSYCHOVIS_PARAMS_TRACE``, see
:mod:`psychovis.pipeline.params_trace`) during a real ``dvc repro`` of a tiny config; then real
``dvc exp run -S`` experiments check what reran.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from conftest import ROOT
from stagekit import Repo

from psychovis.pipeline.params import SCHEMA
from psychovis.pipeline.params_trace import read_traces

PIPELINE = yaml.safe_load((ROOT / "dvc.yaml").read_text())
STAGES: dict[str, dict[str, Any]] = PIPELINE["stages"]
# Stages whose tiny run skips work and so reads fewer keys than a full run (checked one way only).
SKIPPED_IN_TINY = {"human_judgement": "no human-judgement data set is configured, so the stage writes `skipped`"}


def declared(stage: dict[str, Any]) -> set[str]:
    """The params keys a dvc.yaml stage lists (``params.yaml`` only)."""
    keys: set[str] = set()
    for entry in stage.get("params") or []:
        if isinstance(entry, str):
            keys.add(entry)
        else:
            for file, names in entry.items():
                assert file == "params.yaml", f"unexpected params file {file}"
                keys.update(names)
    return keys


def _values(template: Any, params: dict[str, Any]) -> list[str]:
    """A matrix dimension's values: a list, or ``${section.key}`` resolved from ``params``."""
    if isinstance(template, str):
        section, key = template.strip("${}").split(".")
        template = params[section][key]
    return [str(value) for value in template]


def traces_of(name: str, traces: list[dict[str, Any]], params: dict[str, Any]) -> list[dict[str, Any]]:
    """The trace files of stage ``name``'s runs: its cmd, with each ``${item.x}`` one of its matrix values."""
    stage = STAGES[name]
    matrix = {key: _values(values, params) for key, values in (stage.get("matrix") or {}).items()}
    # ${item.x} becomes a named group; any other interpolation (e.g. ${train.processes}) any one word.
    pattern = "".join(
        f"(?P<{part[7:-1]}>\\S+)"
        if part.startswith("${item.")
        else "\\S+"
        if part.startswith("${")
        else re.escape(part)
        for part in re.split(r"(\$\{[^}]*\})", stage["cmd"])
    )
    found = []
    for trace in traces:
        match = re.fullmatch(pattern, " ".join(["python", f"stages/{trace['stage']}.py", *trace["argv"]]))
        if match and all(match.group(key) in values for key, values in matrix.items()):
            found.append(trace)
    return found


def test_every_stage_lists_params_per_key() -> None:
    """No stage depends on a whole section (`- train`): a key of it would rerun everything under it."""
    for name, stage in STAGES.items():
        for key in declared(stage):
            section, _, rest = key.partition(".")
            assert rest, f"stage {name} depends on the whole params section {key!r}; list the keys it reads"
            assert rest in SCHEMA[section], f"stage {name} lists {key}, which params.yaml does not define"


@pytest.mark.e2e
def test_each_stage_lists_exactly_the_keys_it_reads(tiny_repo_built: Repo) -> None:
    repo = tiny_repo_built
    params = yaml.safe_load((repo.path / "params.yaml").read_text())
    traces = [json.loads(path.read_text()) for path in sorted(repo.traces.glob("*.json"))]
    assert read_traces(repo.traces), "no stage wrote a params trace"
    problems = []
    for name in STAGES:
        runs = traces_of(name, traces, params)
        if not runs:
            problems.append(f"{name}: no run of this stage was traced")
            continue
        read = set().union(*(set(run["read"]) for run in runs))
        listed = declared(STAGES[name])
        if read - listed:
            problems.append(f"{name} reads {sorted(read - listed)} but dvc.yaml does not list them")
        if listed - read and name not in SKIPPED_IN_TINY:
            problems.append(f"{name} lists {sorted(listed - read)} but never read them")
    assert not problems, "\n".join(problems)


@pytest.mark.e2e
def test_top_k_reruns_only_what_depends_on_it(experiment_repo: Repo) -> None:
    """`-S weights.top_k=4`: weights, the topk fine-tune and what reads its scores; vfss's fine-tune is kept."""
    train = yaml.safe_load((experiment_repo.path / "params.yaml").read_text())["train"]
    assert "topk" in train["weighted_losses"] and len(train["weighted_losses"]) > 1 and train["seeds"] == [0]
    reran = experiment_repo.reran["topk4"]
    assert reran == {"weights", "train_weighted@topk-0", "evaluate", "compare", "report"}, sorted(reran)


@pytest.mark.e2e
def test_perceptual_weight_keeps_the_pixel_model(experiment_repo: Repo) -> None:
    reran = experiment_repo.reran["perceptual"]
    assert {"train_baseline@vgg-0", "train_weighted@vfss-0", "train_weighted@topk-0", "evaluate"} <= reran
    assert not reran & {"pretrain@0", "train_pixel@0", "weights", "psychophysics", "atlas@vgg16"}, sorted(reran)
