"""A lower bound for the memory one function needs on a device: its weights plus the
most activation bytes alive at once while the evaluator runs it.

Why a lower bound: a device also holds the compiled program, its own scratch and
copies between compute units, none of which Linux can see. Users report jetsam kills
of Kokoro on iPhones (mlalma/kokoro-ios #5: 2.29 GB), so the floor is still worth
knowing per artifact.

Counting: each value at its MIL type's width (fp16 2 bytes, int32 4, bool 1), however
the evaluator holds it (fp32, int64); values that share storage (a reshape's view)
once, at the largest; a value is alive from the op that makes it to its last reader
(the evaluator frees it there). A loop's or branch's inner block is not metered.
"""
from __future__ import annotations

from pathlib import Path

import torch


def mil_width(mil_type) -> int:
    """Bytes per element of a MIL (tensor) type."""
    from coremltools.converters.mil.mil import types
    if types.is_tensor(mil_type):
        mil_type = mil_type.get_primitive()
    if mil_type == types.fp64:
        return 4  # Core ML programs compute at fp32 at most
    bits = getattr(mil_type, "get_bitwidth", lambda: 8)()  # bool: one byte
    return max(1, bits // 8)


class ActivationMeter:
    """Pass to MilEvaluator.run(memory=...): `peak_bytes` after the run."""

    def __init__(self):
        self._live: dict[str, tuple[int, int]] = {}  # value name -> (storage, bytes)
        self.peak_bytes = 0

    def hold(self, name: str, value, mil_type) -> None:
        if isinstance(value, torch.Tensor):
            self._live[name] = (value.untyped_storage().data_ptr(), value.numel() * mil_width(mil_type))

    def release(self, name: str) -> None:
        self._live.pop(name, None)

    def settle(self) -> None:
        """After an op's outputs are held: the peak so far."""
        by_storage: dict[int, int] = {}
        for storage, size in self._live.values():
            by_storage[storage] = max(by_storage.get(storage, 0), size)
        self.peak_bytes = max(self.peak_bytes, sum(by_storage.values()))


def weight_bytes(package: str | Path) -> int:
    """The package's weight file (shared by all functions of a multifunction package)."""
    weights = Path(package) / "Data" / "com.apple.CoreML" / "weights"
    return sum(f.stat().st_size for f in weights.rglob("*") if f.is_file()) if weights.is_dir() else 0


def memory_floor(package: str | Path, meter: ActivationMeter) -> dict:
    weights = weight_bytes(package)
    return {"weights_bytes": weights, "peak_activation_bytes": meter.peak_bytes,
            "lower_bound_bytes": weights + meter.peak_bytes}
