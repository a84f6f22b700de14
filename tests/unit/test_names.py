"""Tests of psychovis.names: every vocabulary matches the table that implements it."""

from __future__ import annotations

import subprocess
import sys

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


def test_names_and_params_import_without_torch() -> None:
    code = "import sys, psychovis.names, psychovis.pipeline.params; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
