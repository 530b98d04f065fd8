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
