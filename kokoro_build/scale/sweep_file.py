"""A sweep file: many variants of one pipeline, as overlays on it.

    name: vocoder-bits                 # the variants are named vocoder-bits-<label>
    base: ../../pipeline.yaml          # a pipeline or recipe file, relative to this file
    grid:                              # dotted config path -> values: the cross product
      stages.vocoder.compress.palettize.nbits: [8, 6, 4]
    variants:                          # named overlay fragments, dotted or nested
      - name: short                    #   (with a grid: each variant times each grid point)
        stages.vocoder.shapes.frames.buckets: [112, 280]
    tasks: [manifest]                  # the doit tasks to build (default: the default tasks)

Problems are reported as the pipeline file's are: `FILE:LINE: field: message`
(ConfigError of YamlProblems), all of them at once.
"""
from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kokoro_build.schema.config import ConfigError, load_config
from kokoro_build.schema.yaml_lines import LocatedYaml, Replace, YamlProblem, dotted, load_located, locate

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # as a pipeline's name
MAX_NAME = 64
KEY = re.compile(r"^[A-Za-z0-9_:.-]+$")  # a dotted path's part: a config key, a pass id, an op name
TOP_KEYS = ("name", "description", "base", "grid", "variants", "tasks")


@dataclass(frozen=True)
class Variant:
    name: str                          # <sweep name>-<label>: the variant's artifacts/<name>/
    label: str
    overlay: dict                      # nested, as a recipe file gives it
    settings: dict[str, Any]           # dotted path -> value: what this variant sets
    lines: dict[str, int] = field(default_factory=dict)  # dotted path -> its line in the sweep file
    named: str | None = None           # the `variants:` entry it comes from
    grid: dict[str, Any] = field(default_factory=dict)  # dotted path -> the grid's value here

    def describe(self) -> str:
        """Its named entry, and each grid setting."""
        parts = ([self.named] if self.named else []) + [f"{k}={_flow(v)}" for k, v in self.grid.items()]
        return ", ".join(parts) or "the base as it is"


def _flow(value: Any) -> str:
    """A value as YAML flow text: `null`, `[112, 280]`, `{linear: {}}`."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(map(_flow, value)) + "]"
    if value is None:
        return "null"
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class Sweep:
    file: Path
    name: str
    base: Path
    description: str | None
    tasks: tuple[str, ...]
    variants: tuple[Variant, ...]

    def origin(self, variant: Variant, dotted_field: str) -> int | None:
        """The sweep file's line that set `dotted_field` (or a map holding it) in `variant`."""
        hits = [path for path in variant.lines if dotted_field == path or dotted_field.startswith(path + ".")
                or path.startswith(dotted_field + ".")]
        return variant.lines[max(hits, key=len)] if hits else None


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file, and its base (load_config); raise ConfigError."""
    path = Path(path)
    try:
        doc = load_located(path)
    except YamlProblem as problem:
        raise ConfigError([problem]) from None
    except OSError as error:
        raise ConfigError([YamlProblem(str(path), 0, "", f"cannot read: {error.strerror}")]) from None
    problems: list[YamlProblem] = []
    sweep = _parse(doc, path, problems)
    if problems:
        raise ConfigError(problems)
    load_config(sweep.base)  # a broken base breaks every variant: say so once, located in it
    return sweep


def _parse(doc: LocatedYaml, path: Path, problems: list[YamlProblem]) -> Sweep | None:
    def problem(where: tuple, message: str) -> None:
        problems.append(YamlProblem(str(path), locate(doc, where)[0], dotted(where), message))

    data = doc.data
    if not isinstance(data, dict):
        problem((), "expected a mapping (name, base, grid and/or variants)")
        return None
    for key in data:
        if key not in TOP_KEYS:
            problem((key,), f"unknown key (a sweep file has {', '.join(TOP_KEYS)})")
    name = data.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        problem(("name",), "give the sweep a name of letters, digits, '_', '.' and '-' (its variants' prefix)")
    base = _base(data.get("base"), path, lambda message: problem(("base",), message))
    description = data.get("description")
    if description is not None and not isinstance(description, str):
        problem(("description",), "must be one line of text")
    tasks = data.get("tasks", [])
    if not isinstance(tasks, list) or not all(isinstance(t, str) and t.strip() for t in tasks):
        problem(("tasks",), "must be a list of doit task names, e.g. [manifest]")
        tasks = []
    if "grid" not in data and "variants" not in data:
        problem((), "give a grid (dotted path: [values]) and/or variants (a list of named overlays)")
    axes = _grid(data.get("grid", {}), doc, problem)
    named = _named(data.get("variants"), doc, problem) if "variants" in data else [(None, {}, {}, None)]
    if problems:
        return None
    variants = _expand(name, named, axes, lambda i, message: problem(("variants", i), message))
    return Sweep(path, name, base, description, tuple(tasks), tuple(variants))


def _base(value: Any, path: Path, problem) -> Path | None:
    if not isinstance(value, str) or not value.strip():
        problem("give the pipeline or recipe file the variants extend, relative to this file")
        return None
    base = (path.parent / value).resolve()
    if not base.is_file():
        problem(f"no such file: {base}")
        return None
    return base


def _parts(dotted_path: Any) -> tuple[str, ...] | None:
    parts = tuple(dotted_path.split(".")) if isinstance(dotted_path, str) else ()
    return parts if parts and all(p and KEY.match(p) for p in parts) else None


def _grid(grid: Any, doc: LocatedYaml, problem) -> list[tuple[tuple[str, ...], list, int]]:
    """[(path parts, values, line)] of a grid, in the file's order."""
    if not isinstance(grid, dict):
        problem(("grid",), "must map dotted config paths to lists of values")
        return []
    axes = []
    for key, values in grid.items():
        parts = _parts(key)
        if parts is None:
            problem(("grid", key), "not a dotted config path (e.g. stages.vocoder.compress.palettize.nbits)")
        elif not isinstance(values, list) or not values:
            problem(("grid", key), "give a list of at least one value")
        elif any(_nested(parts, other) for other, _, _ in axes):
            other = next(o for o, _, _ in axes if _nested(parts, o))
            problem(("grid", key), f"sets what the grid's {'.'.join(other)} also sets")
        else:
            axes.append((parts, values, doc.lines.get(("grid", key), 1)))
    return axes


def _nested(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """One path is the other or inside it."""
    return a[:len(b)] == b or b[:len(a)] == a


def _named(items: Any, doc: LocatedYaml, problem) -> list[tuple[str | None, dict, dict, int | None]]:
    """[(name, nested overlay, {dotted path: line}, index)]."""
    if not isinstance(items, list) or not items:
        problem(("variants",), "must be a list of mappings, each with a name")
        return []
    named, seen = [], {}
    for i, item in enumerate(items):
        where = ("variants", i)
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not NAME.match(item["name"]):
            problem(where + (("name",) if isinstance(item, dict) else ()),
                    "each variant is a mapping with a name of letters, digits, '_', '.' and '-'")
            continue
        if item["name"] in seen:
            problem(where + ("name",), f"duplicate variant name (also variants[{seen[item['name']]}])")
        seen[item["name"]] = i
        overlay, lines = {}, {}
        for key, value in item.items():
            parts = _parts(key) if key != "name" else None
            if key == "name":
                continue
            if parts is None:
                problem(where + (key,), "not a config key or dotted config path")
            elif set_path(overlay, parts, value) is not None:
                problem(where + (key,), f"sets {'.'.join(parts)} twice (dotted and nested)")
            else:
                for sub in _leaf_paths(parts, value):
                    lines[sub] = doc.lines.get(where + (key,), 1)
        named.append((item["name"], overlay, lines, i))
    return named


def _leaf_paths(parts: tuple[str, ...], value: Any) -> list[str]:
    """The dotted paths a value sets: a plain map's leaves, else the path itself."""
    if isinstance(value, dict) and value and not isinstance(value, Replace):
        return [p for key, sub in value.items() for p in _leaf_paths(parts + (str(key),), sub)]
    return [".".join(parts)]


def set_path(tree: dict, parts: tuple[str, ...], value: Any) -> str | None:
    """Put `value` at `parts` in `tree`, merging plain maps; the path that clashed, if any."""
    node = tree
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict) or isinstance(child, Replace):
            return ".".join(parts[:i + 1])
        node = child
    last = parts[-1]
    if last not in node:
        node[last] = value
        return None
    if isinstance(node[last], dict) and isinstance(value, dict) and \
            not isinstance(node[last], Replace) and not isinstance(value, Replace):
        for key, sub in value.items():
            clash = set_path(node[last], (str(key),), sub)
            if clash is not None:
                return ".".join(parts) + "." + clash
        return None
    return ".".join(parts)


def _expand(name: str, named: list, axes: list, problem) -> list[Variant]:
    """Every named variant times every grid point, in the file's order."""
    labels = _axis_labels([parts for parts, _, _ in axes])
    variants, used = [], set()
    for (variant_name, overlay, lines, index), point in itertools.product(
            named, itertools.product(*(values for _, values, _ in axes))):
        tree = copy_tree(overlay)
        grid = {".".join(parts): value for (parts, _, _), value in zip(axes, point)}
        for (parts, _, _), value in zip(axes, point):
            clash = set_path(tree, parts, value)
            if clash is not None:
                problem(index, f"sets {clash}, which the grid's {'.'.join(parts)} also sets")
                return []
        label = "-".join(([variant_name] if variant_name else []) +
                         [_value_label(axis, value) for axis, value in zip(labels, point)]) or "base"
        label = _unique(label, used)
        settings = {**{path: _value_at(overlay, path) for path in lines}, **grid}
        grid_lines = {".".join(parts): line for parts, _, line in axes}
        variants.append(Variant(_full_name(name, label), label, tree, settings, {**lines, **grid_lines},
                                variant_name, grid))
    return variants


def copy_tree(tree: Any) -> Any:
    if isinstance(tree, dict):
        return type(tree)({k: copy_tree(v) for k, v in tree.items()})
    return list(map(copy_tree, tree)) if isinstance(tree, list) else tree


def _value_at(tree: dict, dotted_path: str) -> Any:
    for part in dotted_path.split("."):
        tree = tree[part]
    return tree


def _axis_labels(paths: list[tuple[str, ...]]) -> list[str]:
    """Each axis by its last key; where two end alike, with the first key that tells them apart."""
    labels = []
    for parts in paths:
        alike = [p for p in paths if p != parts and p[-1] == parts[-1]]
        differ = next((part for i, part in enumerate(parts[:-1])
                       if any(i >= len(p) - 1 or p[i] != part for p in alike)), None) if alike else None
        labels.append(f"{differ}.{parts[-1]}" if differ else parts[-1])
    return labels


def _value_label(axis: str, value: Any) -> str:
    text = _plain_label(value)
    return f"{axis}{text}" if text[:1].isdigit() else f"{axis}_{text}"


def _plain_label(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "_".join(_plain_label(v) for v in value) or "empty"
    if isinstance(value, dict):
        return "+".join(str(k) for k in value) or "empty"
    return re.sub(r"[^A-Za-z0-9_.]+", "_", str(value)).strip("_.") or "x"


def _unique(label: str, used: set) -> str:
    candidate, n = label, 2
    while candidate in used:
        candidate, n = f"{label}-{n}", n + 1
    used.add(candidate)
    return candidate


def _full_name(sweep: str, label: str) -> str:
    name = f"{sweep}-{label}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:MAX_NAME - 9]}-{digest}"
