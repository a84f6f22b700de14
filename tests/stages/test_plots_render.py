"""Every plot dvc.yaml declares renders with data: `dvc plots show` opened in headless Chromium.

A chart whose x/y fields or types do not fit its CSV (a categorical axis in a quantitative
template, a long-format CSV drawn as one line) renders an empty or zig-zag frame without any error;
so the test reads the drawn SVG marks (the offline page renders SVG, see
:mod:`psychovis.pipeline.offline_plots`), not just the absence of errors.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import CHROMIUM_FLAGS, ROOT
from dvc_render import VegaRenderer
from stagekit import Repo

DATA_MARKS = ("line", "rect", "symbol", "area")  # vega mark groups that hold the data (not axes or rules)
# Long-format CSVs: one line per series (method; distance x background), never one zig-zag.
SERIES = {
    "data/evaluate/bands.csv": "method",
    "data/psychophysics/sensitivity.csv": "distance",
}


HTML_ID = {ord(c): "_" for c in r"!@#$%^&*()[]{};,<>?\/:.|`~=_+ "}
"""How `dvc plots show` makes a plot's ``<div id>`` from its path (dvc_render's remove_special_chars; ``-`` stays)."""


def drawn_marks(dom: str, plot_id: str) -> dict[str, int]:
    """Mark kind -> how many drawn SVG paths (``d="M..."``) the chart of ``plot_id`` holds."""
    start = dom.find(f'<div id="{plot_id}"')
    if start < 0:
        return {}
    end = dom.find('<div id="', start + 10)
    chunk = dom[start : end if end > 0 else len(dom)]
    marks: dict[str, int] = {}
    for kind, body in re.findall(r'<g class="mark-(\w+) role-mark[^"]*"[^>]*>(.*?)</g>', chunk, re.S):
        marks[kind] = marks.get(kind, 0) + len(re.findall(r'<path[^>]* d="M', body))
    return marks


@pytest.mark.e2e
def test_every_declared_plot_renders_with_data(tiny_repo_built: Repo, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed (`apt-get install chromium`); it renders the plots page")
    repo = tiny_repo_built
    shown = json.loads(repo.check("dvc", "plots", "show", "--json"))
    assert not shown.get("errors"), shown["errors"]
    declared = shown["data"]
    assert len(declared) >= 20, sorted(declared)
    out = tmp_path / "plots"
    page_made = repo.run("dvc", "plots", "show", "-o", str(out))
    assert page_made.returncode == 0 and "failed to load" not in page_made.stderr, page_made.stderr
    html = (out / "index.html").read_text()
    assert "<script src" not in html and "cdn.jsdelivr" not in html  # the offline page from .dvc/config
    dom = subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=15000",
            "--dump-dom",
            (out / "index.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]

    problems = []
    for path, renders in declared.items():
        kinds = {render["type"] for render in renders}
        plot_id = path.translate(HTML_ID)
        if kinds == {"image"}:
            name = "static/workspace_" + path.replace("/", "_")  # where `dvc plots show -o` copies it
            image = name if f'<img src="{name}">' in dom.stdout else None
            if image is None or (out / image).read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
                problems.append(f"{path}: no PNG image on the page")
            continue
        marks = drawn_marks(dom.stdout, plot_id)
        drawn = sum(marks.get(kind, 0) for kind in DATA_MARKS)
        if not drawn:
            problems.append(f"{path}: the chart is empty (marks {marks})")
        elif path in SERIES:
            csv = (repo.path / path).read_text().splitlines()
            column = csv[0].split(",").index(SERIES[path])
            series = {line.split(",")[column] for line in csv[1:]}
            if marks.get("line", 0) < len(series):
                problems.append(f"{path}: {marks.get('line', 0)} lines drawn for {len(series)} {SERIES[path]}s")
    assert not problems, "\n".join(problems)


def render_vega(spec: dict, tmp_path: Path) -> str:
    """The SVG DOM of one vega-lite ``spec`` drawn by the committed offline page in headless Chromium."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed (`apt-get install chromium`); it renders the chart")
    chart = f'<div id="chart"></div><script>vegaEmbed("#chart", {json.dumps(spec)}, {{renderer: "svg"}});</script>'
    page = (ROOT / "plots" / "offline.html").read_text().replace("{refresh_tag}", "").replace("{plot_divs}", chart)
    (tmp_path / "chart.html").write_text(page)
    command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000"]
    dom = subprocess.run([*command, "--dump-dom", (tmp_path / "chart.html").as_uri()], capture_output=True, text=True)
    assert dom.returncode == 0 and "<svg" in dom.stdout, dom.stderr[-2000:]
    return dom.stdout


def test_the_per_method_psnr_chart_spans_the_data_not_zero(tmp_path: Path) -> None:
    """Issue 22: PSNR-Y bars (28.4-29.2 dB) drawn from 0 looked equal; the chart is dots on an axis fitted to them."""
    path = "data/evaluate/summary.csv"
    declared = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["evaluate"]["plots"]
    plot = next(entry[path] for entry in declared if isinstance(entry, dict) and path in entry)
    rows = [row | {"rev": "workspace"} for row in csv.DictReader((ROOT / path).open())]  # as DVC passes them
    template = str(ROOT / plot["template"]) if (ROOT / plot["template"]).is_file() else plot["template"]
    spec = VegaRenderer(rows, path, template=template, x=plot["x"], y=plot["y"], title=plot["title"])
    dom = render_vega(spec.get_filled_template(), tmp_path)

    values = [float(row[plot["x"]]) for row in rows]
    ticks = [float(text) for text in re.findall(r"<text[^>]*>(-?[\d.]+)</text>", dom)]
    assert ticks, dom[-2000:]
    assert min(ticks) > 0 and max(ticks) - min(ticks) <= 3 * (max(values) - min(values)), (ticks, values)
    # the labelled ticks reach the data to within one tick step (Vega may leave the outermost label off)
    step = float(np.median(np.diff(sorted(set(ticks))))) if len(set(ticks)) > 1 else 0.0
    assert min(ticks) - step <= min(values) and max(ticks) + step >= max(values), (ticks, values)
    marks = drawn_marks(dom, "chart")
    assert marks.get("symbol", 0) == len(rows) and not marks.get("rect"), marks  # dots, no bars on a cut axis
