"""Activation quantization (iOS17 `quantize` / `dequantize`), as coremltools inserts it
for W8A8: q = clip(round(x / scale) + zero_point) as int8/uint8; x = (q - zero_point) * scale.
Scale and zero point are scalars, or vectors along `axis`."""
from __future__ import annotations

import torch

from kokoro_build.verify.kernels import MilEvalError, axis, kernel
from kokoro_build.verify.kernels.compressed import _per_axis

RANGES = {"int8": (-128, 127, torch.int8), "uint8": (0, 255, torch.uint8)}


def _scale_and_zero(a, x: torch.Tensor):
    dim = axis(a.int("axis", 0), x.dim())
    scale = _per_axis(a.tensor("scale").to(torch.float32), x.dim(), dim)
    zero = _per_axis(a.tensor("zero_point").to(torch.float32), x.dim(), dim) if a.has("zero_point") else 0.0
    return scale, zero


@kernel("quantize")
def quantize(op, a):
    x = a.tensor("input").to(torch.float32)
    dtype = a.str("output_dtype")
    if dtype not in RANGES:
        raise MilEvalError(f"quantize {op.name}: output_dtype {dtype!r} is not int8 or uint8")
    low, high, torch_dtype = RANGES[dtype]
    scale, zero = _scale_and_zero(a, x)
    return (torch.round(x / scale) + zero).clamp(low, high).to(torch_dtype)  # round: half to even


@kernel("dequantize")
def dequantize(op, a):
    q = a.tensor("input").to(torch.float32)
    scale, zero = _scale_and_zero(a, q)
    return (q - zero) * scale
