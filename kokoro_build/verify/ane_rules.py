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


# --- Predicted placement: whole-function rules on top of the per-op verdicts ----------
# Per-op eligibility tracks Core ML's own `operationsSupportingANE`, but "supported" is
# not "placed": Core ML may still prefer the CPU or GPU for a whole function (Apple
# Developer Forums thread 740317: every op supported by the ANE, the device still
# prefers the GPU / CPU). These rules predict where the ops go; a measurement
# (compute-plan on a Mac, or an ingested device report) always overrides them.

FORUM_SUPPORTED_NOT_PLACED = ("developer.apple.com/forums/thread/740317: every op listed as ANE-supported, "
                              "yet the device preferred the GPU (all) or the CPU (cpu_and_ne)")
RANGE_SOURCES = (
    "apple/coremltools #1764: a flexible-shape model ran on the CPU only, the same model "
    "with a fixed shape on the GPU/ANE; #1029: Xcode reports 'MLE5Engine is not currently "
    "supported for models with range shape inputs that try to utilize the Neural Engine'; "
    "#2370: RangeDim at random shapes 0 % ANE; FluidAudio "
    "Documentation/TTS/Measurements/KokoroV3/compute-placement.json: 0 ops preferred on "
    "the ANE for its RangeDim Albert, PostAlbert and Alignment stages")
RANGE_DISAGREEMENT = (
    "sources disagree at the default shape: #2370 measured 78 % ANE for RangeDim fed its "
    "default shape and #1909 saw a RangeDim model use the ANE; FluidAudio's ANE profiler "
    "(Documentation/ANE_Profiler.md, M5) reports Albert 94 %, against 0 ops in its own "
    "compute plan (different shapes or OS versions, probably)")
# At the default shape a compute plan is made for, the sources split by what the graph
# holds: laishere's vocoder, five RangeDim inputs and only shape-agnostic ops (convs,
# elementwise, a constant-index slice), had 648 ops preferred on the ANE (FluidAudio
# compute-placement.json, base/KokoroVocoder; laishere/kokoro-coreml convert.py gives
# its inputs), and #2370's RangeDim image model ran 78 % on the ANE at its default
# shape; while laishere's RangeDim Albert (positions from `arange(seq_length)`: a
# `shape` op), Alignment (a slice to a computed frame count), PostAlbert and Prosody
# (LSTMs over the range-shaped length) had 0 ops there. Fitted on these few published
# points: a hypothesis, not an Apple rule (benchmarks/ane_agreement.py checks it).
RANGE_BLOCKING_OPS = frozenset({"shape", "lstm", "gru", "rnn"})
RANGE_DEFAULT_SHAPE = (
    "at its default shape a range-shaped graph with no shape op and no recurrence is "
    "placed per op: FluidAudio compute-placement.json base/KokoroVocoder (laishere's "
    "RangeDim vocoder) 648 ops preferred on the ANE; apple/coremltools #2370 78 % ANE at "
    "the default shape (a hypothesis fitted on few published points)")
RANGE_DEFAULT_SHAPE_BLOCKED = (
    "a range-shaped graph that reads its own shape (a `shape` op) or holds a recurrence "
    "(lstm, gru, rnn) stays off the ANE even at its default shape: FluidAudio "
    "compute-placement.json, 0 ops preferred on the ANE for laishere's RangeDim Albert "
    "(positions from its length), Alignment (a slice to a computed length), PostAlbert "
    "and Prosody (LSTMs) (a hypothesis fitted on few published points)")
ENUMERATED_SOURCES = (
    "apple/coremltools #2370: EnumeratedShapes 77 % ANE at the default shape, 71 % (one run "
    "2 %) at random listed shapes; #835 (iOS 13, A12X): only the default shape ran on the ANE")
ENUMERATED_LAYER_NORM = ("apple/coremltools #1909: layer_norm kept an EnumeratedShapes model off the "
                         "ANE (fixed and RangeDim shapes ran on it); closed, the fixing OS version is "
                         "not stated: uncertain")
SEVERAL_RANGE_INPUTS = LAISHERE
HOLLANCE_ISLANDS = ("hollance/neural-engine docs (unofficial): a model that mixes ANE and non-ANE "
                    "layers is split, and each switch between processors costs a copy; the size "
                    "threshold below is this tool's assumption")

# Why an `unknown` op does not split a segment: our unknowns are mostly dilated convs
# (RULE_DILATION) and the source's cumsum/atan; Kokoro's dilated vocoder measured 99 %
# on the ANE on a device (FluidAudio, Documentation/ANE_Profiler.md), so an unknown op
# is predicted to run where its neighbours run rather than to cut the function apart.
UNKNOWN_IN_SEGMENTS = "joins the segment it sits in (its neighbours' device)"

# An ANE run this small between non-ANE ops is predicted to stay on the CPU: the copy
# in and out would cost more than it saves (HOLLANCE_ISLANDS; thresholds assumed).
MIN_ISLAND_OPS = 4
MIN_ISLAND_FLOP_SHARE = 0.01
