"""The evaluator beyond single kernels: compressed weights, control flow, errors, statistics."""
import numpy as np
import pytest
import torch
import coremltools as ct
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import Function, types

from kokoro_build.verify.kernels import KERNELS, Args, MilEvalError
from kokoro_build.verify.mil_eval import MilEvaluator, _constant
from kokoro_build.verify.stats import ActivationStats

rng = np.random.default_rng(2)


def _expand(make, opset):
    with Function({}, opset_version=opset):
        out = make()
    op = out.op
    got = KERNELS[op.op_type](op, Args(op, lambda var: _constant(var.val)))
    return got.numpy(), np.asarray(op.materialized_val_inference(), np.float32)


@pytest.mark.parametrize("case", ["affine", "lut_ios16", "sparse_ios16", "lut_ios18", "lut_ios18_2d_blocks",
                                  "vector_lut_ios18", "blockwise_ios18"])
def test_compressed_weights_expand_like_coremltools(case):
    q = rng.integers(0, 255, (4, 6)).astype(np.uint8)
    if case == "affine":
        got, expected = _expand(lambda: mb.constexpr_affine_dequantize(
            quantized_data=q, zero_point=np.uint8(128), scale=np.array([0.1, 0.2, 0.3, 0.4], np.float32),
            axis=0), ct.target.iOS16)
    elif case == "lut_ios16":
        from coremltools.optimize._utils import pack_elements_into_bits
        indices = rng.integers(0, 16, 24).astype(np.uint8)
        got, expected = _expand(lambda: mb.constexpr_lut_to_dense(
            indices=pack_elements_into_bits(indices, 4), lut=np.linspace(-1, 1, 16).astype(np.float32),
            shape=np.array([4, 6], np.uint32)), ct.target.iOS16)
    elif case == "sparse_ios16":
        mask = rng.integers(0, 2, 24).astype(np.uint8)
        got, expected = _expand(lambda: mb.constexpr_sparse_to_dense(
            nonzero_data=np.arange(1, mask.sum() + 1, dtype=np.float32), mask=np.packbits(mask, bitorder="little"),
            shape=np.array([4, 6], np.uint32)), ct.target.iOS16)
    elif case == "lut_ios18":
        from coremltools.converters.mil.mil import types
        indices = rng.integers(0, 4, (4, 6)).astype(types.np_uint2_dtype)
        lut = rng.standard_normal((2, 1, 4, 1)).astype(np.float32)  # a LUT per 2 rows
        got, expected = _expand(lambda: mb.constexpr_lut_to_dense(indices=indices, lut=lut), ct.target.iOS18)
    elif case == "lut_ios18_2d_blocks":  # a LUT per 2 rows x 2 columns: block numbers row-major
        from coremltools.converters.mil.mil import types
        indices = rng.integers(0, 4, (4, 6)).astype(types.np_uint2_dtype)
        lut = rng.standard_normal((2, 3, 4, 1)).astype(np.float32)
        got, expected = _expand(lambda: mb.constexpr_lut_to_dense(indices=indices, lut=lut), ct.target.iOS18)
    elif case == "vector_lut_ios18":  # each index gives 3 neighbours along axis 1
        from coremltools.converters.mil.mil import types
        indices = rng.integers(0, 4, (4, 2, 6)).astype(types.np_uint2_dtype)
        lut = rng.standard_normal((2, 1, 1, 4, 3)).astype(np.float32)  # a LUT of vectors per 2 rows
        got, expected = _expand(lambda: mb.constexpr_lut_to_dense(indices=indices, lut=lut, vector_axis=np.int32(1)),
                                ct.target.iOS18)
        assert got.shape == (4, 6, 6)
        np.testing.assert_array_equal(got[3, 3:6, 5], lut[1, 0, 0, int(indices[3, 1, 5])])
    else:
        data = rng.integers(-8, 8, (4, 6)).astype(np.int8)
        scale = rng.random((2, 3)).astype(np.float32)
        offset = rng.integers(-2, 2, (2, 3)).astype(np.int8)
        got, expected = _expand(lambda: mb.constexpr_blockwise_shift_scale(data=data, scale=scale, offset=offset),
                                ct.target.iOS18)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def _run(program, inputs, precision="fp32", **kwargs):
    return MilEvaluator("test.mlpackage", precision, program=program).run(inputs, **kwargs)


def test_cond_takes_the_branch_the_input_selects():
    @mb.program(input_specs=[mb.TensorSpec(shape=(3,))], opset_version=ct.target.iOS17)
    def program(x):
        positive = mb.greater(x=mb.reduce_sum(x=x), y=0.0)
        return mb.cond(pred=positive, _true_fn=lambda: mb.mul(x=x, y=2.0), _false_fn=lambda: mb.sub(x=x, y=1.0))
    assert list(_run(program, {"x": np.array([1, 2, 3], np.float32)}).values())[0].tolist() == [2, 4, 6]
    assert list(_run(program, {"x": np.array([-1, -2, 0], np.float32)}).values())[0].tolist() == [-2, -3, -1]


def test_while_loop_runs_until_its_condition_fails():
    @mb.program(input_specs=[mb.TensorSpec(shape=(1,))], opset_version=ct.target.iOS17)
    def program(x):
        return mb.while_loop(_cond=lambda v, i: mb.less(x=i, y=np.float32(5)),
                             _body=lambda v, i: (mb.mul(x=v, y=2.0), mb.add(x=i, y=np.float32(1))),
                             loop_vars=(x, np.float32(0)))
    values = list(_run(program, {"x": np.array([3.0], np.float32)}).values())
    assert values[0].tolist() == [96.0] and values[1].reshape(-1).tolist() == [5.0], values


def test_an_op_without_kernel_names_the_op_type_and_the_artifact(monkeypatch):
    @mb.program(input_specs=[mb.TensorSpec(shape=(2,))], opset_version=ct.target.iOS17)
    def program(x):
        return mb.sin(x=x)
    monkeypatch.delitem(KERNELS, "sin")
    evaluator = MilEvaluator("vocoder.mlpackage", "fp32", program=program)
    assert evaluator.missing_kernels() == {"sin"}
    with pytest.raises(MilEvalError, match=r"vocoder.mlpackage: no kernel for MIL op type 'sin'"):
        evaluator.run({"x": np.zeros(2, np.float32)})


def test_wrong_input_shape_and_missing_input_are_clear_errors():
    @mb.program(input_specs=[mb.TensorSpec(shape=(2,))], opset_version=ct.target.iOS17)
    def program(x):
        return mb.sin(x=x)
    evaluator = MilEvaluator("a.mlpackage", "fp32", program=program)
    with pytest.raises(MilEvalError, match="input x has shape"):
        evaluator.run({"x": np.zeros(3, np.float32)})
    with pytest.raises(MilEvalError, match="missing input 'x'"):
        evaluator.run({})


def test_activation_statistics_cover_every_float_output():
    @mb.program(input_specs=[mb.TensorSpec(shape=(1000,))], opset_version=ct.target.iOS17)
    def program(x):
        return mb.relu(x=mb.mul(x=x, y=3.0, name="scaled"), name="rectified")
    stats = ActivationStats()
    x = np.linspace(-1, 1, 1000).astype(np.float32)
    _run(program, {"x": x}, stats=stats)
    _run(program, {"x": 2 * x}, stats=stats)
    scaled, rectified = stats.outputs["scaled"], stats.outputs["rectified"]
    assert (scaled.count, scaled.min, scaled.max) == (2, -6.0, 6.0)
    assert stats.runs == 2 and stats.outputs["x"].max == 2.0  # function inputs are recorded too
    assert rectified.min == 0.0 and rectified.percentiles[99.9] == pytest.approx(6.0, rel=0.01)
    assert stats.as_dict()["scaled"]["op_type"] == "mul"


def test_an_output_that_is_not_finite_fails_whatever_its_psnr():
    import torch

    from kokoro_build.verify.task import failures, output_check

    class Stage:
        @staticmethod
        def parity_view(name, value):
            return value

    expected = torch.ones(1, 100)
    got = expected.clone()
    assert output_check(Stage, "x", expected, got, {"min_psnr_db": 35})["passed"]
    got[0, 7] = float("nan")
    check = output_check(Stage, "x", expected, got, {"min_psnr_db": 35})
    assert not check["finite"] and not check["passed"]
    got = expected.clone()
    got[0, 3] = float("inf")
    check = output_check(Stage, "x", expected, got, {"min_psnr_db": -1e9})  # a gate nothing misses
    assert not check["passed"]
    assert failures({"x": check}) == "x is not finite (NaN or inf)"


def test_concat_of_zero_d_values_gives_a_vector_as_core_ml_does():
    """A 0-d input to concat (here a reduce_sum without keep_dims): Core ML runs it; MIL's
    type inference gives shape (2,). torch.cat refuses 0-d tensors."""
    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3))], opset_version=ct.target.iOS17)
    def program(x):
        total = mb.reduce_sum(x=x, keep_dims=False)
        return mb.concat(values=[total, mb.mul(x=total, y=2.0)], axis=0)
    assert program.functions["main"].outputs[0].shape == (2,)
    got = list(_run(program, {"x": np.array([[1, 2, 3]], np.float32)}).values())[0]
    assert got.tolist() == [6.0, 12.0]


@pytest.mark.parametrize("op_type", ["gather", "gather_along_axis", "gather_nd"])
def test_an_out_of_range_index_is_refused_by_name_and_a_negative_one_read_from_the_end(op_type):
    make = {"gather": lambda x, i: mb.gather(x=x, indices=i, axis=1),
            "gather_along_axis": lambda x, i: mb.gather_along_axis(x=x, indices=mb.reshape(x=i, shape=[1, 2]), axis=1),
            "gather_nd": lambda x, i: mb.gather_nd(x=x, indices=mb.reshape(x=i, shape=[2, 1]))}[op_type]
    rows = 1 if op_type != "gather_nd" else 3  # gather_nd indexes axis 0

    @mb.program(input_specs=[mb.TensorSpec(shape=(rows, 3)), mb.TensorSpec(shape=(2,), dtype=types.int32)],
                opset_version=ct.target.iOS16)
    def program(x, i):
        return make(x, i)
    x = np.arange(rows * 3, dtype=np.float32).reshape(rows, 3)
    got = list(_run(program, {"x": x, "i": np.array([-1, 0], np.int32)}).values())[0]
    assert got.reshape(-1)[:1].tolist() == [x.reshape(-1)[2] if op_type != "gather_nd" else x[2, 0]]
    with pytest.raises(MilEvalError, match=rf"{op_type} .*index 3 is out of range for axis \d of size 3"):
        _run(program, {"x": x, "i": np.array([3, 0], np.int32)})


@pytest.mark.parametrize("dtype, width", [("fp32", 4), ("fp16", 2)])
def test_the_memory_meter_counts_the_most_bytes_alive_at_once_at_the_programs_width(dtype, width):
    from coremltools.converters.mil.mil import types

    from kokoro_build.verify.memory import ActivationMeter

    @mb.program(input_specs=[mb.TensorSpec(shape=(1000,), dtype=getattr(types, dtype))],
                opset_version=ct.target.iOS17)
    def program(x):
        scaled = mb.mul(x=x, y=np.array(3, getattr(np, "float16" if dtype == "fp16" else "float32")))
        doubled = mb.concat(values=[scaled, scaled], axis=0)  # x is freed: scaled + doubled alive
        return mb.reshape(x=doubled, shape=[20, 100])  # a view of doubled: counted once
    meter = ActivationMeter()
    MilEvaluator("a.mlpackage", "fp16", program=program).run(
        {"x": np.ones(1000, np.float16 if dtype == "fp16" else np.float32)}, memory=meter)
    assert meter.peak_bytes == 3000 * width


def test_expanded_weights_are_made_once_per_function_and_remade_from_a_substituted_palette():
    from coremltools.converters.mil.mil import types
    indices = rng.integers(0, 4, (3, 4)).astype(types.np_uint2_dtype)
    lut = rng.standard_normal((1, 1, 4, 1)).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 4))], opset_version=ct.target.iOS18)
    def program(x):
        return mb.linear(x=x, weight=mb.constexpr_lut_to_dense(indices=indices, lut=lut))

    evaluator = MilEvaluator("test.mlpackage", "fp32", program=program)
    x = {"x": rng.standard_normal((2, 4)).astype(np.float32)}
    first = evaluator.run(x)
    (expand,) = [op for op in program.functions["main"].operations if op.op_type == "constexpr_lut_to_dense"]
    assert list(evaluator._expanded) == [id(expand)]
    np.testing.assert_array_equal(next(iter(evaluator.run(x).values())), next(iter(first.values())))
    with evaluator.substituted({expand.inputs["lut"]: lut * 2}):  # a new palette: expanded anew
        doubled = next(iter(evaluator.run(x).values()))
    np.testing.assert_allclose(doubled, 2 * next(iter(first.values())), rtol=1e-6)
    np.testing.assert_array_equal(next(iter(evaluator.run(x).values())), next(iter(first.values())))
