"""dvc.yaml deps must cover every psychovis module a stage script imports, so edits to them rerun the stage.

The import closure is computed statically with ``ast`` (nothing is imported): ``import psychovis.x``,
``from psychovis.x import y`` (``y`` a submodule or a name), imports nested in functions, and the
``__init__.py`` of every parent package, which Python runs before a submodule. Imports under
``if TYPE_CHECKING:`` never run, so they are skipped; imports by string (``importlib``) are not seen.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT

PACKAGE = "psychovis"
SCRIPT = re.compile(r"(?<![\w/.-])(stages/[\w/.-]+?\.py)\b")


def module_file(root: Path, module: str) -> Path | None:
    """The file that defines ``module`` under ``root/src``, or None (missing, or a namespace package)."""
    base = root / "src" / Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    """Every node below ``node`` (functions included), except the body of ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield other
                yield from _walk(other)
            continue
        yield child
        yield from _walk(child)


def _ours(module: str) -> bool:
    return module == PACKAGE or module.startswith(PACKAGE + ".")


def imported_modules(root: Path, path: Path, module: str | None = None) -> set[str]:
    """The psychovis modules ``path`` imports; ``module`` is its dotted name (None for a script)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in _walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if _ours(alias.name))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if module is None:
                    continue  # a relative import in a script: not ours to resolve
                package = module if path.name == "__init__.py" else module.rpartition(".")[0]
                parts = package.split(".")
                if node.level > len(parts):
                    continue
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if not _ours(base):
                continue
            found.add(base)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if alias.name != "*" and module_file(root, submodule) is not None:
                    found.add(submodule)
    return found


def _with_parents(module: str) -> Iterator[str]:
    parts = module.split(".")
    for end in range(1, len(parts) + 1):
        yield ".".join(parts[:end])


def import_closure(root: Path, script: str | Path) -> set[str]:
    """Files (posix, relative to ``root``) of every psychovis module the script loads, transitively."""
    pending = list(imported_modules(root, root / script))
    seen: set[str] = set()
    files: set[str] = set()
    while pending:
        for module in _with_parents(pending.pop()):
            if module in seen:
                continue
            seen.add(module)
            path = module_file(root, module)
            if path is None:
                continue
            files.add(path.relative_to(root).as_posix())
            pending.extend(imported_modules(root, path, module))
    return files


def is_covered(path: str, deps: Iterable[str]) -> bool:
    """Whether some dep is ``path`` itself or a folder that contains it."""
    for dep in deps:
        folder = dep.rstrip("/")
        if path == folder or path.startswith(folder + "/"):
            return True
    return False


def uncovered(files: Iterable[str], deps: Iterable[str]) -> list[str]:
    """The files no dep covers, sorted."""
    deps = list(deps)
    return sorted(path for path in files if not is_covered(path, deps))


def _stage_deps(stage: dict[str, Any]) -> list[str]:
    deps = []
    for dep in stage.get("deps") or []:
        name = dep if isinstance(dep, str) else next(iter(dep))  # a dep may also be a one-key mapping
        if "${" not in name:
            deps.append(name.removeprefix("./"))
    return deps


def _load_stages() -> dict[str, dict[str, Any]]:
    pipeline = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    stages = {}
    for name, stage in (pipeline.get("stages") or {}).items():
        stages[name] = stage.get("do", stage) if "foreach" in stage else stage
    return stages


STAGES = _load_stages()


@pytest.mark.parametrize("name", list(STAGES), ids=list(STAGES))
def test_deps_cover_imports(name: str) -> None:
    """Each stage lists its script and every psychovis file the script loads (or a folder holding it)."""
    stage = STAGES[name]
    cmd = stage.get("cmd")
    cmd = " ".join(cmd) if isinstance(cmd, list) else str(cmd or "")
    match = SCRIPT.search(cmd)
    if match is None:
        pytest.skip(f"stage {name} runs no stages/*.py script: {cmd!r}")
    script = match.group(1)
    assert (ROOT / script).is_file(), f"stage {name} runs {script}, which does not exist"

    deps = _stage_deps(stage)
    problems = []
    if not is_covered(script, deps):
        problems.append(f"stage {name} runs {script} but it is not in its dvc.yaml deps")
    missing = uncovered(import_closure(ROOT, script), deps)
    if missing:
        problems.append(
            f"stage {name} imports {', '.join(missing)} but dvc.yaml deps do not cover them; "
            "add them (or their folder) to its deps"
        )
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


PIPELINE = "src/psychovis/pipeline"


@pytest.mark.parametrize("name", list(STAGES), ids=list(STAGES))
def test_deps_name_exactly_the_pipeline_modules_imported(name: str) -> None:
    """`pipeline/` is listed file by file, and no source file is listed that the stage does not load.

    So editing a pipeline module (e.g. the dev tool ``offline_plots.py``) reruns only the stages that import it.
    """
    stage = STAGES[name]
    match = SCRIPT.search(str(stage.get("cmd") or ""))
    if match is None:
        pytest.skip(f"stage {name} runs no stages/*.py script")
    closure = import_closure(ROOT, match.group(1))
    deps = _stage_deps(stage)
    problems = []
    if any(dep.rstrip("/") == PIPELINE for dep in deps):
        problems.append(f"stage {name} depends on the whole {PIPELINE} folder; list the modules it imports")
    listed = {dep for dep in deps if dep.startswith(PIPELINE + "/")}
    imported = {path for path in closure if path.startswith(PIPELINE + "/")}
    if listed != imported:
        problems.append(
            f"stage {name}: {PIPELINE} deps should be {sorted(imported)}; "
            f"extra {sorted(listed - imported)}, missing {sorted(imported - listed)}"
        )
    stale = sorted(dep for dep in deps if dep.startswith("src/") and dep.endswith(".py") and dep not in closure)
    if stale:
        problems.append(f"stage {name} lists {stale}, which it does not import")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def test_checker_on_a_tiny_tree(tmp_path: Path) -> None:
    """The closure follows submodules, parent __init__ files and nested imports; uncovered files are reported."""
    files = {
        "src/psychovis/__init__.py": "",
        "src/psychovis/a/__init__.py": "",
        "src/psychovis/a/b.py": "def f():\n    from psychovis.c import thing\n    return thing\n",
        "src/psychovis/c.py": (
            "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from psychovis import d\n\nthing = 1\n"
        ),
        "src/psychovis/d.py": "",
        "stages/s.py": "import os\n\nfrom psychovis.a import b\n",
    }
    for relative, text in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(text, encoding="utf-8")

    closure = import_closure(tmp_path, "stages/s.py")
    assert closure == {
        "src/psychovis/__init__.py",
        "src/psychovis/a/__init__.py",
        "src/psychovis/a/b.py",
        "src/psychovis/c.py",
    }
    assert uncovered(closure, ["stages/s.py", "src/psychovis/__init__.py", "src/psychovis/a"]) == ["src/psychovis/c.py"]
    assert uncovered(closure, ["src/psychovis/"]) == []
    assert not is_covered("src/psychovis/ab.py", ["src/psychovis/a"])
