"""The static ANE analyzer's rules: data, each with its source.

Apple publishes no list of what the Neural Engine runs. These rules come from
public reverse-engineering and from ports of this very model; every verdict in a
report names its rule, so a wrong rule is found and changed here.

No size rule: a simple length limit would contradict the on-device measurement of
a Kokoro vocoder at 99 % ANE residency (FluidAudio, Documentation/ANE_Profiler.md), whose
tensors are as long as ours.
"""
from __future__ import annotations

HOLLANCE = "hollance/neural-engine docs/unsupported-layers.md (known not to work: RNN/LSTM/GRU, gather, dilated convolutions; works: upsampling, deconvolution; 'some are guesses')"
GENERAL = "hollance/neural-engine and apple/ml-ane-transformers (unofficial): fp16 only; no LSTM/GRU, gather, custom layers or random ops"
LAISHERE = "laishere/kokoro-coreml: two RangeDim streams merging pushed 141+ ops to the GPU"
PORTS = "john-rocky/CoreML-Models PR #74: Core ML mod gave wrong values"
ASSUMED = "no published source: a conservative assumption of this tool"
COREMLTOOLS_A8 = ("coremltools docs, opt-quantization-perf.html: activation quantization is for models "
                  "running on the Neural Engine, which has int8-int8 compute from A17 Pro / M4 on")

# Verdicts: "ane" eligible, "cpu" runs elsewhere (CPU, or GPU where allowed),
# "unknown" no evidence either way.
# op type -> (verdict, reason, source)
OP_RULES: dict[str, tuple[str, str, str]] = {
    **{op: ("cpu", "recurrent layer (LSTM/GRU/RNN)", HOLLANCE) for op in ("lstm", "gru", "rnn")},
    **{op: ("cpu", "gather (data-dependent indexing)", HOLLANCE)
       for op in ("gather", "gather_nd", "gather_along_axis")},
    **{op: ("cpu", "scatter (data-dependent indexing)", ASSUMED)
       for op in ("scatter", "scatter_nd", "scatter_along_axis")},
    **{op: ("cpu", "random number generation", GENERAL)
       for op in ("random_normal", "random_uniform", "random_bernoulli", "random_categorical")},
    "mod": ("cpu", "mod: wrong values reported from Core ML, keep it off the ANE", PORTS),
    **{op: ("unknown", "data-dependent shape or control flow", ASSUMED)
       for op in ("non_zero", "cond", "while_loop", "shape", "range_1d")},
    **{op: ("unknown", f"{op}: no public evidence either way", ASSUMED)
       for op in ("cumsum", "atan", "acos", "asin", "atanh")},
    # W8A8's activation pairs (compress: activations) go where the int8 compute is
    **{op: ("ane", "activation quantization pair (int8)", COREMLTOOLS_A8) for op in ("quantize", "dequantize")},
}

# Op types the ANE is reported or assumed to run (convolution, matmul, normalization,
# elementwise math, activations, layout): eligible unless a tensor rule below says no.
ANE_OPS = frozenset("""
add sub mul real_div pow maximum minimum equal not_equal greater greater_equal less less_equal
logical_and logical_or logical_not logical_xor select abs exp sqrt rsqrt inverse log floor ceil
round sign sin cos tanh sigmoid relu relu6 leaky_relu gelu silu softplus softmax clip elu
conv conv_transpose linear matmul instance_norm layer_norm batch_norm reduce_sum reduce_mean
reduce_max reduce_min avg_pool max_pool upsample_nearest_neighbor upsample_bilinear concat
split slice_by_index slice_by_size reshape transpose expand_dims squeeze tile pad cast
fill fill_like identity square
""".split())
ANE_OPS_SOURCE = ("hollance/neural-engine (upsampling, deconvolution work) and "
                  "apple/ml-ane-transformers (conv, matmul, layer norm, softmax on the ANE)")

# Tensor checks, after the op-type rule, in this order.
RULE_FP32 = ("cpu", "fp32 compute: the ANE computes in fp16 only", GENERAL)
# Conflicting evidence: hollance lists dilated convolutions as not working ("some are
# guesses"), while Kokoro's vocoder, whose ResBlocks dilate by 3 and 5, measured 99 %
# on the ANE on a device (FluidAudio, Documentation/ANE_Profiler.md).
RULE_DILATION = ("unknown", "dilated convolution: listed as not working by hollance, yet "
                            "Kokoro's vocoder measured 99 % ANE on device", HOLLANCE)
RULE_DYNAMIC = ("unknown", "flexible (RangeDim) shape: the ANE compiles fixed shapes", LAISHERE)
RULE_NO_RULE = ("unknown", "no rule for this op type", ASSUMED)
