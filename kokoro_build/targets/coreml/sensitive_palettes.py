"""Sensitive k-means palettes: k-means over a weight's values, each value weighted by
how much the stage's output moves when it does (a diagonal-Fisher sensitivity,
tune/sensitivity.py), as SqueezeLLM (arXiv 2306.07629) and coremltools.optimize.torch's
SKMPalettizer do. Measured on the vocoder twin: +3.2 dB SNR at 4 bits and +2.9 dB at 3
bits over data-free k-means, on held-out sentences (BENCHMARKS.md, "Data-aware palettes").

The palettes are written by coremltools' own palettize pass in its "custom" mode, so the
package's constexpr ops, tables and bit packing are exactly those of a data-free
palette. The pass hands its `lut_function` one channel group of a weight at a time,
without saying which weight; so the groups are found beforehand, with the pass's own
splitting (`blockwise_compress` run once over the weight and once over its
sensitivity), and looked up by value.

Sensitivities are stored by the *value* of the MIL const they belong to (its fp16
values): MIL op names are renumbered by graph changes, values are not.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

FORMAT = "kokoro-build-sensitivity/1"
SENSITIVE_KMEANS = "sensitive_kmeans"  # the Palettization mode (compress_schema.py)
# a value no calibration input moved still counts a little: without it, k-means
# could map it anywhere (an element of a weight the calibration texts never reach)
FLOOR = 1e-6


class SensitivityError(ValueError):
    pass


def value_key(array: np.ndarray) -> str:
    """A weight's identity: its fp16 values in order, whatever its shape (a Conv1d's
    weight reaches the program as the same values with a unit axis added)."""
    array = np.ascontiguousarray(np.asarray(array).astype(np.float16))
    return hashlib.sha256(array.tobytes()).hexdigest()


class Sensitivities:
    """A sensitivity file: {value_key(weight): per-element sensitivity}."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self._data = np.load(self.path, allow_pickle=False)
            found = str(self._data["format"]) if "format" in self._data.files else None
        except (OSError, ValueError) as error:
            raise SensitivityError(f"{self.path}: not a sensitivity file ({error})") from None
        if found != FORMAT:
            raise SensitivityError(f"{self.path}: format {found!r}, expected {FORMAT}")
        self.keys = frozenset(self._data.files) - {"format", "key"}

    def has(self, weight: np.ndarray) -> bool:
        return value_key(weight) in self.keys

    def of(self, weight: np.ndarray) -> np.ndarray | None:
        """The weight's sensitivity, in its shape."""
        key = value_key(weight)
        return self._data[key].reshape(weight.shape) if key in self.keys else None


def weighted_palette(values: np.ndarray, weights: np.ndarray, nbits: int) -> tuple[np.ndarray, np.ndarray]:
    """(table of 2**nbits entries in `values`' dtype, uint8 index per element): the
    table minimizing sum(weight * (value - entry)**2). Lloyd's algorithm over the
    distinct values (the Kokoro weights hold few: int8-derived), from k-means++ seeds."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits
    flat = values.reshape(-1)
    distinct, inverse = np.unique(flat.astype(np.float32), return_inverse=True)
    mass = np.bincount(inverse.reshape(-1), weights=weights.reshape(-1).astype(np.float64), minlength=len(distinct))
    entries = 1 << nbits
    if len(distinct) <= entries:  # every value fits: exact
        table = np.concatenate([distinct, np.full(entries - len(distinct), distinct[-1], np.float32)])
        return table.astype(values.dtype), inverse.reshape(-1).astype(np.uint8)
    mass = mass + FLOOR * max(float(mass.mean()), 1e-30)
    # one thread: Lloyd's sums its chunks in thread order, and a package's bytes must
    # not depend on the machine's core count (a release is byte-for-byte reproducible)
    with threadpool_limits(limits=1):
        kmeans = KMeans(n_clusters=entries, n_init=3, random_state=0).fit(distinct[:, None], sample_weight=mass)
    table = kmeans.cluster_centers_[:, 0].astype(np.float32)
    order = np.argsort(table)  # a sorted table: the same palette whatever order k-means found it in
    rank = np.empty_like(order)
    rank[order] = np.arange(entries)
    return table[order].astype(values.dtype), rank[kmeans.labels_][inverse.reshape(-1)].astype(np.uint8)


class SensitiveLut:
    """coremltools' `lut_function` for one palette setting: one channel group's values
    in, its weighted palette out. `groups` maps a group's value_key to its sensitivity;
    a group not in it (no sensitivity was measured for its weight) gets plain k-means,
    and is counted."""

    def __init__(self, nbits: int):
        self.nbits = nbits
        self.groups: dict[str, np.ndarray] = {}
        self.unweighted = 0

    def __call__(self, group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        weights = self.groups.get(value_key(group))  # flattened by weighted_palette: its shape doesn't matter
        if weights is None:
            self.unweighted += 1
            weights = np.ones(group.shape, np.float32)
        return weighted_palette(group, weights, self.nbits)


def channel_groups(const_op, config, sensitivity: np.ndarray) -> dict[str, np.ndarray]:
    """The const's weight and its sensitivity, split into the channel groups the
    palettize pass will make for this config (its own block sizes and splitting):
    {value_key(group of the weight): group of the sensitivity}; {} where the pass would
    leave the weight alone."""
    from coremltools.optimize import _utils as optimize_utils
    from coremltools.optimize.coreml._quantization_passes import palettize_weights
    weight = const_op.outputs[0].val
    block_sizes, axis = optimize_utils.infer_block_sizes(const_op, config, weight, return_channel_axis=True)
    if block_sizes is None:
        return {}
    seen = []

    def record(group):
        seen.append(group)
        return np.zeros(2, group.dtype), np.zeros(group.size, np.uint8)

    for array in (weight, sensitivity.reshape(weight.shape).astype(np.float32)):
        if palettize_weights.blockwise_compress(array, "CUSTOM", None, block_sizes, record,
                                                channel_axis=axis) is None:
            return {}
    half = len(seen) // 2
    return {value_key(group): weights for group, weights in zip(seen[:half], seen[half:])}


class SensitiveWeights:
    """What a compression with sensitive palettes works from: the package's consts
    (MIL const ops) and the measured sensitivities. Keeps the lut_functions it made,
    to report how many groups went unweighted."""

    def __init__(self, const_ops, sensitivities: Sensitivities | None):
        self.const_ops = [op for op in const_ops if _is_weight(op.outputs[0].val)]
        self.sensitivities = sensitivities
        self.luts: list[SensitiveLut] = []
        self._split: dict[tuple, dict[str, np.ndarray]] = {}

    def palettizer_config(self, method, min_weight_elements: int, op_name: str | None = None):
        """coremltools' OpPalettizerConfig for a `sensitive_kmeans` Palettization; for
        the op `op_name` (a const, or the op reading it) only, when given."""
        import coremltools.optimize.coreml as cto
        if self.sensitivities is None:
            raise SensitivityError("palettize mode sensitive_kmeans: no sensitivities were measured for this package")
        lut = SensitiveLut(method.nbits)
        extra = {"group_size": method.group_size} if method.group_size else {}
        config = cto.OpPalettizerConfig(mode="custom", lut_function=lut, granularity=method.granularity,
                                        weight_threshold=min_weight_elements, **extra)
        for op in self.const_ops:
            if op_name is None or op.name == op_name or any(c.name == op_name for c in op.outputs[0].child_ops):
                lut.groups.update(self._groups(op, config, method))
        self.luts.append(lut)
        return config

    def _groups(self, op, config, method) -> dict[str, np.ndarray]:
        """channel_groups, once per weight and grouping (not per bit width)."""
        key = (op.name, method.granularity, method.group_size)
        if key not in self._split:
            sensitivity = self.sensitivities.of(op.outputs[0].val)
            self._split[key] = {} if sensitivity is None else channel_groups(op, config, sensitivity)
        return self._split[key]

    def summary(self) -> dict:
        measured = sum(self.sensitivities.has(op.outputs[0].val) for op in self.const_ops) \
            if self.sensitivities is not None else 0
        return {"sensitivities": self.sensitivities.path.name if self.sensitivities else None,
                "weights_measured": measured, "groups_unweighted": sum(lut.unweighted for lut in self.luts)}


def _is_weight(value) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.ndim >= 2
