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
PERCEPTUAL_JUDGES = ("lpips_alex", "dists")
"""The judges the perceptual models must beat bicubic on (independent of the loss's weighting)."""
REFERENCES = ("bicubic", "pretrain", "pixel")
"""Methods that are references, not perceptual losses."""


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


DIGITS: dict[str, int] = {"psnr_y": 3, "artefact_db": 3}
"""Decimals shown per judge (4 for the rest: MS-SSIM and GMSD differ in the fourth)."""


def ordered(methods: Sequence[str]) -> list[str]:
    """References first (bicubic, the warm start, pixel), then the plain VGG loss, then the rest in order."""
    first = [method for method in (*REFERENCES, "vgg") if method in methods]
    return first + [method for method in methods if method not in first]


def means_table(evaluate: Mapping[str, Mapping[str, float | None]], judges: Sequence[str]) -> str:
    """Mean score per method (rows) and judge (columns), from ``metrics/evaluate.json``."""
    evaluate = {method: evaluate[method] for method in ordered(list(evaluate))}
    rows = [
        [method] + [number(scores.get(judge), DIGITS.get(judge, 4)) for judge in judges]
        for method, scores in evaluate.items()
    ]
    return markdown_table(["method", *(JUDGE_LABELS.get(judge, judge) for judge in judges)], rows)


def verdict_cell(row: Mapping[str, Any], digits: int = 4) -> str:
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
            cells.append(verdict_cell(chosen.loc[key], DIGITS.get(judge, 4)) if key in chosen.index else "—")
        rows.append(cells)
    return markdown_table([f"vs {baseline}", *(JUDGE_LABELS.get(judge, judge) for judge in judges)], rows)


def verdict_sentence(differences: pd.DataFrame, method: str, baseline: str) -> str:
    """One sentence: on which judges ``method`` is better than, worse than, or indistinguishable from ``baseline``."""
    rows = differences[(differences["method"] == method) & (differences["baseline"] == baseline)]
    groups = {
        verdict: [JUDGE_LABELS.get(j, j).rstrip(" *") for j in rows.loc[rows["verdict"] == verdict, "judge"]]
        for verdict in ("better", "worse", "no detectable difference")
    }
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


def artefact_sentence(evaluate: Mapping[str, Mapping[str, float | None]]) -> str | None:
    """How far each perceptual model's periodic-artefact measure is from the pixel model's (the checkerboard check)."""
    if "pixel" not in evaluate or evaluate["pixel"].get("artefact_db") is None:
        return None
    pixel = float(evaluate["pixel"]["artefact_db"])
    gaps = {method: float(evaluate[method]["artefact_db"]) - pixel for method in perceptual_losses(evaluate)}
    worst = max(gaps, key=lambda method: abs(gaps[method]))
    return (
        f"- Periodic (checkerboard) artefacts: every perceptual model within {abs(gaps[worst]):.2f} dB of the "
        f"pixel model ({worst} the farthest; bicubic {number(evaluate.get('bicubic', {}).get('artefact_db'), 2)} dB)."
    )


def perceptual_losses(evaluate: Mapping[str, Any]) -> list[str]:
    """The perceptual-loss methods of a run (``vgg`` first when present)."""
    return [method for method in ordered(list(evaluate)) if method not in REFERENCES]


def sr_section(
    title: str,
    evaluate: Mapping[str, Mapping[str, float | None]],
    differences: pd.DataFrame,
    facts: str,
    judges: Sequence[str],
) -> list[str]:
    """The super-resolution results of one run: means, verdict sentences, difference tables."""
    losses = perceptual_losses(evaluate)
    weighted = [method for method in losses if method != "vgg"]
    lines = [
        f"## {title}",
        "",
        facts,
        "",
        "Mean of each judge over seeds and images (* built on the loss's own VGG-16):",
        "",
    ]
    lines += [means_table(evaluate, judges), ""]
    lines += [
        "Paired differences (positive = better) with 95 % bootstrap CIs. Seeds move these models little, so "
        "even very small differences are detectable: read each verdict next to its size in the tables.",
        "",
    ]
    lines += [f"- {verdict_sentence(differences, method, 'vgg')}" for method in weighted]
    lines += [f"- {verdict_sentence(differences, 'vgg', 'pixel')}"]
    if "bicubic" in set(differences["baseline"]):
        beaten = [method for method in losses if beats(differences, method, "bicubic", PERCEPTUAL_JUDGES)]
        lines += [
            f"- Better than bicubic on both LPIPS-Alex and DISTS: {', '.join(beaten) or 'none'} (of {len(losses)})."
        ]
    artefacts = artefact_sentence(evaluate)
    lines += [artefacts] if artefacts else []
    lines += ["", differences_table(differences, "vgg", weighted, judges), ""]
    lines += [differences_table(differences, "pixel", ["vgg", *weighted], judges), ""]
    return lines


def tuning_section(tuning: Sequence[Mapping[str, Any]]) -> list[str]:
    """How the recipe was chosen: each upsampler's perceptual-weight sweep on the validation image."""
    lines = [
        "## How the recipe was chosen",
        "",
        "`benchmarks/tune_perceptual_weight.py`, once per upsampler: an L1 warm start on the training images "
        "less one validation image, then the plain VGG loss at each perceptual weight; the weight with the "
        "lowest mean rank of LPIPS-Alex and DISTS within 1 dB PSNR-Y of the warm start is chosen. Tuned on the "
        "baseline loss, so the proposed losses get no advantage from it.",
        "",
    ]
    for sweep in tuning:
        table = sweep["table"]
        judges = list(next(iter(table.values())))
        rows = [[method] + [number(values[judge], 3) for judge in judges] for method, values in table.items()]
        lines += [
            f"**{sweep['upsampler']}** (validation: {', '.join(sweep['validation'])}; "
            f"chosen weight {sweep['chosen']}):",
            "",
            markdown_table(["method", *(JUDGE_LABELS.get(judge, judge) for judge in judges)], rows),
            "",
        ]
    return lines


def render_results(
    evaluate: Mapping[str, Mapping[str, float | None]],
    differences: pd.DataFrame,
    facts: str,
    judges: Sequence[str],
    study: tuple[Mapping[str, Any], pd.DataFrame, str] | None = None,
    tuning: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The whole ``docs/results.md``: the default run, the study preset if given, and the tuning."""
    lines = [
        "# Results",
        "",
        "_Generated by the `report` stage (`dvc repro report`) from the metrics of the same run._",
        "",
    ]
    lines += sr_section(
        "Does the psychovisual loss make better reconstructions? (default run)", evaluate, differences, facts, judges
    )
    if study is not None:
        lines += sr_section("The study preset: more seeds, longer fine-tunes", *study, judges)
    if tuning:
        lines += tuning_section(tuning)
    return "\n".join(lines).rstrip() + "\n"


def render_summary(evaluate: Mapping[str, Any], differences: pd.DataFrame, facts: str) -> str:
    """The README's few sentences, from the same files as :func:`render_results`."""
    losses = perceptual_losses(evaluate)
    beaten = [method for method in losses if beats(differences, method, "bicubic", PERCEPTUAL_JUDGES)]
    lines = [
        facts,
        "",
        f"- Better than bicubic on both LPIPS-Alex and DISTS: {len(beaten)} of {len(losses)} perceptual-loss models.",
        f"- {verdict_sentence(differences, 'vgg', 'pixel')}",
    ]
    artefacts = artefact_sentence(evaluate)
    lines += [artefacts] if artefacts else []
    lines += [f"- {verdict_sentence(differences, method, 'vgg')}" for method in losses if method != "vgg"]
    return "\n".join(lines) + "\n"
