"""The compress block on a small converted model: which ops each method reaches,
overrides by op type and name, metadata kept, output still close."""
import numpy as np
import pytest
import torch
from torch import nn

from kokoro_build.targets.coreml.compress import compress_model
from kokoro_build.schema.compress_schema import CompressConfig

ct = pytest.importorskip("coremltools")


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv1d(64, 64, 3, padding=1)
        self.conv2 = nn.Conv1d(64, 64, 3, padding=1)
        self.proj = nn.Linear(64, 48)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(0.1 * torch.randn(p.shape, generator=g))

    def forward(self, x):
        return self.proj(torch.relu(self.conv2(torch.relu(self.conv(x)))).transpose(1, 2))


@pytest.fixture(scope="module")
def converted():
    example = torch.randn(1, 64, 20, generator=torch.Generator().manual_seed(1))
    traced = torch.jit.trace(Small().eval(), example)
    model = ct.convert(traced, inputs=[ct.TensorType(name="x", shape=(1, 64, 20))],
                       outputs=[ct.TensorType(name="y")], convert_to="mlprogram",
                       minimum_deployment_target=ct.target.iOS17, compute_precision=ct.precision.FLOAT32)
    model.user_defined_metadata["kokoro_build.provenance"] = "{}"
    with torch.no_grad():
        expected = Small().eval()(example).numpy()
    return model, example.numpy(), expected


def ops(model) -> dict[str, int]:
    from kokoro_build.targets.coreml.convert import op_census
    return op_census(model)


def run(model, x, tmp_path):
    from kokoro_build.verify.mil_eval import MilEvaluator
    path = tmp_path / "m.mlpackage"
    model.save(str(path))
    return MilEvaluator(path, "fp32").run({"x": x})["y"]


def test_palettize_everything_big_enough(converted, tmp_path):
    model, x, expected = converted
    out = compress_model(model, CompressConfig.model_validate({"palettize": {"nbits": 6}}))
    assert ops(out).get("constexpr_lut_to_dense") == 3  # two convs and the linear (> 2048 weights)
    assert "kokoro_build.provenance" in out.user_defined_metadata
    assert '"nbits": 6' in out.user_defined_metadata["kokoro_build.targets.coreml.compress"]
    got = run(out, x, tmp_path)
    assert np.corrcoef(got.ravel(), expected.ravel())[0, 1] > 0.999


def test_mixed_methods_and_overrides(converted, tmp_path):
    model, x, expected = converted
    block = CompressConfig.model_validate({
        "palettize": {"nbits": 8}, "op_types": {"linear": {"linear": {}}},
        "op_names": {}, "min_weight_elements": 2048})
    census = ops(compress_model(model, block))
    assert census.get("constexpr_lut_to_dense") == 2 and census.get("constexpr_affine_dequantize") == 1
    # null leaves an op type alone; a high threshold leaves everything alone
    census = ops(compress_model(model, CompressConfig.model_validate(
        {"linear": {}, "op_types": {"conv": None}})))
    assert census.get("constexpr_affine_dequantize") == 1 and "constexpr_lut_to_dense" not in census
    census = ops(compress_model(model, CompressConfig.model_validate(
        {"linear": {}, "min_weight_elements": 100_000})))
    assert not any(op.startswith("constexpr") for op in census)


def test_op_names_reach_one_op(converted):
    model, _, _ = converted
    conv_names = [op.name for op in model._mil_program.functions["main"].operations if op.op_type == "conv"]
    census = ops(compress_model(model, CompressConfig.model_validate(
        {"op_names": {conv_names[0]: {"palettize": {"nbits": 4}}}})))
    assert census.get("constexpr_lut_to_dense") == 1


# -- W8A8's A8: activation quantization from ranges the evaluator recorded ---------

@pytest.fixture(scope="module")
def converted_fp16(converted):
    _, x, expected = converted
    example = torch.from_numpy(x)
    model = ct.convert(torch.jit.trace(Small().eval(), example),
                       inputs=[ct.TensorType(name="x", shape=(1, 64, 20))], outputs=[ct.TensorType(name="y")],
                       convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17)
    return model, x, expected


def calibrated_ranges(model, samples, tmp_path):
    from kokoro_build.verify.mil_eval import MilEvaluator
    from kokoro_build.verify.stats import ActivationStats
    path = tmp_path / "float.mlpackage"
    model.save(str(path))
    evaluator, stats = MilEvaluator(path), ActivationStats(percentiles=())
    for sample in samples:
        evaluator.run({"x": sample}, stats=stats)
    ranges = {var: {"rmin": low, "rmax": high} for var, (low, high) in stats.ranges().items()}
    return ranges, evaluator.program


def test_activations_get_calibrated_quantize_pairs_and_stay_close(converted_fp16, tmp_path):
    model, x, expected = converted_fp16
    samples = [x, 0.5 * x, np.random.default_rng(2).standard_normal(x.shape).astype(np.float32)]
    ranges, program = calibrated_ranges(model, samples, tmp_path)
    assert "x" in ranges  # the function input is calibrated too: the first conv reads it
    block = CompressConfig.model_validate({"linear": {}, "activations": {}})
    out = compress_model(model, block, ranges, program)
    census = ops(out)
    # before each conv and the linear, and after each (the relus are part of the pattern)
    assert census.get("quantize", 0) >= 3 and census.get("dequantize", 0) >= 3
    assert census.get("constexpr_affine_dequantize") == 3  # W8 still applies
    quantize = [op for op in out._mil_program.functions["main"].operations if op.op_type == "quantize"]
    scale = float(quantize[0].inputs["scale"].val)  # x: symmetric int8 over its calibrated range
    assert scale == pytest.approx(max(abs(ranges["x"]["rmin"]), ranges["x"]["rmax"]) / 127, rel=1e-3)
    from kokoro_build.verify.ane import op_verdict
    assert op_verdict(quantize[0])[0] == "ane"  # a rule with a source, not "no rule"
    got = run(out, x, tmp_path)
    assert np.corrcoef(got.ravel(), expected.ravel())[0, 1] > 0.99
    # op_types narrows the pairs to the convs: the linear's input stays float
    convs_only = compress_model(model, CompressConfig.model_validate({"activations": {"op_types": ["conv"]}}),
                                ranges, program)
    assert 0 < ops(convs_only)["quantize"] < census["quantize"]
    with pytest.raises(ValueError, match="needs calibrated ranges"):
        compress_model(model, block)


def test_an_integer_add_is_left_alone():
    """coremltools 9.0 would put a quantize on `ids + 178` (duration's token ids) and
    fail with a KeyError: the op has no calibrated (floating-point) range."""
    from coremltools.converters.mil import Builder as mb

    from kokoro_build.targets.coreml.compress import activation_skips

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 8), dtype=ct.converters.mil.mil.types.int32),
                             mb.TensorSpec(shape=(1, 8))], opset_version=ct.target.iOS17)
    def program(ids, x):
        shifted = mb.add(x=ids, y=178, name="shifted")
        return shifted, mb.add(x=x, y=mb.mul(x=x, y=2.0, name="doubled"), name="summed")

    ranges = {name: {"rmin": -1.0, "rmax": 1.0} for name in ("x", "doubled", "summed")}
    assert activation_skips(program, ranges) == ["shifted"]
    del ranges["doubled"]  # an uncalibrated float input is skipped too, not a KeyError
    assert activation_skips(program, ranges) == ["shifted", "summed"]


def test_an_op_name_the_package_lacks_is_an_error_not_a_silent_fallback(converted, tmp_path):
    from kokoro_build.targets.coreml.compress import _check_op_names
    from kokoro_build.verify.mil_eval import load_program
    model, _, _ = converted
    path = tmp_path / "m.mlpackage"
    model.save(str(path))
    program = load_program(path)
    conv = next(op.name for op in model._mil_program.functions["main"].operations if op.op_type == "conv")
    _check_op_names(CompressConfig.model_validate({"op_names": {conv: {"palettize": {"nbits": 4}}}}), program,
                    str(path), "m")
    with pytest.raises(ValueError, match="op_names: conv_renamed is not an op of m.mlpackage"):
        _check_op_names(CompressConfig.model_validate(
            {"op_names": {conv: None, "conv_renamed": {"palettize": {"nbits": 4}}}}), program, str(path), "m")
