"""Per-op activation statistics over evaluator runs (W8A8 calibration on Linux)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

# torch.quantile takes at most 2**24 elements; larger tensors are strided down.
_QUANTILE_LIMIT = 1 << 24
PERCENTILES = (0.1, 1.0, 99.0, 99.9)


@dataclass
class OutputStats:
    op_type: str
    count: int = 0  # runs recorded
    min: float = float("inf")
    max: float = float("-inf")
    # per percentile: the most extreme value seen over the runs (low ones min, high max)
    percentiles: dict[float, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"op_type": self.op_type, "runs": self.count, "min": self.min, "max": self.max,
                "percentiles": {str(p): v for p, v in self.percentiles.items()}}


class ActivationStats:
    """min / max / percentiles of every floating-point function input and op output,
    by name. `percentiles=()` records min / max only (a quantile per op output doubled
    the vocoder's run time)."""

    def __init__(self, percentiles: tuple[float, ...] = PERCENTILES):
        self.outputs: dict[str, OutputStats] = {}
        self.percentile_points = tuple(percentiles)
        self.runs = 0  # evaluator runs recorded (an op inside a loop records once per iteration)

    def record(self, name: str, op_type: str, value) -> None:
        if not isinstance(value, torch.Tensor) or not value.is_floating_point() or value.numel() == 0:
            return
        entry = self.outputs.setdefault(name, OutputStats(op_type))
        flat = value.reshape(-1)
        entry.count += 1
        entry.min, entry.max = min(entry.min, float(flat.min())), max(entry.max, float(flat.max()))
        if not self.percentile_points:
            return
        sample = flat[:: max(1, flat.numel() // _QUANTILE_LIMIT + 1)] if flat.numel() > _QUANTILE_LIMIT else flat
        values = torch.quantile(sample.float(), torch.tensor([p / 100 for p in self.percentile_points]))
        for p, v in zip(self.percentile_points, values.tolist()):
            old = entry.percentiles.get(p)
            entry.percentiles[p] = v if old is None else (min(old, v) if p < 50 else max(old, v))

    def as_dict(self) -> dict:
        return {name: entry.as_dict() for name, entry in self.outputs.items()}

    def ranges(self) -> dict[str, tuple[float, float]]:
        """{name: (min, max)}: what activation quantization takes."""
        return {name: (entry.min, entry.max) for name, entry in self.outputs.items()}
