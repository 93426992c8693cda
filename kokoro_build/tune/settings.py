"""The compression settings a weight may take in a tune, by label, and which of them
the device-risk lint (verify/lint.py, rules in schema/lint_catalog.py) flags.

Palettes at 8/6/4/2 bits and int8 per channel, as apple/ml-stable-diffusion's
mixed-bit pre-analysis tries 1/2/4/6/8-bit palettes per layer; with an iOS18 /
macOS15 target also 3-bit palettes and grouped-channel palettes (a table per 16
output channels), which coremltools 9.0 writes only for those targets
(compress_schema.py). Beside each data-free palette where bits are scarce (4, 3, 2),
its sensitive k-means twin (`skm`: weighted by calibration data,
targets/coreml/sensitive_palettes.py), which the trials measure on the same inputs.
"""
from __future__ import annotations

from kokoro_build.schema.compress_schema import NEWEST, LinearQuantization, Palettization, WeightMethod

UNCOMPRESSED = "fp16"
_PER_TENSOR = {f"pal{bits}": Palettization(nbits=bits) for bits in (8, 6, 4, 2)}
_LINEAR = {"int8": LinearQuantization(dtype="int8", granularity="per_channel")}
_GROUPED = {f"pal{bits}g16": Palettization(nbits=bits, granularity="per_grouped_channel", group_size=16)
            for bits in (6, 4, 3)}
_SENSITIVE = {f"skm{bits}": Palettization(nbits=bits, mode="sensitive_kmeans") for bits in (4, 2)}
_SENSITIVE_NEWEST = {"skm3": Palettization(nbits=3, mode="sensitive_kmeans"),
                     "skm3g16": Palettization(nbits=3, mode="sensitive_kmeans", granularity="per_grouped_channel",
                                              group_size=16)}


def all_settings(deployment: str) -> dict[str, LinearQuantization | Palettization]:
    settings = {**_PER_TENSOR, **_LINEAR, **_SENSITIVE}
    if deployment in NEWEST:  # 3-bit tables and grouped channels (compress_schema.py)
        settings.update({"pal3": Palettization(nbits=3), **_GROUPED, **_SENSITIVE_NEWEST})
    return settings


def is_sensitive(method) -> bool:
    """Whether the setting needs measured sensitivities (tune/sensitivity.py)."""
    return isinstance(method, Palettization) and method.mode == "sensitive_kmeans"


def as_weight_method(method: LinearQuantization | Palettization) -> WeightMethod:
    return WeightMethod(palettize=method) if isinstance(method, Palettization) else WeightMethod(linear=method)


def device_risk(method, compute_units: str, coremltools_version: str) -> str | None:
    """The lint rule id a package with this setting would be flagged by, or None.
    Mirrors the checks of verify/lint.py on the setting instead of the program."""
    from kokoro_build.verify.lint import ANE_UNITS
    if isinstance(method, Palettization) and method.nbits == 4 and coremltools_version.startswith("9.0"):
        return "palette_4bit_coremltools_9_0"  # apple/coremltools #2716
    if (isinstance(method, LinearQuantization) and method.granularity == "per_block"
            and method.dtype in ("int8", "uint8") and compute_units in ANE_UNITS):
        return "per_block_int8_on_ane"  # apple/coreai-models #279
    return None


def candidate_settings(deployment: str, compute_units: str, coremltools_version: str,
                       allow: frozenset[str] = frozenset()) -> tuple[dict, dict[str, str]]:
    """(label -> method the tuner may choose, label -> lint rule id it left out).
    `allow` names labels or rule ids the user asked for although the lint flags them."""
    chosen, left_out = {}, {}
    for label, method in all_settings(deployment).items():
        risk = device_risk(method, compute_units, coremltools_version)
        if risk is not None and label not in allow and risk not in allow:
            left_out[label] = risk
        else:
            chosen[label] = method
    return chosen, left_out
