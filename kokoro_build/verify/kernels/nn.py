"""Layers: convolution, linear algebra, normalization, recurrence, resampling, pooling."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from kokoro_build.verify.kernels import MilEvalError, axis, kernel

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _same_padding(size: int, kernel_size: int, stride: int, dilation: int, lower: bool) -> list[int]:
    """[begin, end] so that the output has ceil(size / stride) steps."""
    effective = (kernel_size - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + effective - size, 0)
    small = total // 2
    return [total - small, small] if lower else [small, total - small]


def _spatial_padding(a, x, weight_sizes, strides, dilations) -> list[list[int]]:
    spatial = x.dim() - 2
    mode = a.str("pad_type", "valid")
    if mode == "valid":
        return [[0, 0]] * spatial
    if mode == "custom":
        pads = a.ints("pad", [0] * 2 * spatial)
        return [pads[2 * i:2 * i + 2] for i in range(spatial)]
    if mode in ("same", "same_lower"):
        return [_same_padding(x.shape[2 + i], weight_sizes[i], strides[i], dilations[i], mode == "same_lower")
                for i in range(spatial)]
    raise MilEvalError(f"conv pad_type {mode!r}")


@kernel("conv")
def conv(op, a):
    x, weight = a.tensor("x"), a.tensor("weight")
    spatial = x.dim() - 2
    strides = a.ints("strides", [1] * spatial)
    dilations = a.ints("dilations", [1] * spatial)
    pads = _spatial_padding(a, x, list(weight.shape[2:]), strides, dilations)
    x = F.pad(x, [p for pair in reversed(pads) for p in pair])
    bias = a.tensor("bias") if a.has("bias") else None
    return _CONV[spatial](x, weight, bias, stride=strides, dilation=dilations, groups=a.int("groups", 1))


@kernel("conv_transpose")
def conv_transpose(op, a):
    """The full transposed convolution, cropped by `pad` (or to `output_shape`)."""
    x, weight = a.tensor("x"), a.tensor("weight")
    spatial = x.dim() - 2
    strides = a.ints("strides", [1] * spatial)
    dilations = a.ints("dilations", [1] * spatial)
    full = _CONV_T[spatial](x, weight, None, stride=strides, dilation=dilations, groups=a.int("groups", 1))
    mode = a.str("pad_type", "valid")
    for i in range(spatial):
        length = full.shape[2 + i]
        if mode == "custom":
            begin, end = a.ints("pad")[2 * i:2 * i + 2]
        elif mode in ("same", "same_lower"):
            total = length - x.shape[2 + i] * strides[i]
            begin = total // 2 if mode == "same" else total - total // 2
            end = total - begin
        else:
            begin, end = 0, 0
        full = full.narrow(2 + i, begin, length - begin - end)
    target = a.ints("output_shape")
    if target is not None:
        for i, size in enumerate(target[-spatial:]):
            have = full.shape[2 + i]
            if have > size:
                full = full.narrow(2 + i, 0, size)
            elif have < size:
                pad = [0, 0] * spatial
                pad[2 * (spatial - 1 - i) + 1] = size - have
                full = F.pad(full, pad)
    if a.has("bias"):
        full = full + a.tensor("bias").reshape(1, -1, *([1] * spatial))
    return full


@kernel("linear")
def linear(op, a):
    return F.linear(a.tensor("x"), a.tensor("weight"), a.tensor("bias") if a.has("bias") else None)


@kernel("matmul")
def matmul(op, a):
    x, y = a.tensor("x"), a.tensor("y")
    if a.bool("transpose_x", False):
        x = x.transpose(-1, -2)
    if a.bool("transpose_y", False):
        y = y.transpose(-1, -2)
    return torch.matmul(x, y)


@kernel("instance_norm")
def instance_norm(op, a):
    x = a.tensor("x")
    dims = list(range(2, x.dim()))
    mean = x.mean(dims, keepdim=True)
    var = ((x - mean) ** 2).mean(dims, keepdim=True)
    out = (x - mean) / torch.sqrt(var + a.float("epsilon", 1e-5))
    return _scale_shift(a, out, (1, -1) + (1,) * len(dims))


@kernel("layer_norm")
def layer_norm(op, a):
    x = a.tensor("x")
    axes = a.ints("axes")
    dims = list(range(x.dim())) if axes is None else sorted(axis(v, x.dim()) for v in axes)
    mean = x.mean(dims, keepdim=True)
    var = ((x - mean) ** 2).mean(dims, keepdim=True)
    out = (x - mean) / torch.sqrt(var + a.float("epsilon", 1e-5))
    return _scale_shift(a, out, [x.shape[d] if d in dims else 1 for d in range(x.dim())])


@kernel("batch_norm")
def batch_norm(op, a):
    x = a.tensor("x")
    shape = (1, -1) + (1,) * (x.dim() - 2)
    out = (x - a.tensor("mean").reshape(shape)) / torch.sqrt(
        a.tensor("variance").reshape(shape) + a.float("epsilon", 1e-5))
    return _scale_shift(a, out, shape)


def _scale_shift(a, out, shape):
    """A normalization's optional gamma and beta, shaped to broadcast."""
    if a.has("gamma"):
        out = out * a.tensor("gamma").reshape(shape)
    if a.has("beta"):
        out = out + a.tensor("beta").reshape(shape)
    return out


def _ifoz_to_ifgo(t: torch.Tensor) -> torch.Tensor:
    """MIL orders LSTM gates input, forget, output, cell (z); torch input, forget, cell, output."""
    i, f, o, z = t.chunk(4, dim=0)
    return torch.cat([i, f, z, o], dim=0)


@kernel("lstm")
def lstm(op, a):
    """One layer, any direction, through torch's fused LSTM (default activations only)."""
    activations = (a.str("recurrent_activation", "sigmoid"), a.str("cell_activation", "tanh"),
                   a.str("activation", "tanh"))
    if activations != ("sigmoid", "tanh", "tanh") or a.has("peephole") or a.get("clip") is not None:
        raise MilEvalError(f"lstm {op.name}: only sigmoid/tanh/tanh without peephole or clip is "
                           f"implemented (got {activations})")
    x = a.tensor("x")  # [seq, batch, input]
    direction = a.str("direction", "forward")
    directions = 2 if direction == "bidirectional" else 1
    hidden = a.tensor("weight_hh").shape[1]
    h0 = a.tensor("initial_h").reshape(x.shape[1], directions, hidden).transpose(0, 1).contiguous()
    c0 = a.tensor("initial_c").reshape(x.shape[1], directions, hidden).transpose(0, 1).contiguous()

    def weights(suffix: str):
        w_ih, w_hh = a.tensor("weight_ih" + suffix), a.tensor("weight_hh" + suffix)
        bias = a.tensor("bias" + suffix) if a.has("bias" + suffix) else torch.zeros(w_ih.shape[0])
        return [_ifoz_to_ifgo(w_ih), _ifoz_to_ifgo(w_hh), _ifoz_to_ifgo(bias), torch.zeros_like(bias)]

    params = weights("") + (weights("_back") if directions == 2 else [])
    if direction == "reverse":
        x = x.flip(0)
    # "reverse" runs the flipped sequence and gives its outputs in that (processing)
    # order, not flipped back: coremltools' own unilstm test expects exactly that
    # (iOS14 test_recurrent.py, TestLSTM.test_builder_to_backend_smoke_unilstm)
    y, h, c = torch.lstm(x, (h0, c0), params, True, 1, 0.0, False, directions == 2, False)
    h_last = h.transpose(0, 1).reshape(x.shape[1], directions * hidden)
    c_last = c.transpose(0, 1).reshape(x.shape[1], directions * hidden)
    if not a.bool("output_sequence", False):
        y = h_last[None]
    return y, h_last, c_last


def _source_positions(out_size: int, in_size: int, align_corners: bool, half_pixel: bool) -> torch.Tensor:
    dst = torch.arange(out_size, dtype=torch.float64)
    if align_corners:
        return dst * ((in_size - 1) / (out_size - 1) if out_size > 1 else 0.0)
    # the grid spacing is input/output size, not 1/scale: the two differ for a scale
    # that doesn't give a whole size (MIL upsample_bilinear doc: spacing = Xin / Xout;
    # coremltools' TestUpsampleBilinear expects [0, .1, .5, .9, 1] for 2 -> 5 at 2.6)
    ratio = in_size / out_size
    src = (dst + 0.5) * ratio - 0.5 if half_pixel else dst * ratio
    return src.clamp(0, in_size - 1)


def _linear_resample(x: torch.Tensor, dim: int, positions: torch.Tensor) -> torch.Tensor:
    low = positions.floor().long().clamp(0, x.shape[dim] - 1)
    high = (low + 1).clamp(max=x.shape[dim] - 1)
    weight = (positions - low.double()).float()
    shape = [1] * x.dim()
    shape[dim] = -1
    weight = weight.reshape(shape)
    return x.index_select(dim, low) * (1 - weight) + x.index_select(dim, high) * weight


@kernel("upsample_bilinear")
def upsample_bilinear(op, a):
    x = a.tensor("x")
    scales = (a.float("scale_factor_height", 1.0), a.float("scale_factor_width", 1.0))
    align_corners = a.bool("align_corners", True)
    half_pixel = a.bool("half_pixel_centers", not align_corners)
    for dim, scale in zip((x.dim() - 2, x.dim() - 1), scales):
        out_size = int(math.floor(x.shape[dim] * scale))
        positions = _source_positions(out_size, x.shape[dim], align_corners, half_pixel)
        x = _linear_resample(x, dim, positions)
    return x


@kernel("upsample_nearest_neighbor")
def upsample_nearest_neighbor(op, a):
    x = a.tensor("x")
    scales = (a.float("scale_factor_height", 1.0), a.float("scale_factor_width", 1.0))
    for dim, scale in zip((x.dim() - 2, x.dim() - 1), scales):
        out_size = int(math.floor(x.shape[dim] * scale))
        # spacing input/output size, as for bilinear: a 3-wide row at scale 1.12 gives
        # 3 outputs that read columns 0, 1, 2 (coremltools' fractional-scale op test)
        source = torch.floor(torch.arange(out_size, dtype=torch.float64) * (x.shape[dim] / out_size)).long()
        x = x.index_select(dim, source.clamp(max=x.shape[dim] - 1))
    return x


def _pool_padding(a, x, kernel_sizes, strides) -> list[list[int]]:
    spatial = x.dim() - 2
    mode = a.str("pad_type", "valid")
    if mode == "custom":
        pads = a.ints("pad", [0] * 2 * spatial)
        return [pads[2 * i:2 * i + 2] for i in range(spatial)]
    if mode in ("same", "same_lower"):
        return [_same_padding(x.shape[2 + i], kernel_sizes[i], strides[i], 1, mode == "same_lower")
                for i in range(spatial)]
    return [[0, 0]] * spatial


@kernel("avg_pool", "max_pool")
def pool(op, a):
    x = a.tensor("x")
    spatial = x.dim() - 2
    kernel_sizes = a.ints("kernel_sizes")
    strides = a.ints("strides", [1] * spatial)
    pads = _pool_padding(a, x, kernel_sizes, strides)
    torch_pad = [p for pair in reversed(pads) for p in pair]
    pool_fn = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d} if op.op_type == "avg_pool" else \
        {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
    ceil = a.bool("ceil_mode", False)
    if op.op_type == "max_pool":
        return pool_fn[spatial](F.pad(x, torch_pad, value=-math.inf), kernel_sizes, strides, ceil_mode=ceil)
    summed = pool_fn[spatial](F.pad(x, torch_pad), kernel_sizes, strides, ceil_mode=ceil)
    if not a.bool("exclude_padding_from_average", False):
        return summed
    ones = F.pad(torch.ones_like(x[:1, :1]), torch_pad)
    share = pool_fn[spatial](ones, kernel_sizes, strides, ceil_mode=ceil)
    return summed / share
