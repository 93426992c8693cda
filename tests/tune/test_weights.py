"""A weight compressed the way the compress step would: tune/weights.py against the
package coremltools writes for the same setting."""
import numpy as np
import pytest

from kokoro_build.schema.compress_schema import CompressConfig, LinearQuantization, Palettization
from kokoro_build.targets.coreml.compress import compress_model
from kokoro_build.tune.weights import compressed_value, tunable_weights
from kokoro_build.verify.mil_eval import load_program


def consts(program):
    return {op.name: op for op in program.functions["main"].operations if op.op_type == "const"}


def test_tunable_weights_are_the_weight_ops_consts(small_package):
    package, _, _ = small_package
    weights = tunable_weights(load_program(package).functions["main"], 2048)
    readers = {w.readers for w in weights}
    assert readers == {("conv",), ("conv_transpose",), ("linear",)}  # biases (1-D) are left out
    assert all(w.elements > 2048 for w in weights)
    assert tunable_weights(load_program(package).functions["main"], 10_000) == \
        [w for w in weights if w.elements > 10_000]


@pytest.mark.parametrize("method", [Palettization(nbits=6), Palettization(nbits=2), LinearQuantization()],
                         ids=["pal6", "pal2", "int8"])
def test_compressed_value_is_what_the_compressed_package_decodes(small_package, tmp_path, method):
    """Compress the whole model with coremltools, decode each weight with the evaluator's
    constexpr kernels: equal to compressed_value's, weight by weight (conv_transpose's
    channel axis included)."""
    from kokoro_build.tune.settings import as_weight_method
    from kokoro_build.verify.mil_eval import MilEvaluator
    package, _, model = small_package
    program = load_program(package)
    weights = tunable_weights(program.functions["main"], 2048)
    kind = "palettize" if isinstance(method, Palettization) else "linear"
    block = CompressConfig.model_validate({kind: method.model_dump(), "min_weight_elements": 2048})
    compressed = compress_model(model, block)
    path = tmp_path / "c.mlpackage"
    compressed.save(str(path))
    evaluator = MilEvaluator(path)
    decoded = {}
    for op in evaluator.program.functions["main"].operations:
        if op.op_type.startswith("constexpr_"):
            from kokoro_build.verify.kernels import KERNELS, Args
            value = KERNELS[op.op_type](op, Args(op, lambda var: evaluator._value(var, {}), evaluator, {}))
            # the program types it fp16: the evaluator stores it rounded to half, as a device does
            decoded[op.outputs[0].name] = np.asarray(value, dtype=np.float32).astype(np.float16).astype(np.float32)
    assert len(decoded) == len(weights)
    ops = consts(program)
    for weight in weights:
        value, stored = compressed_value(ops[weight.name], as_weight_method(method).method, 2048)
        match = [v for v in decoded.values() if v.shape == value.shape and np.array_equal(v, value.astype(np.float32))]
        assert match, f"{weight.name}: no decoded constexpr equals the tune's value"
        assert stored < weight.fp16_bytes
