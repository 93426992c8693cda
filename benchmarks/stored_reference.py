"""A float64 reference for conformance cases whose expectation misses our evaluator.

Some of coremltools' op tests compute their expected values from float32 constants, then
store those constants in the program as fp16 (a case's `x_weight_dtype` fp16 at fp32
precision). No runtime that reads the stored program can reach that expectation under
the fp32 tolerance. For a one-op program of the types below, this computes the op in
float64 on the values the program stores, rounded to the op's output type. A case where
our output matches this and the expectation does not is counted as `off-expectation`
(mil_conformance.py), not as a wrong result of ours.

Independent of the evaluator's kernels on purpose: plain torch.nn.functional in float64.
"""
from __future__ import annotations

import numpy as np


def _value(var) -> np.ndarray | None:
    return None if var is None or var.val is None else np.asarray(var.val, np.float64)


def _pads(op, dims: int) -> list[int] | None:
    """[begin0, end0, begin1, end1, ...]; None for a pad type computed from the sizes."""
    pad_type = op.pad_type.val if op.pad_type is not None else "valid"
    if pad_type not in ("custom", "valid"):
        return None
    return [int(p) for p in op.pad.val] if pad_type == "custom" else [0] * 2 * dims


def _conv(op, x):
    import torch
    import torch.nn.functional as F
    dims = x.ndim - 2
    pads = _pads(op, dims)
    if pads is None:
        return None
    # MIL: [begin0, end0, begin1, end1, ...]; F.pad wants the last dimension first
    x = F.pad(torch.from_numpy(x), tuple(p for d in reversed(range(dims)) for p in pads[2 * d:2 * d + 2]))
    bias = _value(op.bias)
    run = (F.conv1d, F.conv2d, F.conv3d)[dims - 1]
    return run(x, torch.from_numpy(_value(op.weight)), None if bias is None else torch.from_numpy(bias),
               stride=tuple(int(s) for s in op.strides.val), dilation=tuple(int(d) for d in op.dilations.val),
               groups=int(op.groups.val)).numpy()


def _conv_transpose(op, x):
    import torch
    import torch.nn.functional as F
    dims = x.ndim - 2
    pads = _pads(op, dims)
    if pads is None:
        return None
    bias = _value(op.bias)
    run = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[dims - 1]
    full = run(torch.from_numpy(x), torch.from_numpy(_value(op.weight)),
               None if bias is None else torch.from_numpy(bias),
               stride=tuple(int(s) for s in op.strides.val), dilation=tuple(int(d) for d in op.dilations.val),
               groups=int(op.groups.val)).numpy()
    crop = tuple([slice(None), slice(None)] + [slice(pads[2 * d], full.shape[2 + d] - pads[2 * d + 1])
                                                for d in range(dims)])
    return full[crop]


def _instance_norm(op, x):
    axes = tuple(range(2, x.ndim))
    mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    gamma, beta = _value(op.gamma), _value(op.beta)
    y = (x - mean) / np.sqrt(var + float(op.epsilon.val))
    return y * (1.0 if gamma is None else gamma.reshape(shape)) + (0.0 if beta is None else beta.reshape(shape))


REFERENCES = {"conv": _conv, "conv_transpose": _conv_transpose, "instance_norm": _instance_norm}


def stored_value_reference(program, feed: dict[str, np.ndarray]) -> np.ndarray | None:
    """The float64 result of a one-op program of a type in REFERENCES, on its stored
    values, rounded to the op's output type; None for any other program."""
    from coremltools.converters.mil.mil import types

    function = program.functions["main"]
    ops = [op for op in function.operations if op.op_type not in ("const", "cast")]
    if len(ops) != 1 or ops[0].op_type not in REFERENCES or len(feed) != 1:
        return None
    op = ops[0]
    x = np.asarray(next(iter(feed.values())))
    x = x.astype(np.float16 if op.x.dtype == types.fp16 else np.float32).astype(np.float64)
    result = REFERENCES[op.op_type](op, x)
    if result is None:
        return None
    return result.astype(np.float16 if op.outputs[0].dtype == types.fp16 else np.float32)
