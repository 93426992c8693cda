"""Helpers passes share to rewrite modules without editing kokoro's source."""
from __future__ import annotations

from typing import Callable

_SUBCLASSES: dict[tuple[type, str], type] = {}


def swap_forward(module, class_name: str, forward: Callable, tag: str) -> int:
    """Give every submodule of class `class_name` a new `forward`.

    The instance's class is swapped for a cached subclass (named with `tag`)
    that overrides `forward`; weights and submodules stay as they are, and
    deepcopy, tracing and pickling keep working. Returns the count changed.
    """
    sites = 0
    for child in module.modules():
        base = type(child)
        if base.__name__ != class_name:
            continue
        key = (base, tag)
        if key not in _SUBCLASSES:
            _SUBCLASSES[key] = type(f"{tag}{base.__name__}", (base,), {"forward": forward})
        child.__class__ = _SUBCLASSES[key]
        sites += 1
    return sites
