"""The params trace records the keys a stage looks up, and is a no-op without PSYCHOVIS_PARAMS_TRACE."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from psychovis.pipeline.params_trace import ENV, TracedSection, read_traces, traced


def test_without_the_variable_the_params_are_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    params = {"train": {"seeds": [0]}}
    assert traced("train", params) is params


def test_sections_record_lookups_not_iteration() -> None:
    read: set[str] = set()
    section = TracedSection("weights", {"top_k": 8, "layers": ["relu3_2"]}, read)
    assert section["top_k"] == 8 and section.get("missing", 1) == 1
    assert dict(section) == {"top_k": 8, "layers": ["relu3_2"]} and json.dumps(section)  # logging a section
    assert read == {"weights.top_k", "weights.missing"}
    assert type(copy.deepcopy(section)) is dict  # copies are plain dicts


def test_a_process_writes_its_trace_at_exit(tmp_path: Path) -> None:
    code = (
        "from psychovis.pipeline.params_trace import traced\n"
        "p = traced('vfss', {'vfss': {'csf': 'a'}, 'base': {'seed': 0}})\n"
        "p['vfss']['csf']\n"
        "raise SystemExit(2)\n"  # a failed stage still writes what it read
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "--flag"], env={**_env(), ENV: str(tmp_path)}, capture_output=True, text=True
    )
    assert result.returncode == 2, result.stderr
    assert read_traces(tmp_path) == {"vfss": {"vfss.csf"}}
    (trace,) = tmp_path.glob("vfss-*.json")
    assert json.loads(trace.read_text())["argv"] == ["--flag"]


def _env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key != ENV}
