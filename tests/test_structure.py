"""The code's shape, checked: module size, function size, and the import layering.

Limits from the structure issue: no module in `src/` over MAX_MODULE_LINES lines, no
function over MAX_FUNCTION_LINES lines unless a comment `# long: <reason>` on its `def`
line (or the line above it) says why. The layering table mirrors docs/architecture.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "scorehouse"
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60

MODULES = sorted(p for p in SRC.rglob("*.py") if "migrations" not in p.parts)


def _rel(p: Path) -> str:
    return str(p.relative_to(SRC.parent))


@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_module_is_short_enough(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{_rel(path)} has {lines} lines (> {MAX_MODULE_LINES})"


def _long_functions(path: Path) -> list[str]:
    text = path.read_text()
    source = text.splitlines()
    found = []
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        first = min([node.lineno] + [d.lineno for d in node.decorator_list])
        length = node.end_lineno - first + 1
        marks = source[max(first - 2, 0):node.lineno]
        if length > MAX_FUNCTION_LINES and not any("# long:" in line for line in marks):
            found.append(f"{_rel(path)}:{node.lineno} {node.name} ({length} lines)")
    return found


@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_functions_are_short_or_say_why(path: Path) -> None:
    assert not _long_functions(path)


# The layers of docs/architecture.md, lowest first. A module may import from its own
# package and from any package of a LOWER rank; two packages of the same rank (the
# channels) never import each other. A package missing here fails the test: place it.
LAYERS: dict[str, int] = {
    "errors": 0, "config": 0, "__version__": 0,
    "schema": 1, "connections": 1, "apikeys": 1,
    "artifact": 2,
    "runtime": 3,
    "scorer": 4,
    "packaging": 5, "registry": 5,
    "loading": 6,
    "routing": 7, "monitor": 7,
    "evaluation": 8,
    "reports": 9,
    "batch": 10, "serve": 10, "sql": 10, "stream": 10, "spark": 10, "ui": 10,
    "demo": 11, "deploy": 11, "serverless": 11,
    "cli": 12, "__init__": 12, "__main__": 12,
}


def _package_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported_packages(path: Path) -> set[str]:
    """Top-level scorehouse packages that `path` imports (relative or absolute)."""
    rel = path.relative_to(SRC)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            here = list(rel.parts[:-1])
            base = here[:len(here) - (node.level - 1)]
            parts = base + (node.module.split(".") if node.module else [])
            names = parts[:1] or [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("scorehouse."):
            names = [node.module.split(".")[1]]
        elif isinstance(node, ast.ImportFrom) and node.module == "scorehouse":
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name.split(".")[1] for a in node.names if a.name.startswith("scorehouse.")]
        else:
            continue
        found.update(n.removesuffix(".py") for n in names)
    return found


@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_imports_point_down(path: Path) -> None:
    package = _package_of(path)
    assert package in LAYERS, f"{package!r} has no layer: add it to LAYERS and the map"
    wrong = sorted(f"{package} (layer {LAYERS[package]}) imports {other} (layer {LAYERS.get(other)})"
                   for other in _imported_packages(path) - {package}
                   if LAYERS.get(other, 99) >= LAYERS[package])
    assert not wrong, f"{_rel(path)}: " + "; ".join(wrong)
