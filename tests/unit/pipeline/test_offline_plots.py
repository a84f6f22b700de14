"""`dvc plots show` with the offline template: no CDN, and the page renders in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CHROMIUM_FLAGS, ROOT

from psychovis.errors import DataError
from psychovis.pipeline.offline_plots import TEMPLATE, VEGA_PACKAGES, build_template


def _fake_node_modules(folder: Path) -> Path:
    for package, (version, build) in VEGA_PACKAGES.items():
        (folder / package / build).parent.mkdir(parents=True, exist_ok=True)
        (folder / package / "package.json").write_text(json.dumps({"version": version}))
        (folder / package / build).write_text(f"window['{package}'] = '</script>';")
    return folder


def test_template_inlines_the_libraries(tmp_path: Path) -> None:
    page = build_template(_fake_node_modules(tmp_path / "node_modules"), tmp_path / "offline.html").read_text()
    assert "{plot_divs}" in page and "{refresh_tag}" in page
    assert "<script src" not in page
    for package in VEGA_PACKAGES:
        assert f"window['{package}']" in page
    assert "'<\\/script>'" in page  # escaped so the inline element is not closed early


def test_wrong_or_missing_version_is_refused(tmp_path: Path) -> None:
    modules = _fake_node_modules(tmp_path / "node_modules")
    (modules / "vega" / "package.json").write_text(json.dumps({"version": "1.0.0"}))
    with pytest.raises(DataError, match="expected"):
        build_template(modules, tmp_path / "offline.html")
    (modules / "vega" / "package.json").write_text(json.dumps({"version": VEGA_PACKAGES["vega"][0]}))
    shutil.rmtree(modules / "vega-lite")
    with pytest.raises(DataError, match="not installed"):
        build_template(modules, tmp_path / "offline.html")


def test_the_committed_template_inlines_the_pinned_libraries() -> None:
    """plots/offline.html is committed and .dvc/config names it, so `dvc plots show` needs no npm or CDN."""
    page = (ROOT / TEMPLATE).read_text(encoding="utf-8")
    assert "<script src" not in page and "{plot_divs}" in page
    for package, (version, _) in VEGA_PACKAGES.items():
        assert f"/* {package}@{version}, BSD-3-Clause" in page
    config = (ROOT / ".dvc" / "config").read_text()
    assert f"html_template = ../{TEMPLATE}" in config


@pytest.mark.slow
def test_dvc_plots_page_renders_offline_in_chromium(tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed (`apt-get install chromium`; .ci/run installs it)")
    template = ROOT / TEMPLATE  # the committed page: no npm needed
    project = tmp_path / "project"
    project.mkdir()
    (project / "curve.csv").write_text("step,loss\n1,0.5\n2,0.3\n3,0.2\n")
    (project / "dvc.yaml").write_text("plots:\n  - curve.csv:\n      x: step\n      y: loss\n")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        subprocess.run(command, cwd=project, env=env, check=True)
    shown = subprocess.run(
        ["dvc", "plots", "show", "--html-template", str(template), "-o", "out"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0, shown.stderr
    page = project / "out" / "index.html"
    html = page.read_text()
    assert "cdn.jsdelivr" not in html and "<script src" not in html
    dom = subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    # vega-embed replaced the empty plot div with a rendered chart (canvas marks or svg).
    assert 'class="marks"' in dom.stdout or "<svg" in dom.stdout, dom.stdout[-2000:]
