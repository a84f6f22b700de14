"""The modelfest params section: one-line errors naming the key and the allowed values."""

import copy

import pytest
import yaml
from conftest import ROOT

from psychovis.errors import ParamsError
from psychovis.pipeline import params


@pytest.fixture(scope="module")
def raw():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def _error(raw, **changes) -> str:
    values = copy.deepcopy(raw)
    values["modelfest"].update(changes)
    with pytest.raises(ParamsError) as info:
        params.validate(values, ["modelfest"])
    message = str(info.value)
    assert "\n" not in message
    return message


def test_default_section_validates(raw):
    section = params.validate(raw, ["modelfest"])["modelfest"]
    assert section["px_per_degree"] == 120


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"distances": ["vgg", "lpips"]}, "modelfest.distances[1] must be one of"),
        ({"px_per_degree": 0}, "modelfest.px_per_degree"),
        ({"fit_families": ["gabors"]}, "modelfest.fit_families[0] must be one of"),
        ({"sweep_distances": ["dists"]}, "modelfest.sweep_distances ['dists'] must be among modelfest.distances"),
        ({"contrast_min": 0.5, "contrast_max": 0.1}, "modelfest.contrast_max must be greater"),
        ({"csfs": ["barton"]}, "modelfest.csfs[0] must be one of"),
        ({"distances": ["pixel_mse", "lpips_vgg"], "sweep_distances": []}, "modelfest.distances must include one of"),
    ],
)
def test_bad_values_name_the_key(raw, changes, expected):
    assert expected in _error(raw, **changes)


def test_fit_families_must_leave_one_out(raw):
    from psychovis.names import MODELFEST_FAMILIES

    assert "leave at least one family out" in _error(raw, fit_families=list(MODELFEST_FAMILIES))
