"""Recipes (overlays on pipeline.yaml in recipes/: schema/overlay.py): their listing,
and what differs between two validated configs."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from kokoro_build.schema.config import ConfigError, load_config
from kokoro_build.schema.yaml_lines import load_located


def list_recipes(folder: str | Path) -> list[tuple[str, str, str | None]]:
    """(name, description, what it extends) of every recipe in `folder`; a file that
    does not load says why in its description."""
    rows = []
    for file in sorted(Path(folder).glob("*.yaml")):
        try:
            config = load_config(file)
        except ConfigError as error:
            rows.append((file.stem, f"(invalid: {str(error).splitlines()[0]})", None))
            continue
        extends = load_located(file).data.get("extends")
        rows.append((config.name, (config.description or "").strip().splitlines()[0] if config.description
                     else "(no description)", extends))
    return rows


def _compact(value: Any) -> Any:
    """Without null fields and empty maps: what a person would have written."""
    if isinstance(value, dict):
        kept = {k: _compact(v) for k, v in value.items() if v is not None}
        return {k: v for k, v in kept.items() if v != {}}
    return value


def _changes(a: Any, b: Any, path: tuple = ()):
    """(path, a, b) for every difference, descending only where both sides are maps."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            yield from _changes(a.get(key, "—"), b.get(key, "—"), path + (key,))
    elif a != b:
        yield path, a, b


def config_diff(a: dict, b: dict) -> dict[str, list[tuple[str, Any, Any]]]:
    """Two validated configs (model_dump) -> {section: [(field, a, b)]} for what
    differs: a section is `stages.<name>` for a stage, else the top-level key; a field
    or stage absent on one side shows as `—`. Nulls are dropped first, so a new
    `compress:` block is one row, not one per null field."""
    sections: dict[str, list[tuple[str, Any, Any]]] = {}
    for path, left, right in _changes(_compact(a), _compact(b)):
        if path[:1] in (("name",), ("description",)):
            continue
        cut = 2 if path[0] == "stages" else 1
        field = ".".join(map(str, path[cut:])) or "(whole)"
        sections.setdefault(".".join(map(str, path[:cut])), []).append((field, left, right))
    return dict(sorted(sections.items()))
