"""``python -m psychovis list``: every family, its values, and a clear error for an unknown one."""

from __future__ import annotations

import subprocess
import sys

import pytest

from psychovis import __main__ as cli
from psychovis import names


def test_list_shows_every_family_with_its_values(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list"]) == 0
    printed = capsys.readouterr().out
    for family, (values, _) in cli.CATALOGUE.items():
        assert f"{family}: " in printed
        assert all(f"\n  {value}\n" in printed + "\n" for value in values)
    assert {"losses", "judges", "backbones", "csfs", "weights"} <= set(cli.CATALOGUE)


def test_list_one_family(capsys: pytest.CaptureFixture[str]) -> None:
    cli.main(["list", "backbones"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("backbones:") and [line.strip() for line in lines[1:]] == list(names.BACKBONES)


def test_the_weights_fitted_to_people_are_a_listed_scheme_and_loss(capsys: pytest.CaptureFixture[str]) -> None:
    cli.main(["list", "weights", "losses"])
    printed = capsys.readouterr().out
    assert printed.count("\n  human_fitted\n") == 2


def test_an_unknown_family_names_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["list", "bogus"])
    assert caught.value.code == 2
    assert "unknown list 'bogus'; choose from losses" in capsys.readouterr().err


def test_python_dash_m_runs_without_torch() -> None:
    check = "import sys\nfrom psychovis.__main__ import main\nmain(['list', 'csfs'])\nassert 'torch' not in sys.modules"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "mannos_sakrison_code" in done.stdout
