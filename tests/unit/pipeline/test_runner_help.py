"""A stage's ``--help`` lists the params.yaml keys it reads."""

from __future__ import annotations

import pytest

from psychovis.pipeline import params, runner


def test_help_lists_every_key_of_the_sections_read(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        runner.run_stage("weights", lambda ctx: None, sections=["weights"], argv=["--help"])
    assert caught.value.code == 0
    printed = capsys.readouterr().out
    assert "reads params.yaml:" in printed
    line = next(line for line in printed.splitlines() if line.strip().startswith("weights:"))
    assert all(key in line for key in params.SCHEMA["weights"])
    assert "images: max_pixels" in printed and "dvc exp run -S" in printed
