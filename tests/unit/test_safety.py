"""No code path deserialises data in a way that can run code.

The source tree (src/, stages/, benchmarks/, tests/) is parsed with :mod:`ast` and every call of
an unsafe loader fails the test with ``file:line``: ``pickle.load``/``loads``/``Unpickler`` (only
the numpy-only unpickler of ``psychovis.backbones`` may read pickles), ``torch.load`` without
``weights_only=True``, ``np.load`` with ``allow_pickle`` true, ``pandas.read_pickle``, and
``yaml.load`` without a safe loader (``yaml.unsafe_load``/``full_load`` included).
"""

from __future__ import annotations

import ast
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

from psychovis import backbones
from psychovis.errors import WeightsError

SCANNED = ("src", "stages", "benchmarks", "tests")
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}
# Everything numpy needs to rebuild an array (or array scalar) from a pickle; nothing that calls code.
ARRAY_REBUILDING = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    """``np.load`` -> ``numpy.load`` (through import aliases), or None for anything not a dotted name."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name -> full dotted name, from the imports (``import numpy as np``, ``from pickle import loads``)."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((keyword.value for keyword in call.keywords if keyword.arg == name), None)


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _safe_loader_subclasses(tree: ast.AST, aliases: dict[str, str]) -> set[str]:
    """Names of classes in this module that subclass a safe YAML loader (directly)."""
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and any((_dotted(base, aliases) or "").rsplit(".", 1)[-1] in SAFE_YAML_LOADERS for base in node.bases)
    }


def _unsafe(call: ast.Call, aliases: dict[str, str], safe_local: frozenset[str] = frozenset()) -> str | None:
    """Why this call may run code while loading data, or None when it is safe."""
    name = _dotted(call.func, aliases)
    if name is None:
        return None
    if name in {"pickle.load", "pickle.loads", "_pickle.load", "_pickle.loads", "pickle.Unpickler", "dill.load"}:
        return f"{name}() runs arbitrary code from the data; use safetensors/JSON or a find_class allow-list"
    if name in {"pandas.read_pickle", "joblib.load"}:
        return f"{name}() unpickles; store the data as Parquet/safetensors instead"
    if name == "torch.load" and not _is_true(_keyword(call, "weights_only")):
        return "torch.load() without weights_only=True unpickles arbitrary objects"
    if name == "numpy.load":
        allow = _keyword(call, "allow_pickle")
        if allow is not None and not (isinstance(allow, ast.Constant) and allow.value is False):
            return "numpy.load() with allow_pickle enabled unpickles object arrays"
    if name in {"yaml.unsafe_load", "yaml.full_load", "yaml.unsafe_load_all", "yaml.full_load_all"}:
        return f"{name}() can build arbitrary Python objects; use yaml.safe_load"
    if name in {"yaml.load", "yaml.load_all"}:
        loader = _keyword(call, "Loader") or (call.args[1] if len(call.args) > 1 else None)
        loader_name = _dotted(loader, aliases) if loader is not None else None
        if loader_name is None or loader_name.rsplit(".", 1)[-1] not in SAFE_YAML_LOADERS | safe_local:
            return f"{name}() without Loader=yaml.SafeLoader; use yaml.safe_load"
    return None


def _unpicklers_without_allow_list(tree: ast.AST, aliases: dict[str, str]) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(
            _dotted(base, aliases) in {"pickle.Unpickler", "_pickle.Unpickler"} for base in node.bases
        ):
            methods = {item.name for item in node.body if isinstance(item, ast.FunctionDef)}
            if "find_class" not in methods:
                yield node.lineno, f"class {node.name}(pickle.Unpickler) does not restrict find_class"


def findings(source: str, filename: str = "<source>") -> list[str]:
    """``file:line: reason`` for every unsafe deserialisation in ``source``."""
    tree = ast.parse(source, filename=filename)
    aliases = _aliases(tree)
    safe_local = frozenset(_safe_loader_subclasses(tree, aliases))
    found = [
        f"{filename}:{node.lineno}: {reason}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and (reason := _unsafe(node, aliases, safe_local))
    ]
    found += [f"{filename}:{line}: {reason}" for line, reason in _unpicklers_without_allow_list(tree, aliases)]
    return sorted(found)


def _python_files() -> list[Path]:
    return sorted(
        path
        for folder in SCANNED
        if (ROOT / folder).is_dir()
        for path in (ROOT / folder).rglob("*.py")
        if "__pycache__" not in path.parts
    )


@pytest.mark.slow
def test_the_tree_has_no_unsafe_deserialisation() -> None:
    files = _python_files()
    assert any(path.name == "backbones.py" for path in files), "the scan found no sources"
    problems = [
        problem for path in files for problem in findings(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    ]
    assert not problems, "unsafe deserialisation:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("snippet", "reason"),
    [
        ("import pickle\npickle.load(open('x', 'rb'))", "pickle.load"),
        ("import pickle as p\np.loads(b'')", "pickle.loads"),
        ("from pickle import loads\nloads(b'')", "pickle.loads"),
        ("import pickle\npickle.Unpickler(f).load()", "pickle.Unpickler"),
        ("import torch\ntorch.load('m.pt')", "weights_only"),
        ("import torch\ntorch.load('m.pt', weights_only=False)", "weights_only"),
        ("from torch import load\nload('m.pt', map_location='cpu')", "weights_only"),
        ("import numpy as np\nnp.load('a.npy', allow_pickle=True)", "allow_pickle"),
        ("import numpy\nnumpy.load('a.npy', allow_pickle=flag)", "allow_pickle"),
        ("import yaml\nyaml.load(text)", "SafeLoader"),
        ("import yaml\nyaml.load(text, Loader=yaml.Loader)", "SafeLoader"),
        ("import yaml\nyaml.load(text, yaml.FullLoader)", "SafeLoader"),
        ("import yaml\nyaml.unsafe_load(text)", "safe_load"),
        ("import yaml\nclass Loose(yaml.FullLoader):\n    pass\nyaml.load(text, Loader=Loose)", "SafeLoader"),
        ("import pandas as pd\npd.read_pickle('x.pkl')", "unpickles"),
        ("import pickle\nclass Open(pickle.Unpickler):\n    pass", "find_class"),
    ],
)
def test_the_scanner_catches(snippet: str, reason: str) -> None:
    problems = findings(snippet, "snippet.py")
    assert len(problems) == 1 and reason in problems[0], problems
    assert problems[0].startswith("snippet.py:")


@pytest.mark.parametrize(
    "snippet",
    [
        "import torch\ntorch.load('m.pt', map_location='cpu', weights_only=True)",
        "import numpy as np\nnp.load('a.npy')\nnp.load('a.npy', allow_pickle=False)",
        "import yaml\nyaml.safe_load(text)\nyaml.load(text, Loader=yaml.SafeLoader)\nyaml.load(text, yaml.CSafeLoader)",
        "import yaml\nclass Strict(yaml.SafeLoader):\n    pass\nyaml.load(text, Loader=Strict)",
        "import pickle\npickle.dumps(obj)\n"
        "class Numpy(pickle.Unpickler):\n    def find_class(self, m, n):\n        raise KeyError",
    ],
)
def test_the_scanner_lets_safe_calls_pass(snippet: str) -> None:
    assert findings(snippet) == []


def test_the_weights_unpickler_allows_only_numpy_array_rebuilding() -> None:
    allowed = backbones._NumpyOnlyUnpickler._ALLOWED
    assert allowed, "the allow-list is empty"
    assert set(allowed) <= ARRAY_REBUILDING, f"not array rebuilding: {sorted(set(allowed) - ARRAY_REBUILDING)}"
    numpy_objects = {np.ndarray, np.dtype, np._core.multiarray._reconstruct, np._core.multiarray.scalar}
    assert all(any(value is known for known in numpy_objects) for value in allowed.values())
    unpickler = backbones._NumpyOnlyUnpickler(io.BytesIO(b""))
    for module, name in [
        ("builtins", "eval"),
        ("builtins", "exec"),
        ("builtins", "getattr"),
        ("os", "system"),
        ("posix", "system"),
        ("subprocess", "Popen"),
        ("numpy", "load"),
        ("numpy.lib.npyio", "load"),
        ("numpy.testing._private.utils", "runstring"),
        ("torch", "load"),
        ("collections", "OrderedDict"),
    ]:
        with pytest.raises(WeightsError, match="refusing to unpickle"):
            unpickler.find_class(module, name)


def test_the_weights_unpickler_is_the_only_pickle_reader() -> None:
    readers = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in _python_files()
        if path.relative_to(ROOT).parts[0] != "tests"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef) and any(ast.unparse(base).endswith("Unpickler") for base in node.bases)
    ]
    assert readers == [f"src/psychovis/backbones.py:{_unpickler_line()}"]


def _unpickler_line() -> int:
    tree = ast.parse((ROOT / "src/psychovis/backbones.py").read_text(encoding="utf-8"))
    return next(
        node.lineno for node in ast.walk(tree) if isinstance(node, ast.ClassDef) and node.name == "_NumpyOnlyUnpickler"
    )


def test_pickle_is_not_imported_outside_the_weights_loader() -> None:
    importers = []
    for path in _python_files():
        if path.relative_to(ROOT).parts[0] == "tests":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            modules = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(
                module.split(".")[0] in {"pickle", "_pickle", "dill", "cloudpickle", "joblib"} for module in modules
            ):
                importers.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert all(entry.startswith("src/psychovis/backbones.py:") for entry in importers), importers
