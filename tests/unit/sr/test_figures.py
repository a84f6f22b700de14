"""The training-curve figure: its title names the run, so two runs' PNGs differ whenever their settings do."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from psychovis import io
from psychovis.sr.figures import loss_curve


def test_two_short_runs_with_other_settings_give_different_pngs(tmp_path: Path) -> None:
    # Two 2-step curves a log axis draws alike: before the title named the run, these PNGs were
    # byte-identical, and two queued experiments committing them at once met DVC's cache race.
    curve = pd.DataFrame({"step": [1, 2], "loss": [0.0802, 0.0801], "pixel": [0.0802, 0.0801]})
    pngs = [
        io.save_figure(loss_curve(curve, "pretrain", details), tmp_path / f"{index}.png").read_bytes()
        for index, details in enumerate(("seed 0, lr 0.001", "seed 1, lr 0.0005", ""))
    ]
    assert len(set(pngs)) == 3
    assert pngs[0].startswith(b"\x89PNG")
