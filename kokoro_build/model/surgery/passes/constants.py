"""Constants the converter mistypes."""
from __future__ import annotations

import math

from kokoro_build.model.surgery.registry import SurgeryPass, register_pass
from kokoro_build.model.surgery.rewrite import swap_forward

_INV_SQRT2 = 1 / math.sqrt(2)


def _forward_with_constant(self, x, s):
    return (self._residual(x, s) + self._shortcut(x)) * _INV_SQRT2


@register_pass("kokoro::constant_rsqrt")
class ConstantRsqrt(SurgeryPass):
    """Before: AdainResBlk1d.forward ends `(res + sc) * torch.rsqrt(torch.tensor(2))`;
    the int64 tensor(2) becomes an int32 const and ct.convert raises on rsqrt.
    After:  `(res + sc) * 0.7071067811865476`, a float constant (the int32 rsqrt made ct.convert raise: coremltools 9.0, seen here)."""

    def apply(self, module) -> int:
        return swap_forward(module, "AdainResBlk1d", _forward_with_constant, "ConstRsqrt")
