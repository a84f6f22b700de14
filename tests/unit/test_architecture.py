"""docs/architecture.md names every module, and only the pipeline layer knows where stage outputs live."""

from __future__ import annotations

import ast
import re

import yaml
from conftest import ROOT

PACKAGE = ROOT / "src" / "psychovis"
DOC = ROOT / "docs" / "architecture.md"


def folder_rows(text: str) -> dict[str, str]:
    """The folder table: ``src/psychovis/<sub>/`` (``src/psychovis/`` for the flat modules) -> its row."""
    rows = {}
    for line in text.splitlines():
        match = re.match(r"\| `(src/psychovis/[\w/]*)`", line)
        if match:
            rows[match.group(1).rstrip("/") + "/"] = line
    return rows


def test_every_module_is_listed_in_the_architecture_page() -> None:
    rows = folder_rows(DOC.read_text(encoding="utf-8"))
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py":
            continue
        folder = path.parent.relative_to(ROOT).as_posix() + "/"
        row = rows.get(folder)
        if row is None or f"`{path.stem}`" not in row:
            missing.append(path.relative_to(ROOT).as_posix())
    assert not missing, f"docs/architecture.md does not list {missing} in its folder's row"


def test_every_listed_module_exists() -> None:
    rows = folder_rows(DOC.read_text(encoding="utf-8"))
    stale = []
    for folder, row in rows.items():
        cells = row.split("|")[2]
        while re.search(r"\([^()]*\)", cells):  # what a module does, in parentheses, is not a module
            cells = re.sub(r"\([^()]*\)", "", cells)
        for name in re.findall(r"`(\w+)`", cells):
            if not (ROOT / folder / f"{name}.py").is_file() and not (ROOT / folder / name).is_dir():
                stale.append(f"{folder}{name}")
    assert not stale, f"docs/architecture.md lists modules that do not exist: {stale}"


def _docstrings(tree: ast.AST) -> set[int]:
    """Strings that stand alone as statements: module, class, function and attribute docstrings."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    }


def test_only_the_pipeline_knows_output_paths() -> None:
    """No library string (docstrings aside) names ``dvc.lock`` or a stage's output folder (``data/weights/``)."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    folders = set()
    for stage in stages.values():
        for kind in ("outs", "metrics", "plots"):
            for out in stage.get(kind) or []:
                path = out if isinstance(out, str) else next(iter(out))
                if "/" not in path:
                    continue  # README.md (the report's summary block): a name, not a folder of outputs
                top, sub = path.split("/")[:2]
                folders.add(re.escape(f"{top}/{sub}") + r"(?!\w)" if top == "data" else re.escape(f"{top}/"))
    pattern = re.compile(r"(?<![\w.])(?:dvc\.lock|" + "|".join(sorted(folders)) + ")")
    leaks = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "pipeline" in path.relative_to(PACKAGE).parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:  # noqa: SIM102
                if pattern.search(node.value):
                    leaks.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value[:80]!r}")
    assert not leaks, "library modules name pipeline outputs (move that to psychovis.pipeline):\n" + "\n".join(leaks)
