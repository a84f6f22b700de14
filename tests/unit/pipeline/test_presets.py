"""The experiment presets: valid params, the command users run, and what the default run leaves out."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT

from psychovis.pipeline import params, presets


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_every_preset_is_valid_params(name: str) -> None:
    # A renamed key or a value the validator refuses fails here, not an hour into `make study`.
    default = yaml.safe_load((ROOT / "params.yaml").read_text())
    preset = presets.PRESETS[name]
    applied = presets.apply(default, preset)
    validated = params.validate(applied)
    for key, value in preset.overrides.items():
        section, name_ = key.split(".", 1)
        assert name_ in default[section], f"{key} is not a key of params.yaml"
        assert validated[section][name_] == value


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_each_override_reads_back_as_dvc_parses_it(name: str) -> None:
    # `dvc exp run -S key=value` parses the value as YAML: the flags must give back the preset's values.
    preset = presets.PRESETS[name]
    flags = preset.flags()
    assert flags[::2] == ["-S"] * len(preset.overrides)
    for flag, (key, value) in zip(flags[1::2], preset.overrides.items(), strict=True):
        written_key, _, written = flag.partition("=")
        assert written_key == key and yaml.safe_load(written) == value


def test_the_study_holds_what_the_default_run_leaves_out() -> None:
    default = yaml.safe_load((ROOT / "params.yaml").read_text())
    study = presets.apply(default, presets.PRESETS["study"])
    assert len(study["train"]["seeds"]) >= 3 > len(default["train"]["seeds"])
    assert set(default["train"]["weighted_losses"]) < set(study["train"]["weighted_losses"])
    assert study["train"]["image_dir"] == "scratch" and study["train"]["test_images"] >= 24
    assert set(default["atlas"]["backbones"]) < set(study["atlas"]["backbones"])


def test_the_command_is_printed_and_a_wrong_name_lists_the_presets() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "psychovis.pipeline.presets", "study", "--print"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert shlex.split(done.stdout) == presets.PRESETS["study"].command()
    wrong = subprocess.run(
        [sys.executable, "-m", "psychovis.pipeline.presets", "studdy"], capture_output=True, text=True
    )
    assert wrong.returncode == 2 and "modelfest-study" in wrong.stderr and "study" in wrong.stderr
