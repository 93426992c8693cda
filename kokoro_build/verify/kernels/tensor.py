"""Shape, indexing and reduction MIL ops."""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from kokoro_build.verify.kernels import MilEvalError, axis, kernel

_INT_TYPES = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64")


@kernel("cast")
def cast(op, a):
    x, dtype = a.tensor("x"), a.str("dtype")
    if dtype in _INT_TYPES:
        return x.to(torch.int64)  # float -> int truncates toward zero, as numpy astype
    if dtype == "bool":
        return x != 0
    if dtype in ("fp16", "fp32", "fp64"):
        return x.to(torch.float32)  # the evaluator rounds fp16-typed outputs
    raise ValueError(f"cast to {dtype!r}")


@kernel("shape")
def shape(op, a):
    return torch.tensor(list(a.tensor("x").shape), dtype=torch.int64)


@kernel("reshape")
def reshape(op, a):
    x, target = a.tensor("x"), a.ints("shape")
    if len(target) == x.dim():  # 0 keeps the input's size on that axis
        target = [x.shape[i] if s == 0 else s for i, s in enumerate(target)]
    return x.reshape(target)


@kernel("transpose")
def transpose(op, a):
    return a.tensor("x").permute(a.ints("perm"))


@kernel("expand_dims")
def expand_dims(op, a):
    x, axes = a.tensor("x"), a.ints("axes")
    rank = x.dim() + len(axes)
    for ax in sorted(axis(v, rank) for v in axes):
        x = x.unsqueeze(ax)
    return x


@kernel("squeeze")
def squeeze(op, a):
    x = a.tensor("x")
    axes = a.ints("axes")
    if axes is None:
        return x.squeeze()
    for ax in sorted((axis(v, x.dim()) for v in axes), reverse=True):
        x = x.squeeze(ax)
    return x


def _take(x: torch.Tensor, dim: int, positions: range) -> torch.Tensor:
    if positions.step == 1:
        return x.narrow(dim, positions.start, max(len(positions), 0)) if len(positions) else \
            x.narrow(dim, 0, 0)
    return x.index_select(dim, torch.tensor(list(positions), dtype=torch.long))


@kernel("slice_by_index")
def slice_by_index(op, a):
    x = a.tensor("x")
    rank = x.dim()
    begin, end = a.ints("begin"), a.ints("end")
    stride = a.ints("stride", [1] * rank)
    begin_mask = a.bools("begin_mask", [False] * rank)
    end_mask = a.bools("end_mask", [False] * rank)
    squeeze_mask = a.bools("squeeze_mask", [False] * rank)
    for dim in range(rank):
        if squeeze_mask[dim]:
            positions = range(*slice(begin[dim], None if begin[dim] == -1 else begin[dim] + 1, 1)
                              .indices(x.shape[dim]))
        else:
            s = slice(None if begin_mask[dim] else begin[dim], None if end_mask[dim] else end[dim],
                      stride[dim])
            positions = range(*s.indices(x.shape[dim]))
        x = _take(x, dim, positions)
    for dim in reversed(range(rank)):
        if squeeze_mask[dim]:
            x = x.squeeze(dim)
    return x


@kernel("slice_by_size")
def slice_by_size(op, a):
    x, begin, size = a.tensor("x"), a.ints("begin"), a.ints("size")
    for dim, (b, s) in enumerate(zip(begin, size)):
        x = x.narrow(dim, b, x.shape[dim] - b if s == -1 else s)
    return x


@kernel("concat")
def concat(op, a):
    values = [v if isinstance(v, torch.Tensor) else torch.as_tensor(v) for v in a["values"]]
    if values[0].dim() == 0:  # 0-d values: MIL (and Core ML) gives a vector of them
        values = [v.reshape(1) for v in values]
    dim = axis(a.int("axis"), values[0].dim())
    if a.bool("interleave", False):  # [a0, b0, a1, b1, ...] along the axis
        return torch.stack(values, dim=dim + 1).flatten(dim, dim + 1)
    return torch.cat(values, dim=dim)


@kernel("stack")
def stack(op, a):
    values = [torch.as_tensor(v) for v in a["values"]]
    return torch.stack(values, dim=axis(a.int("axis"), values[0].dim() + 1))


@kernel("split")
def split(op, a):
    x = a.tensor("x")
    dim = axis(a.int("axis"), x.dim())
    sizes = a.ints("split_sizes")
    if sizes is None:
        count = a.int("num_splits")
        sizes = [x.shape[dim] // count] * count
    return tuple(torch.split(x, sizes, dim=dim))


@kernel("tile")
def tile(op, a):
    return a.tensor("x").repeat(a.ints("reps"))


@kernel("reverse")
def reverse(op, a):
    x = a.tensor("x")
    axes = a.ints("axes", list(range(x.dim())))
    return torch.flip(x, [axis(v, x.dim()) for v in axes])


@kernel("select")
def select(op, a):
    return torch.where(a.tensor("cond").to(torch.bool), a.tensor("a"), a.tensor("b"))


@kernel("range_1d")
def range_1d(op, a):
    start, end, step = (a.tensor(n) for n in ("start", "end", "step"))
    if start.is_floating_point() or end.is_floating_point() or step.is_floating_point():
        return torch.arange(float(start), float(end), float(step), dtype=torch.float32)
    return torch.arange(int(start), int(end), int(step), dtype=torch.int64)


@kernel("fill")
def fill(op, a):
    return torch.full(a.ints("shape"), a.float("value", 0.0))


@kernel("fill_like")
def fill_like(op, a):
    return torch.full(tuple(a.tensor("ref_tensor").shape), a.float("value", 0.0))


@kernel("cumsum")
def cumsum(op, a):
    x = a.tensor("x")
    dim = axis(a.int("axis", 0), x.dim())
    if a.bool("reverse", False):
        x = x.flip(dim)
    out = torch.cumsum(x, dim=dim).to(x.dtype)
    if a.bool("exclusive", False):
        out = out - x
    return out.flip(dim) if a.bool("reverse", False) else out


def _in_range(op, indices: torch.Tensor, size: int, dim: int, a) -> torch.Tensor:
    """Negative indices counted from the end (iOS15 gather; iOS17 calls them
    out-of-bound, we keep reading them unless the op asks for `validate_indices`). An
    index outside [-size, size) is refused by name: Core ML raises for it with
    `validate_indices` and leaves it undefined without (coremltools' iOS17
    scatter_gather op docs), and undefined is nothing to verify against."""
    bad = (indices < -size) | (indices >= size)
    if a.has("validate_indices") and a.bool("validate_indices", False):
        bad = bad | (indices < 0)  # iOS17 ops: a negative index is out of bounds, and checked
    if bool(bad.any()):
        raise MilEvalError(f"{op.op_type} {op.name}: index {int(indices[bad][0])} is out of range "
                           f"for axis {dim} of size {size}")
    return torch.where(indices < 0, indices + size, indices)


@kernel("gather")
def gather(op, a):
    x, indices = a.tensor("x"), a.tensor("indices").to(torch.long)
    dim, batch_dims = axis(a.int("axis", 0), x.dim()), a.int("batch_dims", 0)
    indices = _in_range(op, indices, x.shape[dim], dim, a)
    if batch_dims == 0:
        picked = x.index_select(dim, indices.reshape(-1))
        return picked.reshape(*x.shape[:dim], *indices.shape, *x.shape[dim + 1:])
    # batch_dims > 0: the leading dims of x and indices pair up
    return torch.stack([_gather_batched(x[i], indices[i], dim - 1, batch_dims - 1)
                        for i in range(x.shape[0])])


def _gather_batched(x, indices, dim, batch_dims):
    if batch_dims == 0:
        picked = x.index_select(dim, indices.reshape(-1))
        return picked.reshape(*x.shape[:dim], *indices.shape, *x.shape[dim + 1:])
    return torch.stack([_gather_batched(x[i], indices[i], dim - 1, batch_dims - 1)
                        for i in range(x.shape[0])])


@kernel("gather_along_axis")
def gather_along_axis(op, a):
    x, indices = a.tensor("x"), a.tensor("indices").to(torch.long)
    dim = axis(a.int("axis", 0), x.dim())
    return torch.gather(x, dim, _in_range(op, indices, x.shape[dim], dim, a))


@kernel("gather_nd")
def gather_nd(op, a):
    """indices [..., K] address x's first K axes after its `batch_dims` leading ones,
    which x and indices share (iOS17)."""
    x, indices = a.tensor("x"), a.tensor("indices").to(torch.long)

    def pick(x, indices, batch_dims):
        if batch_dims:
            return torch.stack([pick(x[i], indices[i], batch_dims - 1) for i in range(x.shape[0])])
        return x[tuple(_in_range(op, indices[..., k], x.shape[k], k, a) for k in range(indices.shape[-1]))]
    return pick(x, indices, a.int("batch_dims", 0))


@kernel("non_zero")
def non_zero(op, a):
    return torch.nonzero(a.tensor("x"))


@kernel("pad")
def pad(op, a):
    """pad: [begin, end] per padded axis, for the last len(pad) / 2 axes, first to last."""
    x, pads = a.tensor("x"), a.ints("pad")
    mode, value = a.str("mode", "constant"), a.float("constant_val", 0.0)
    pairs = [pads[i:i + 2] for i in range(0, len(pads), 2)]
    while pairs and pairs[0] == [0, 0]:  # leading unpadded axes
        pairs.pop(0)
    if not pairs:
        return x
    torch_pad = [p for pair in reversed(pairs) for p in pair]
    if mode == "constant":
        return F.pad(x, torch_pad, value=value)
    lead = x.shape[: x.dim() - len(pairs)]
    folded = x.reshape(1, -1, *x.shape[x.dim() - len(pairs):])
    out = F.pad(folded, torch_pad, mode={"reflect": "reflect", "replicate": "replicate"}[mode])
    return out.reshape(*lead, *out.shape[2:])


def _reduce(fn):
    def run(op, a):
        x = a.tensor("x")
        axes = a.ints("axes")
        dims = list(range(x.dim())) if axes is None else [axis(v, x.dim()) for v in axes]
        return fn(x, dims, a.bool("keep_dims", False))
    return run


_REDUCTIONS = {
    "reduce_sum": lambda x, d, k: torch.sum(x, d, keepdim=k),
    "reduce_mean": lambda x, d, k: torch.mean(x.float(), d, keepdim=k),
    "reduce_max": lambda x, d, k: torch.amax(x, d, keepdim=k),
    "reduce_min": lambda x, d, k: torch.amin(x, d, keepdim=k),
    "reduce_prod": lambda x, d, k: _prod(x, d, k),
    "reduce_sum_square": lambda x, d, k: torch.sum(x * x, d, keepdim=k),
    "reduce_l1_norm": lambda x, d, k: torch.sum(x.abs(), d, keepdim=k),
    "reduce_l2_norm": lambda x, d, k: torch.sqrt(torch.sum(x * x, d, keepdim=k)),
    "reduce_log_sum": lambda x, d, k: torch.log(torch.sum(x, d, keepdim=k)),
    "reduce_log_sum_exp": lambda x, d, k: torch.logsumexp(x, d, keepdim=k),
}


def _prod(x, dims, keep):
    for d in sorted(dims, reverse=True):
        x = torch.prod(x, d, keepdim=keep)
    return x


for _name, _fn in _REDUCTIONS.items():
    kernel(_name)(_reduce(_fn))


@kernel("reduce_argmax", "reduce_argmin")
def reduce_arg(op, a):
    x = a.tensor("x")
    dim, keep = axis(a.int("axis", -1), x.dim()), a.bool("keep_dims", False)
    fn = torch.argmax if op.op_type == "reduce_argmax" else torch.argmin
    return fn(x, dim=dim, keepdim=keep)


@kernel("const")
def const(op, a):
    """Constants are read from the program on use; this runs only if one is evaluated."""
    return op.outputs[0].val


# scatter's `mode`: how an update combines with the value already there
SCATTER_MODES = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div,
                 "max": torch.maximum, "min": torch.minimum}


def _scatter_inputs(op, a):
    """(a copy of data, updates in its dtype, the combine function of `mode`)."""
    data, updates = a.tensor("data").clone(), a.tensor("updates").to(a.tensor("data").dtype)
    mode = a.str("mode", "update")
    if mode != "update" and mode not in SCATTER_MODES:
        raise MilEvalError(f"{op.op_type} {op.name}: unknown mode {mode!r}")
    return data, updates, (lambda current, update: update) if mode == "update" else SCATTER_MODES[mode]


@kernel("scatter")
def scatter(op, a):
    """output[..., indices[i], ...] = updates[..., i, ...] (mode update), or combined
    with the data there (add, sub, ...). ct.convert emits it for a GRU's per-step
    outputs inside its while_loop."""
    data, updates, combine = _scatter_inputs(op, a)
    dim = axis(a.int("axis", 0), data.dim())
    indices = _in_range(op, a.tensor("indices").to(torch.long).reshape(-1), data.shape[dim], dim, a)
    for i, target in enumerate(indices.tolist()):
        current = data.select(dim, target)
        current.copy_(combine(current, updates.select(dim, i)))
    return data


@kernel("scatter_along_axis")
def scatter_along_axis(op, a):
    """For every position p of indices (shaped as updates): the data at p, with its
    `axis` coordinate replaced by indices[p], combined with updates[p]; in order."""
    data, updates, combine = _scatter_inputs(op, a)
    dim = axis(a.int("axis", 0), data.dim())
    indices = _in_range(op, a.tensor("indices").to(torch.long), data.shape[dim], dim, a)
    for at in itertools.product(*map(range, indices.shape)):
        target = at[:dim] + (int(indices[at]),) + at[dim + 1:]
        data[target] = combine(data[target], updates[at])
    return data


@kernel("scatter_nd")
def scatter_nd(op, a):
    """indices [..., K] address data's first K axes; updates [..., *data.shape[K:]]."""
    data, updates, combine = _scatter_inputs(op, a)
    indices = a.tensor("indices").to(torch.long)
    depth = indices.shape[-1]
    columns = [_in_range(op, indices[..., k], data.shape[k], k, a) for k in range(depth)]
    flat = torch.stack(columns, dim=-1).reshape(-1, depth)
    updates = updates.reshape(flat.shape[0], *data.shape[depth:])
    for i, target in enumerate(flat.tolist()):
        data[tuple(target)] = combine(data[tuple(target)], updates[i])
    return data
