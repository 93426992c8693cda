"""The code a task runs, read from the import graph (no hand-kept lists).

A task's action is `module:function`. Its code is every kokoro_build module that
module imports, at the top or inside a function, transitively, plus the packages
those modules sit in (importing `a.b.c` runs `a/__init__` and `a/b/__init__`).
The source is parsed with `ast`, never imported, so the graph costs no torch import.

Imports by name at run time (importlib) are invisible to `ast`; the one kind we make,
a stage kind's module from the kind table, is added by the caller (plan/tasks.py).
A test runs actions in a child process and checks that every kokoro_build module they
load is in the set (tests/test_code_deps.py).
"""
from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

PACKAGE = "kokoro_build"
PACKAGE_DIR = Path(__file__).resolve().parents[1]


def module_file(name: str) -> Path | None:
    """The source of a kokoro_build module or package, or None if there is none."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    base = PACKAGE_DIR.joinpath(*name.split(".")[1:])
    for path in (base / "__init__.py", base.with_suffix(".py")):
        if path.is_file():
            return path
    return None


def _packages_of(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _statements(body: list):
    """Every statement, nested ones included (imports are statements: the expressions
    around them need no visit, which keeps a no-op doit fast)."""
    for node in body:
        yield node
        for field in ("body", "orelse", "finalbody", "handlers"):
            yield from _statements(getattr(node, field, None) or [])
        for case in getattr(node, "cases", None) or []:  # match statements
            yield from _statements(case.body)


@lru_cache(maxsize=None)
def direct_imports(name: str) -> frozenset[str]:
    """kokoro_build modules that module `name` imports anywhere in its source."""
    path = module_file(name)
    if path is None:
        return frozenset()
    is_package = path.name == "__init__.py"
    here = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _statements(ast.parse(path.read_text(), str(path)).body):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = here.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            # `from pkg import name`: name may be a module of pkg
            found |= {f"{base}.{alias.name}" for alias in node.names
                      if module_file(f"{base}.{alias.name}") is not None}
    return frozenset(m for m in found if m != name and module_file(m) is not None)


@lru_cache(maxsize=None)
def module_closure(name: str) -> frozenset[str]:
    """`name` and every kokoro_build module it loads, directly or not."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen or module_file(current) is None:
            continue
        seen.add(current)
        todo += [*_packages_of(current), *direct_imports(current)]
    return frozenset(seen)


def code_files(*modules: str) -> list[str]:
    """The source files of `modules` and all they import, and the files in the `data/`
    folder of any package among them (model/source/data: configs the code reads)."""
    names = set().union(*(module_closure(m) for m in modules)) if modules else set()
    files = {module_file(n) for n in names}
    for path in list(files):
        data = path.parent / "data"
        if path.name == "__init__.py" and data.is_dir():
            files |= {f for f in data.iterdir() if f.is_file()}
    return sorted(str(f) for f in files)
