"""The package's shape, checked: no module reaches into another module's private names, and the
controller's largest class stays small. (Import cycles and layers are import-linter contracts in
pyproject.toml, run by scripts/test.sh.)

A private name (``_x``) is a module's own business: another module that reads ``obj._x`` or imports
``_x`` couples itself to details its owner may change. A module may use the private names it defines
itself (a class and its helper functions in one file)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "vmscale"


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _defined_privately(tree: ast.Module) -> set[str]:
    """Private names a module defines: functions, classes, assignments, attributes of self/cls,
    slots and dataclass fields."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)  # __slots__ entries
    return {n for n in names if _is_private(n)}


def _reaches(tree: ast.Module, own: set[str]) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr) and node.attr not in own:
            base = node.value
            if not (isinstance(base, ast.Name) and base.id in ("self", "cls")):
                found.append((node.lineno, node.attr))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vmscale"):
            found += [(node.lineno, a.name) for a in node.names if _is_private(a.name)]
    return found


def test_no_module_reaches_into_another_modules_private_names() -> None:
    problems = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for line, name in _reaches(tree, _defined_privately(tree)):
            problems.append(f"{path.relative_to(SRC.parent)}:{line}: {name}")
    assert problems == [], "private names used across modules:\n" + "\n".join(problems)


def _attributes(cls: ast.ClassDef) -> set[str]:
    attrs: set[str] = set()
    for node in ast.walk(cls):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
        ):
            attrs.add(node.attr)
    for stmt in cls.body:  # dataclass fields
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            attrs.add(stmt.target.id)
    return attrs


def test_the_controllers_classes_stay_small() -> None:
    sizes = {}
    for path in sorted((SRC / "controller").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                sizes[f"{path.stem}.{node.name}"] = len(_attributes(node) - {"TYPE"})
    largest = max(sizes, key=lambda k: sizes[k])
    assert sizes[largest] <= 10, f"{largest} has {sizes[largest]} attributes: split it ({sizes})"
