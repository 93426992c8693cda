"""Torch CPU kernels for MIL ops, one per op type, found by name in KERNELS.

A kernel is `fn(op, args) -> tensor | tuple of tensors`. `args` resolves the op's
inputs: tensors for tensor values (floats held as fp32), plain Python for the
constant parameters through args.int / ints / float / bool / str.
Semantics follow the op definitions in coremltools (mil/ops/defs/iOS15..18).
"""
from __future__ import annotations

from typing import Callable

import torch


class MilEvalError(RuntimeError):
    """An artifact the evaluator can't run, with the op and the reason."""


KERNELS: dict[str, Callable] = {}


def kernel(*op_types: str):
    def register(fn):
        for op_type in op_types:
            if op_type in KERNELS:
                raise ValueError(f"a kernel for {op_type} is already registered")
            KERNELS[op_type] = fn
        return fn
    return register


class Args:
    """An op's inputs, resolved on access."""

    def __init__(self, op, resolve: Callable, evaluator=None, scope: dict | None = None):
        self.op, self._resolve, self.evaluator = op, resolve, evaluator
        self.scope = scope if scope is not None else {}  # the values computed so far, by name
        self.read: list = []  # every value handed to the kernel (to tell its outputs apart)

    def has(self, name: str) -> bool:
        return self.op.inputs.get(name) is not None

    def __getitem__(self, name: str):
        var = self.op.inputs.get(name)
        if var is None:
            raise MilEvalError(f"op {self.op.name} ({self.op.op_type}) has no input {name!r}")
        values = [self._resolve(v) for v in var] if isinstance(var, (list, tuple)) else [self._resolve(var)]
        self.read += values
        return values if isinstance(var, (list, tuple)) else values[0]

    def get(self, name: str, default=None):
        return self[name] if self.has(name) else default

    def tensor(self, name: str) -> torch.Tensor:
        value = self[name]
        return value if isinstance(value, torch.Tensor) else torch.as_tensor(value)

    def int(self, name: str, default=None):
        return int(self[name]) if self.has(name) else default

    def ints(self, name: str, default=None):
        if not self.has(name):
            return default
        return [int(v) for v in torch.as_tensor(self[name]).reshape(-1).tolist()]

    def float(self, name: str, default=None):
        return float(self[name]) if self.has(name) else default

    def bool(self, name: str, default=None):
        return bool(self[name]) if self.has(name) else default

    def bools(self, name: str, default=None):
        if not self.has(name):
            return default
        return [bool(v) for v in torch.as_tensor(self[name]).reshape(-1).tolist()]

    def str(self, name: str, default=None):
        if not self.has(name):
            return default
        value = self[name]
        return value.decode() if isinstance(value, bytes) else str(value)


def axis(value: int, rank: int) -> int:
    return value + rank if value < 0 else value


from kokoro_build.verify.kernels import compressed, control, elementwise, nn, quantization, tensor  # noqa: E402,F401  (registers)
