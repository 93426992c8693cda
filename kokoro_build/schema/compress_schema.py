"""A stage's `compress:` block: weight compression, and W8A8's activation
quantization, as small YAML, mapped onto coremltools.optimize.coreml by compress.py. Pure description (no coremltools here).

    compress:
      palettize: {nbits: 6}              # or linear: {dtype: int8, granularity: per_channel}
      min_weight_elements: 2048          # smaller constants stay as they are
      op_types: {conv_transpose: {linear: {}}, linear: null}   # null: leave uncompressed
      op_names: {some_op: {palettize: {nbits: 8}}}
      # mode: sensitive_kmeans weights the palette's k-means by calibration data
      activations: {}                    # W8A8's A8: needs the top-level `calibration:` block

Which op a setting reaches: its name, else its type, else the global one (as
coremltools resolves OptimizationConfig). Combinations coremltools 9.0 only takes on a
newer target are refused here, with the field, rather than as a converter traceback:
per-block linear, 4-bit linear and per-grouped-channel palettization need iOS18 /
macOS15 (coremltools optimize/coreml/_quantization_passes.py, checked when compressing).
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

NEWEST = ("iOS18", "macOS15")
# quantize / dequantize, which activation quantization inserts, are iOS17 ops
ACTIVATION_TARGETS = ("iOS17", "iOS18", "macOS14", "macOS15")
# MIL op types that hold compressible weights (what op_types may name)
WEIGHT_OPS = ("conv", "conv_transpose", "linear", "matmul", "lstm", "gather")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LinearQuantization(_Strict):
    """W8 (int8/uint8) or W4 (int4/uint4, iOS18): weights as integers with a scale."""

    dtype: Literal["int8", "uint8", "int4", "uint4"] = "int8"
    mode: Literal["linear_symmetric", "linear"] = "linear_symmetric"
    granularity: Literal["per_tensor", "per_channel", "per_block"] = "per_channel"
    block_size: PositiveInt | None = None  # per_block only (coremltools' default: 32)

    @model_validator(mode="after")
    def _block_size_needs_blocks(self) -> "LinearQuantization":
        if self.block_size is not None and self.granularity != "per_block":
            raise ValueError(f"block_size: only with granularity per_block (this is {self.granularity})")
        return self

    def needs_newest(self) -> str | None:
        if self.granularity == "per_block":
            return "granularity per_block"
        if self.dtype in ("int4", "uint4"):
            return f"dtype {self.dtype}"
        return None


class Palettization(_Strict):
    """A lookup table of 2**nbits values per tensor (or per group of channels)."""

    nbits: Literal[1, 2, 3, 4, 6, 8]  # what coremltools 9.0 palettizes to
    # sensitive_kmeans: k-means weighted by each value's measured effect on the stage's
    # output (the `sensitivity` task, on schema/texts.py's texts; targets/coreml/sensitive_palettes.py)
    mode: Literal["kmeans", "uniform", "sensitive_kmeans"] = "kmeans"
    granularity: Literal["per_tensor", "per_grouped_channel"] = "per_tensor"
    group_size: PositiveInt | None = None  # per_grouped_channel only (coremltools' default: 32)

    @model_validator(mode="after")
    def _group_size_needs_groups(self) -> "Palettization":
        if self.group_size is not None and self.granularity != "per_grouped_channel":
            raise ValueError(f"group_size: only with granularity per_grouped_channel "
                             f"(this is {self.granularity})")
        return self

    def needs_newest(self) -> str | None:
        if self.granularity == "per_grouped_channel":
            return "granularity per_grouped_channel"
        # iOS16's constexpr_lut_to_dense takes tables of 2, 4, 16, 64 or 256 entries
        # (coremltools mil/ops/defs/iOS16/constexpr_ops.py); iOS18's any power of two
        return "nbits 3" if self.nbits == 3 else None


class ActivationQuantization(_Strict):
    """A8: a quantize -> dequantize pair (8 bits, one scale per tensor, from the
    calibration run's ranges) around the inputs and outputs of conv, linear, add and
    pooling ops, the pattern the Neural Engine runs in int8 (targets/coreml/compress.py)."""

    dtype: Literal["int8", "uint8"] = "int8"
    mode: Literal["linear_symmetric", "linear"] = "linear_symmetric"
    # which of those ops get pairs (the int8-int8 compute is in conv and linear; the
    # vocoder's adds carried most of its A8 loss, BENCHMARKS.md)
    op_types: tuple[Literal["conv", "linear", "add", "avg_pool", "max_pool"], ...] = \
        ("conv", "linear", "add", "avg_pool", "max_pool")


class WeightMethod(_Strict):
    """Exactly one method for a group of ops."""

    linear: LinearQuantization | None = None
    palettize: Palettization | None = None

    @model_validator(mode="after")
    def _one(self) -> "WeightMethod":
        given = [m for m in ("linear", "palettize") if getattr(self, m) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of linear, palettize (got {', '.join(given) or 'none'}); "
                             "null leaves these ops uncompressed")
        return self

    @property
    def method(self) -> LinearQuantization | Palettization:
        return self.linear or self.palettize


class CompressConfig(_Strict):
    linear: LinearQuantization | None = None
    palettize: Palettization | None = None
    min_weight_elements: int = Field(2048, ge=0)
    op_types: dict[str, WeightMethod | None] = {}
    op_names: dict[str, WeightMethod | None] = {}
    activations: ActivationQuantization | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "CompressConfig":
        if self.linear is not None and self.palettize is not None:
            raise ValueError("give one of linear, palettize as the stage's method (per-op "
                             "methods go under op_types / op_names)")
        if self.linear is None and self.palettize is None and not self.op_types and not self.op_names \
                and self.activations is None:
            raise ValueError("compresses nothing: give linear, palettize, op_types, op_names or activations")
        unknown = [t for t in self.op_types if t not in WEIGHT_OPS]
        if unknown:
            raise ValueError(f"op_types: {unknown[0]!r} is not an op type with weights; "
                             f"known: {', '.join(WEIGHT_OPS)}")
        return self

    def uses_mode(self, mode: str) -> bool:
        """Whether any of the block's palettes is built in `mode`."""
        return any(isinstance(m, Palettization) and m.mode == mode for _, m in self.methods())

    def methods(self) -> list[tuple[tuple[str, ...], LinearQuantization | Palettization]]:
        """(YAML path, method) for every method the block uses."""
        found = [((kind,), getattr(self, kind)) for kind in ("linear", "palettize") if getattr(self, kind)]
        for scope in ("op_types", "op_names"):
            found += [((scope, name, "linear" if m.linear else "palettize"), m.method)
                      for name, m in getattr(self, scope).items() if m is not None]
        return found

    def target_problem(self, deployment: str) -> str | None:
        """`path: ...: message` (the config locator's convention) if a method needs a
        newer deployment target than `deployment`."""
        if self.activations is not None and deployment not in ACTIVATION_TARGETS:
            return (f"activations: needs deployment iOS17 or macOS14 or newer (its quantize and "
                    f"dequantize ops; this target is {deployment})")
        if deployment in NEWEST:
            return None
        for path, method in self.methods():
            reason = method.needs_newest()
            if reason:
                return (f"{': '.join(path)}: {reason} needs deployment iOS18 or macOS15 "
                        f"(this target is {deployment})")
        return None
