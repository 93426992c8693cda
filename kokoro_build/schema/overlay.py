"""Overlays: a pipeline file layered over another with `extends:`.

    extends: ../pipeline.yaml     # a path (relative to this file), or a recipe name:
    extends: ane-chain            #   <this folder>/ane-chain.yaml
    description: one line for `kokoro-build recipes`

The merge: maps merge key by key, recursively; everything else (lists, numbers,
strings, null) replaces; a map tagged `!replace` replaces the base's map whole (a
shape's `buckets` becoming a `range`, a stage's compression method changing). A
recipe that gives no `name` is named after its file. Every field keeps the file and
line it came from, so an error in either layer points at it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from kokoro_build.schema.yaml_lines import FieldPath, LocatedYaml, Replace, YamlProblem, load_located

MAX_DEPTH = 16


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def merge(base: Any, top: Any) -> Any:
    if isinstance(top, Replace) or not (isinstance(base, dict) and isinstance(top, dict)):
        return _plain(top)
    merged = dict(_plain(base))
    for key, value in top.items():
        merged[key] = merge(base[key], value) if key in base else _plain(value)
    return merged


def _paths(data: Any, prefix: FieldPath = ()):
    yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _paths(value, prefix + (index,))


def overlay(base: LocatedYaml, top: LocatedYaml) -> LocatedYaml:
    """`top` merged over `base`; each path located in the layer its value came from."""
    data = merge(base.data, top.data)
    lines, sources = {}, {}
    for path in _paths(data):
        if path in top.lines:
            lines[path] = top.lines[path]
            if top.sources.get(path, top.file) != top.file:
                sources[path] = top.sources[path]
        elif path in base.lines:
            lines[path], sources[path] = base.lines[path], base.sources.get(path, base.file)
    return LocatedYaml(data, lines, top.file, sources)


def _base_path(file: Path, extends: Any, line: int) -> Path:
    if not isinstance(extends, str) or not extends.strip():
        raise YamlProblem(str(file), line, "extends", "give a file (`../pipeline.yaml`) or a recipe name")
    target = file.parent / (extends if extends.endswith((".yaml", ".yml")) else f"{extends}.yaml")
    if not target.is_file():
        raise YamlProblem(str(file), line, "extends", f"no such file: {target}")
    return target


def load_layered(path: str | Path, text: str | None = None, _chain: tuple = ()) -> LocatedYaml:
    """A pipeline file with its `extends:` chain resolved (see the module docstring)."""
    path = Path(path)
    doc = load_located(path, text)
    if not isinstance(doc.data, dict) or "extends" not in doc.data:
        return doc
    line = doc.lines.get(("extends",), 1)
    base_path = _base_path(path, doc.data["extends"], line).resolve()
    if base_path in _chain or base_path == path.resolve() or len(_chain) >= MAX_DEPTH:
        cycle = " -> ".join(p.name for p in (*_chain, path.resolve(), base_path))
        raise YamlProblem(str(path), line, "extends", f"extends itself: {cycle}")
    base = load_layered(base_path, None, (*_chain, path.resolve()))
    if not isinstance(base.data, dict):
        raise YamlProblem(str(base_path), 1, "", "expected a mapping at the top level")
    top = LocatedYaml({k: v for k, v in doc.data.items() if k != "extends"},
                      {p: n for p, n in doc.lines.items() if p[:1] != ("extends",)}, doc.file)
    if "name" not in top.data:  # a recipe is its own variant, not its base's
        top.data["name"], top.lines[("name",)] = path.stem, line
    return overlay(base, top)
