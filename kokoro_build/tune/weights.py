"""The weights a tune may compress, and one weight compressed as coremltools would.

A trial must measure what the compress step would write, so the value comes from
coremltools 9.0's own code for the setting: the config (targets/coreml/compress.py's
op_config), its block sizes for this op (optimize/_utils.infer_block_sizes: the
channel axis depends on the consuming op, conv_transpose's is 1), the pass's
blockwise_compress, then its decompress: the dense weight a device decodes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kokoro_build.schema.compress_schema import WEIGHT_OPS, LinearQuantization, Palettization


@dataclass(frozen=True)
class TunableWeight:
    """A const that feeds weight ops; `name` is its MIL op name, which a recipe's
    `compress.op_names` sets it by (coremltools matches a const by its own name)."""
    name: str
    shape: tuple[int, ...]
    readers: tuple[str, ...]  # the op types reading it

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape))

    @property
    def fp16_bytes(self) -> int:
        return 2 * self.elements


def tunable_weights(function, min_weight_elements: int) -> list[TunableWeight]:
    """The consts that the compress step would consider: read by weight ops (conv,
    linear, lstm, ...), of rank 2 or more (coremltools skips 1-D ones, rdar://113860800),
    with more than `min_weight_elements` elements (its weight_threshold)."""
    from kokoro_build.verify.mil_eval import _walk
    found = []
    for op in _walk(function):
        value = op.outputs[0].val if op.op_type == "const" else None
        if not isinstance(value, np.ndarray) or value.dtype.kind != "f" or value.ndim < 2:
            continue
        readers = tuple(child.op_type for child in op.outputs[0].child_ops)
        if readers and all(kind in WEIGHT_OPS for kind in readers) and value.size > min_weight_elements:
            found.append(TunableWeight(op.name, tuple(value.shape), tuple(sorted(set(readers)))))
    return found


def compressed_value(const_op, method: LinearQuantization | Palettization, min_weight_elements: int,
                     sensitivities=None) -> tuple[np.ndarray, int] | None:
    """(the dense values a device decodes, the bytes the compressed form stores), or
    None where coremltools would leave the weight as it is (block sizes that don't
    divide the weight). `sensitivities` (a Sensitivities file): for sensitive_kmeans."""
    from coremltools.optimize import _utils as optimize_utils
    from coremltools.optimize.coreml._quantization_passes import linear_quantize_weights, palettize_weights

    from kokoro_build.targets.coreml.compress import op_config
    from kokoro_build.targets.coreml.sensitive_palettes import SENSITIVE_KMEANS, SensitiveWeights

    weight = const_op.outputs[0].val
    sensitive = SensitiveWeights([const_op], sensitivities) \
        if isinstance(method, Palettization) and method.mode == SENSITIVE_KMEANS else None
    config = op_config(method, min_weight_elements, sensitive)
    block_sizes, channel_axis = optimize_utils.infer_block_sizes(const_op, config, weight, return_channel_axis=True)
    if block_sizes is None:
        return None
    if isinstance(method, Palettization):
        params = palettize_weights.blockwise_compress(
            weight, config.mode, config.nbits, block_sizes, config.lut_function, config.cluster_dim,
            channel_axis=channel_axis)
        if params is None:
            return None
        stored = _packed_bytes(params.indices.size, method.nbits) + params.lut.size * params.lut.itemsize
        return palettize_weights.decompress(params).astype(weight.dtype), stored
    params = linear_quantize_weights.blockwise_compress_by_dtype(weight, config.dtype, config.mode, block_sizes)
    if params is None:
        return None
    bits = int(params.nbits)
    stored = _packed_bytes(params.data.size, bits) + params.scale.size * params.scale.itemsize
    if params.offset is not None:
        stored += _packed_bytes(np.asarray(params.offset).size, bits)
    return linear_quantize_weights.decompress(params).astype(weight.dtype), stored


def _packed_bytes(count: int, bits: int) -> int:
    return (count * bits + 7) // 8
