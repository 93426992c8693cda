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


# Read in each thread (2026-12); what a thread leaves uncertain is said in the text.
LINT_RULES: dict[str, LintRule] = {
    "palette_4bit_coremltools_9_0": LintRule(
        WARNING, "4-bit k-means palettes built with coremltools 9.0 segfaulted after ~100-200 predictions "
                 "(a stateful model, CPU_AND_NE, macOS 26.5, M5 Max; built with 8.3.0 it ran 250+). A later "
                 "report saw wrong numbers instead, also with 8.3.0: one device, cause unknown",
        "apple/coremltools #2716 (open)"),
    "per_block_int8_on_ane": LintRule(
        ERROR, "per-block 8-bit weights on the Neural Engine gave silently wrong output: cosine 0.367 against "
               "0.999 on the GPU (iPhone 16 Pro Max, iOS 27); 8-bit palettes were fine (0.9975). One report",
        "apple/coreai-models #279 (open)"),
    "multifunction_load": LintRule(
        WARNING, "loading one function of a multifunction package crashed (EXC_BAD_ACCESS) on iOS 18 with "
                 "cpuAndNeuralEngine, for one model of two; memory grows linearly with the number of "
                 "functions, although they share their weights",
        "apple/coremltools #2414 (closed as a Core ML framework bug, not fixed), #2351 (open)"),
    "too_many_enumerated_shapes": LintRule(
        WARNING, f"more than about {MAX_ENUMERATED_SHAPES} enumerated shapes made prediction fail (144 failed; "
                 "a NeuralNetwork model, coremltools 4.0; the thread's own repro failed at 100: uncertain)",
        "apple/coremltools #989 (closed, no cause given)"),
    "enumerated_shapes_on_several_inputs": LintRule(
        INFO, "with enumerated shapes on several inputs, a mixed combination of listed shapes fails in "
              "predict (paired ones work); our inputs share one dimension, so they always pair",
        "apple/coremltools #2271 (open)"),
    "rnn_on_gpu": LintRule(
        ERROR, "an RNN routed to the GPU aborted on the second prediction ('JIT not supported', SIGABRT) on "
               "macOS 26.5 and 26.6 (M5 Pro, Kokoro's prosody LSTM); it ran on an M2",
        "FluidInference/FluidAudio #667 (worked around by keeping the RNN off the GPU)"),
    "range_streams_on_gpu": LintRule(
        WARNING, "two range-shaped streams merging in one model pushed 141+ ops to the GPU", "laishere/kokoro-coreml"),
    "fp32_min_constant": LintRule(
        WARNING, "a constant at torch.finfo(float32).min (an attention mask) is cast to fp16 -inf, and a "
                 "fully masked softmax row then gives NaN",
        "apple/coremltools PR #2669 (merged; the release carrying it is unconfirmed)"),
}
