"""An HTML template for ``dvc plots show`` that renders with no internet.

DVC's default page loads vega, vega-lite and vega-embed from a CDN: offline, the page stays blank
with no message. This module inlines the three libraries (the npm registry's packages) into a
template DVC accepts through its ``plots.html_template`` setting. The result is committed as
``plots/offline.html`` and named in ``.dvc/config`` (``html_template = ../plots/offline.html``), so
a clone needs neither npm nor internet. Only to change the pinned versions (``make vega-template``)::

    npm install --prefix .venv/vega vega@5.33.0 vega-lite@5.23.0 vega-embed@6.29.0
    python -m psychovis.pipeline.offline_plots --node-modules .venv/vega/node_modules --out plots/offline.html
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from psychovis.errors import DataError
from psychovis.io import atomic_path

TEMPLATE = "plots/offline.html"  # committed; .dvc/config points DVC at it

# npm package -> (pinned version, the browser build inlined into the page)
VEGA_PACKAGES: dict[str, tuple[str, str]] = {
    "vega": ("5.33.0", "build/vega.min.js"),
    "vega-lite": ("5.23.0", "build/vega-lite.min.js"),
    "vega-embed": ("6.29.0", "build/vega-embed.min.js"),
}

_PAGE = """<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>psychovis plots</title>
{scripts}
    <style>
        body {{ font-family: sans-serif; }}
        table {{ border-spacing: 15px; }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def build_template(node_modules: str | Path, out: str | Path) -> Path:
    """Write the offline template: DVC's page with the three libraries inlined.

    Args:
        node_modules: folder holding the npm packages of :data:`VEGA_PACKAGES`.
        out: where to write the HTML template.

    Returns:
        The path written.

    Raises:
        DataError: a package is missing or is not the pinned version.
    """
    node_modules = Path(node_modules)
    scripts = []
    for package, (version, build) in VEGA_PACKAGES.items():
        manifest = node_modules / package / "package.json"
        if not manifest.is_file():
            raise DataError(f"{package} is not installed in {node_modules}; run `make setup` (it uses npm)")
        found = json.loads(manifest.read_text())["version"]
        if found != version:
            raise DataError(f"{package} {found} found in {node_modules}, expected {version}; run `make setup`")
        source = (node_modules / package / build).read_text(encoding="utf-8")
        # A literal "</script" inside the library would end the inline <script> element early.
        source = source.replace("</script", "<\\/script")
        notice = f"{package}@{version}, BSD-3-Clause, https://github.com/vega/{package}"
        scripts.append(f"    <script>/* {notice} */\n{source}\n    </script>")
    # SVG rather than canvas: the marks are elements of the page, readable by screen readers and by
    # tests/stages/test_plots_render.py (DVC's page calls vegaEmbed(id, spec) with no options).
    scripts.append(
        "    <script>\n"
        "    window.vegaEmbed = ((embed) => (el, spec, opt) =>\n"
        '        embed(el, spec, Object.assign({renderer: "svg"}, opt)))(window.vegaEmbed);\n'
        "    </script>"
    )
    page = _PAGE.format(scripts="\n".join(scripts))
    with atomic_path(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return Path(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node-modules", default=".venv/vega/node_modules")
    parser.add_argument("--out", default=TEMPLATE)
    args = parser.parse_args(argv)
    print(f"wrote {build_template(args.node_modules, args.out)}")


if __name__ == "__main__":
    main()
