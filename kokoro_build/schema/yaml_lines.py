"""Line-aware YAML loading: `yaml.safe_load` semantics plus a map from each
field path to its source line, so config errors can say `file:LINE: field`.

Also rejects what `safe_load` silently accepts but a user never means:
duplicate keys (the last one would win) and tab indentation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

FieldPath = tuple  # of str keys and int list indices


@dataclass
class YamlProblem(Exception):
    """A problem located in a YAML file; `field` is a dotted path or ''."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:"
        text = f"{where} {self.field}: {self.message}" if self.field else f"{where} {self.message}"
        return _one_line(text)


# Characters str.splitlines() breaks on: a key or value holding one must not split
# a `file:line: field: message` line in two (found by the config fuzzer).
_LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


def _one_line(text: str) -> str:
    return text.translate(_LINE_BREAKS)


@dataclass
class LocatedYaml:
    data: Any
    lines: dict[FieldPath, int]  # path -> 1-based line of the key (or item)
    file: str
    # path -> the file its line is in, where it is not `file` (a recipe over its base)
    sources: dict[FieldPath, str] = field(default_factory=dict)


class Replace(dict):
    """A mapping tagged `!replace` in a recipe: it replaces the base's mapping instead
    of merging into it (recipes.py). The only tag the loader knows."""


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor("!replace", lambda loader, node: Replace(loader.construct_mapping(node, deep=True)))


def dotted(path: FieldPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_located(path: str | Path, text: str | None = None) -> LocatedYaml:
    """Parse `path` (or `text`, reported as `path`) with line numbers for every field."""
    file = str(path)
    if text is None:
        text = Path(path).read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else 1
        raise YamlProblem(file, line, "", _syntax_message(err, text, line)) from None
    except yaml.reader.ReaderError as err:  # a character YAML refuses (found by the fuzzer)
        line = text.count("\n", 0, max(err.position, 0)) + 1
        raise YamlProblem(file, line, "", f"YAML can't contain the character {chr(err.character)!r} "
                                          f"(#x{err.character:04x})") from None
    except yaml.YAMLError as err:  # anything else the parser raises: still located
        raise YamlProblem(file, 1, "", f"YAML error: {err}") from None
    lines: dict[FieldPath, int] = {}
    if node is not None:
        _walk(node, (), lines, file)
    return LocatedYaml(data, lines, file)


def _syntax_message(err: yaml.MarkedYAMLError, text: str, line: int) -> str:
    source_line = text.splitlines()[line - 1] if 0 < line <= len(text.splitlines()) else ""
    if "\t" in source_line:
        return "YAML syntax error: tab character; indent with spaces"
    problem = err.problem or "invalid YAML"
    return f"YAML syntax error: {problem}"


def _walk(node: yaml.Node, path: FieldPath, lines: dict, file: str) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                raise YamlProblem(file, line, dotted(path + (key,)),
                                  f"duplicate key (first defined on line {seen[key]})")
            seen[key] = line
            lines[path + (key,)] = line
            _walk(value_node, path + (key,), lines, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[path + (index,)] = item.start_mark.line + 1
            _walk(item, path + (index,), lines, file)


def source_of(doc: LocatedYaml, path: FieldPath) -> str:
    """The file the line of `path` (or of its nearest located parent) is in."""
    while path and path not in doc.lines:
        path = path[:-1]
    return doc.sources.get(path, doc.file)


def locate(doc: LocatedYaml, loc: tuple) -> tuple[int, FieldPath]:
    """Map a validator's location to (line, path-in-the-document).

    Validator locations can contain names that are not keys of the document
    (union tags); those are skipped. A trailing unknown name is kept: it is a
    missing field, reported at its parent's line.
    """
    path: FieldPath = ()
    current = doc.data
    for i, part in enumerate(loc):
        if isinstance(current, dict) and part in current:
            path, current = path + (part,), current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            path, current = path + (part,), current[part]
        elif i == len(loc) - 1 and isinstance(part, str):
            return _line_of(doc, path), path + (part,)
    return _line_of(doc, path), path


def _line_of(doc: LocatedYaml, path: FieldPath) -> int:
    while path and path not in doc.lines:
        path = path[:-1]
    return doc.lines.get(path, 1)
