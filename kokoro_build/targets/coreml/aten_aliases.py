"""Converter aliases for aten ops coremltools 9.0 has no converter for.

`istftnet.SineGen` calls `torch.multiply`, which traces to `aten::multiply`;
coremltools 9.0 only knows `mul` (its converter raised on `aten::multiply` here). The alias is registered for one
conversion and removed afterwards, so it never leaks into other conversions.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

DEFAULT_ALIASES = {"multiply": "mul"}


@contextmanager
def torch_op_aliases(aliases: dict[str, str] = DEFAULT_ALIASES) -> Iterator[None]:
    from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY
    table = _TORCH_OPS_REGISTRY.name_to_func_mapping
    added = []
    try:
        for alias, target in aliases.items():
            if alias in table:
                continue  # coremltools learned it; leave theirs alone
            if target not in table:
                raise KeyError(f"cannot alias {alias!r}: coremltools has no {target!r} converter")
            table[alias] = table[target]
            added.append(alias)
        yield
    finally:
        for alias in added:
            table.pop(alias, None)
