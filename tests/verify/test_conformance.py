"""A fast subset of the conformance run (benchmarks/mil_conformance.py): coremltools'
own op tests, with our evaluator making the prediction, for op types our artifacts use.
The whole table is in BENCHMARKS.md."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

# (test file under coremltools/converters/mil/mil/ops/tests, -k expression, op types it must cover)
SUBSET = [
    ("iOS14/test_activation.py", "TestGeLU or TestLeakyReLU or TestSiLU or TestELU or TestReLU or TestSoftmax",
     {"gelu", "leaky_relu", "silu", "elu", "relu", "softmax"}),
    # conv1d as the Kokoro graphs use it; its fp16 stress cases expect values their own
    # fp16-stored weights can't give, and must be told apart as off-expectation
    ("iOS14/test_conv.py", "stress and conv1d and mlprogram", {"conv", "conv_transpose"}),
    ("iOS14/test_image_resizing.py", "TestUpsampleBilinear and smoke", {"upsample_bilinear"}),
]


@pytest.mark.parametrize("path, keyword, covers", SUBSET, ids=[s[0] for s in SUBSET])
def test_the_evaluator_agrees_with_coremltools_op_tests(path, keyword, covers):
    import mil_conformance
    rows = {r["op"]: r for r in mil_conformance.run([str(mil_conformance.coremltools_tests() / path)], keyword)}
    overall = rows.pop("all cases")
    assert overall["cases"] > 0 and covers <= rows.keys(), rows.keys()
    wrong = {op: r for op, r in rows.items() if r["wrong"] or r["error"]}
    assert not wrong, wrong
    assert overall["right"] > overall["off-expectation"]


def test_off_expectation_needs_ours_to_match_float64_on_the_stored_values():
    """The classifier can't hide a wrong kernel: only an output within an ulp of float64
    arithmetic on the stored fp16 weights counts, and only when the expectation misses it."""
    import numpy as np
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    import mil_conformance
    weight = np.random.default_rng(0).standard_normal((2, 1, 3)).astype(np.float16)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 1, 8), dtype=types.fp16)])
    def program(x):
        return mb.conv(x=x, weight=weight, pad_type="custom", pad=[1, 1], strides=[1], dilations=[1])

    feed = {"x": np.linspace(-1, 1, 8, dtype=np.float32).reshape(1, 1, 8)}
    from stored_reference import stored_value_reference
    reference = stored_value_reference(program, feed)
    exact = np.stack([np.convolve(np.pad(feed["x"][0, 0].astype(np.float16).astype(np.float64), 1),
                                  weight[c, 0, ::-1].astype(np.float64), mode="valid") for c in range(2)])[None]
    assert reference.dtype == np.float16 and np.array_equal(reference, exact.astype(np.float16))
    tolerance = {"atol": 1e-4, "rtol": 1e-5}
    ours = reference.astype(np.float32)
    off = mil_conformance._off_expectation
    assert off(program, feed, ours, ours + 0.01, **tolerance)  # ours right, the case's expectation off
    assert not off(program, feed, ours, ours, **tolerance)  # nothing to explain
    assert not off(program, feed, ours + 0.01, ours + 0.02, **tolerance)  # ours wrong too
