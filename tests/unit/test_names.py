"""Tests of psychovis.names: every vocabulary matches the table that implements it."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT

from psychovis import backbones, csf, names
from psychovis.pipeline import params


def test_every_backbone_name_has_a_spec() -> None:
    assert set(names.BACKBONES) == set(backbones.BACKBONE_SPECS)


def test_every_csf_name_has_a_function() -> None:
    assert set(names.CSF_MODELS) == set(csf.CSF_FUNCTIONS)


def test_params_schema_uses_the_vocabularies() -> None:
    assert params.SCHEMA["base"]["backbone"].options == names.BACKBONES
    assert params.SCHEMA["vfss"]["csf"].options == names.CSF_MODELS
    assert params.SCHEMA["psychophysics"]["distances"].item.options == names.DISTANCES
    assert tuple(names.INPUT_GAIN) == names.INPUT_SCALINGS == params.SCHEMA["stimuli"]["input_scaling"].options


def test_names_and_params_import_without_torch() -> None:
    code = "import sys, psychovis.names, psychovis.pipeline.params; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@pytest.mark.slow
def test_stages_that_only_analyse_tables_import_without_torch() -> None:
    """The `vfss`, `tuning`, `compare` and `report` stages need no network: their imports skip torch (seconds)."""
    code = (
        "import runpy, sys\n"
        "for stage in ('vfss', 'tuning', 'compare', 'report'):\n"
        "    runpy.run_path(f'stages/{stage}.py', run_name='imported')\n"
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False).returncode == 0
