"""Compressed weights: constexpr_* ops expand to dense tensors (iOS16 and iOS18 forms)."""
from __future__ import annotations

import numpy as np
import torch

from kokoro_build.verify.kernels import axis, kernel


def _per_axis(values: torch.Tensor, rank: int, dim: int) -> torch.Tensor:
    """A scalar, or a vector along `dim`, shaped to broadcast against a rank-`rank` tensor."""
    if values.dim() == 0 or values.numel() == 1:
        return values.reshape(())
    shape = [1] * rank
    shape[dim] = -1
    return values.reshape(shape)


def _blockwise(values: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Repeat each entry of a per-block tensor over its block (block = shape / values.shape).
    expand + reshape: one copy (repeat_interleave built an index per dim, and was most of
    a palettized vocoder's evaluator run)."""
    for dim, (full, blocks) in enumerate(zip(shape, values.shape)):
        if blocks != full:
            sizes = list(values.shape)
            values = values.unsqueeze(dim + 1).expand(*sizes[:dim + 1], full // blocks, *sizes[dim + 1:])
            values = values.reshape(*sizes[:dim], full, *sizes[dim + 1:])
    return values


def _block_ids(shape: tuple[int, ...], blocks: tuple[int, ...]) -> torch.Tensor:
    """Each element's flat (row-major) block number, for `shape` cut into `blocks` equal
    blocks per dim: a long tensor of `shape`."""
    ids = torch.zeros((), dtype=torch.long)
    for full, count in zip(shape, blocks):
        ids = ids.unsqueeze(-1) * count + torch.arange(full) // (full // count)
    return ids


@kernel("constexpr_affine_dequantize")
def affine_dequantize(op, a):
    """iOS16: (quantized_data - zero_point) * scale, both scalar or per channel on `axis`."""
    data = a.tensor("quantized_data").to(torch.float32)
    dim = axis(a.int("axis", 0), data.dim())
    zero = _per_axis(a.tensor("zero_point").to(torch.float32), data.dim(), dim)
    return (data - zero) * _per_axis(a.tensor("scale").to(torch.float32), data.dim(), dim)


@kernel("constexpr_blockwise_shift_scale")
def blockwise_shift_scale(op, a):
    """iOS18: (data - offset) * scale, scale/offset per block of the data."""
    data = a.tensor("data").to(torch.float32)
    scale = _blockwise(a.tensor("scale").to(torch.float32), tuple(data.shape))
    if a.has("offset"):
        data = data - _blockwise(a.tensor("offset").to(torch.float32), tuple(data.shape))
    return data * scale


@kernel("constexpr_cast")
def constexpr_cast(op, a):
    return a.tensor("source_val").to(torch.float32)


def unpack_bits(packed: np.ndarray, nbits: int, count: int) -> np.ndarray:
    """Indices packed LSB-first, one byte at a time (coremltools' documented layout)."""
    bits = np.unpackbits(packed.astype(np.uint8), bitorder="little")[: count * nbits]
    weights = (1 << np.arange(nbits)).astype(np.int64)
    return bits.reshape(count, nbits).astype(np.int64) @ weights


@kernel("constexpr_lut_to_dense")
def lut_to_dense(op, a):
    lut = a.tensor("lut").to(torch.float32)
    if a.has("shape"):  # iOS16: one LUT, packed indices, explicit shape
        shape = a.ints("shape")
        nbits = int(np.log2(lut.numel()))
        indices = unpack_bits(np.asarray(a.tensor("indices")), nbits, int(np.prod(shape)))
        return lut.reshape(-1)[torch.from_numpy(indices)].reshape(shape)
    # iOS18: unpacked indices; a LUT of [palettes, vector size] per block of the indices.
    # A vector entry fills `vector size` neighbours along `vector_axis` (index i gives
    # outputs i*V .. i*V+V-1 there; coremltools' op doc, iOS18 constexpr_lut_to_dense)
    indices = a.tensor("indices").to(torch.long)
    rank = indices.dim()
    palettes, vector = lut.shape[rank], lut.shape[rank + 1]
    # each element reads its own block's palette: [blocks, palettes, vector][block, index]
    # (not the palettes repeated over every element: that copy was most of the run)
    blocks = tuple(lut.shape[:rank])
    table = lut.reshape(-1, palettes, vector)
    picked = (table[0][indices] if table.shape[0] == 1 else
              table[_block_ids(tuple(indices.shape), blocks), indices])  # [*indices.shape, vector]
    if vector == 1:
        return picked.squeeze(-1)
    vector_axis = axis(a.int("vector_axis", 0), rank)
    shape = list(indices.shape)
    shape[vector_axis] *= vector
    return picked.movedim(-1, vector_axis + 1).reshape(shape)


@kernel("constexpr_sparse_to_dense")
def sparse_to_dense(op, a):
    values = a.tensor("nonzero_data").to(torch.float32)
    mask = np.asarray(a.tensor("mask"))
    if a.has("shape"):  # iOS16: a packed bit mask and an explicit shape
        shape = a.ints("shape")
        keep = np.unpackbits(mask.astype(np.uint8), bitorder="little")[: int(np.prod(shape))] != 0
    else:  # iOS18: a 0/1 mask shaped as the output
        shape, keep = list(mask.shape), mask.reshape(-1) != 0
    dense = torch.zeros(int(np.prod(shape)), dtype=values.dtype)
    dense[torch.from_numpy(keep)] = values
    return dense.reshape(shape)
