"""The results page, rendered from the metrics of one run so that no number in it can go stale.

Every number and every verdict in ``docs/results.md`` comes from the files the pipeline wrote
(``metrics/*.json``, the `compare` stage's table); the sentences are chosen by the confidence
intervals: a difference is called better or worse only when its interval excludes zero, and
"no detectable difference" otherwise. The README quotes a few of these numbers, and a test checks
them against the same files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

JUDGE_LABELS: dict[str, str] = {
    "psnr_y": "PSNR-Y (dB)",
    "ssim_y": "SSIM-Y",
    "lpips_vgg": "LPIPS-VGG *",
    "lpips_alex": "LPIPS-Alex",
    "dists": "DISTS *",
    "ms_ssim": "MS-SSIM",
    "haarpsi": "HaarPSI",
    "vif": "VIF",
    "gmsd": "GMSD",
    "artefact_db": "artefact (dB)",
}
"""Column headers; * marks the judges built on the loss's own VGG-16 conv weights."""


def number(value: float | None, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals, or an em dash when missing or not finite."""
    if value is None or not math.isfinite(float(value)):
        return "—"
    return f"{float(value):.{digits}f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def means_table(evaluate: Mapping[str, Mapping[str, float | None]], judges: Sequence[str]) -> str:
    """Mean score per method (rows) and judge (columns), from ``metrics/evaluate.json``."""
    digits = {"psnr_y": 2, "artefact_db": 2}
    rows = [[method] + [number(scores.get(judge), digits.get(judge, 4)) for judge in judges] for method, scores in evaluate.items()]
    return markdown_table(["method", *(JUDGE_LABELS.get(judge, judge) for judge in judges)], rows)


def verdict_cell(row: Mapping[str, Any], digits: int = 3) -> str:
    """``+0.012 [+0.004, +0.020]`` with a word for its verdict (better / worse / no detectable difference)."""
    mark = {"better": "better", "worse": "worse"}.get(str(row["verdict"]), "n.d.")
    interval = f"[{row['ci_low']:+.{digits}f}, {row['ci_high']:+.{digits}f}]"
    return f"{mark} {row['mean']:+.{digits}f} {interval}"


def differences_table(differences: pd.DataFrame, baseline: str, methods: Sequence[str], judges: Sequence[str]) -> str:
    """Per method (rows) and judge (columns): the verdict, mean difference and CI against ``baseline``."""
    chosen = differences[differences["baseline"] == baseline].set_index(["method", "judge"])
    rows = []
    for method in methods:
        cells = [method]
        for judge in judges:
            key = (method, judge)
            cells.append(verdict_cell(chosen.loc[key], 3 if judge not in ("psnr_y", "artefact_db") else 2) if key in chosen.index else "—")
        rows.append(cells)
    return markdown_table([f"vs {baseline}", *(JUDGE_LABELS.get(judge, judge) for judge in judges)], rows)


def verdict_sentence(differences: pd.DataFrame, method: str, baseline: str) -> str:
    """One sentence: on which judges ``method`` is better than, worse than, or indistinguishable from ``baseline``."""
    rows = differences[(differences["method"] == method) & (differences["baseline"] == baseline)]
    groups = {verdict: [JUDGE_LABELS.get(j, j).rstrip(" *") for j in rows.loc[rows["verdict"] == verdict, "judge"]] for verdict in ("better", "worse", "no detectable difference")}
    parts = []
    if groups["better"]:
        parts.append("better on " + ", ".join(groups["better"]))
    if groups["worse"]:
        parts.append("worse on " + ", ".join(groups["worse"]))
    if groups["no detectable difference"]:
        parts.append("no detectable difference on " + ", ".join(groups["no detectable difference"]))
    return f"**{method}** vs {baseline}: " + "; ".join(parts) + "."


def beats(differences: pd.DataFrame, method: str, baseline: str, judges: Sequence[str]) -> bool:
    """Whether ``method`` is better than ``baseline`` (CI above zero) on every one of ``judges``."""
    rows = differences[(differences["method"] == method) & (differences["baseline"] == baseline)]
    verdicts = rows.set_index("judge")["verdict"]
    return all(verdicts.get(judge) == "better" for judge in judges)
