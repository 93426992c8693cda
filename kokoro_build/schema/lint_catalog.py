"""The device-risk lint's rules as data (torch-free, so `verify.lint.fail_on` is
validated with the rest of pipeline.yaml); their checks are in verify/lint.py.

Each rule is a failure users hit on a device although the package converts, loads
and verifies on Linux, with its public source.
"""
from __future__ import annotations

from typing import NamedTuple

ERROR, WARNING, INFO = "error", "warning", "info"
SEVERITIES = (ERROR, WARNING, INFO)
MAX_ENUMERATED_SHAPES = 120  # apple/coremltools #989


class LintRule(NamedTuple):
    severity: str
    on_device: str  # what happens
    source: str


LINT_RULES: dict[str, LintRule] = {
    "palette_4bit_coremltools_9_0": LintRule(
        ERROR, "a 4-bit palettized model built with coremltools 9.0 crashes after 100-200 predictions",
        "apple/coremltools #2716"),
    "per_block_int8_on_ane": LintRule(
        ERROR, "per-block int8 weights on the Neural Engine give wrong outputs (cosine 0.367 reported)",
        "apple/coreai-models #279"),
    "multifunction_load": LintRule(
        WARNING, "loading one function of a multifunction package has crashed on iOS 18, and memory "
                 "grows with the number of functions",
        "apple/coremltools #2414 (crash on iOS 18), #2351 (memory per function)"),
    "too_many_enumerated_shapes": LintRule(
        ERROR, f"more than about {MAX_ENUMERATED_SHAPES} enumerated shapes fail", "apple/coremltools #989"),
    "enumerated_shapes_on_several_inputs": LintRule(
        WARNING, "enumerated shapes on several inputs fail when the shapes are mixed", "apple/coremltools #2271"),
    "rnn_on_gpu": LintRule(
        ERROR, "LSTM/GRU ops on the GPU abort on macOS 26.5 and later", "FluidInference/FluidAudio #667"),
    "range_streams_on_gpu": LintRule(
        WARNING, "two range-shaped streams in one model pushed 141+ ops to the GPU", "laishere/kokoro-coreml"),
    "fp32_min_constant": LintRule(
        WARNING, "a mask built from torch.finfo(float32).min leaves fp16's range and turns into NaN",
        "apple/coremltools #2669"),
}
