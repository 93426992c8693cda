"""Kernels against coremltools' own op semantics: ops built from constants get their
value from coremltools' numpy value inference; the kernel must give the same."""
import numpy as np
import pytest
import torch
import coremltools as ct
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import Function

from kokoro_build.verify.kernels import KERNELS, Args
from kokoro_build.verify.mil_eval import _constant

rng = np.random.default_rng(0)
A = rng.standard_normal((2, 3, 4)).astype(np.float32)
B = rng.standard_normal((3, 1)).astype(np.float32)  # broadcasts against A
POS = (np.abs(A) + 0.1).astype(np.float32)
I = np.array([[2, -1, 0], [1, 1, 3]], np.int32)

CASES = {
    "add": lambda: mb.add(x=A, y=B), "sub": lambda: mb.sub(x=A, y=B),
    "mul": lambda: mb.mul(x=A, y=B), "real_div": lambda: mb.real_div(x=A, y=B),
    "pow": lambda: mb.pow(x=POS, y=B), "maximum": lambda: mb.maximum(x=A, y=B),
    "minimum": lambda: mb.minimum(x=A, y=B), "floor_div": lambda: mb.floor_div(x=A, y=B),
    "mod": lambda: mb.mod(x=A, y=np.float32(0.7)),
    "equal": lambda: mb.equal(x=A, y=A[:1]), "greater": lambda: mb.greater(x=A, y=B),
    "less_equal": lambda: mb.less_equal(x=A, y=B),
    "logical_and": lambda: mb.logical_and(x=A > 0, y=B > 0),
    "logical_not": lambda: mb.logical_not(x=A > 0),
    "select": lambda: mb.select(cond=A > 0, a=A, b=B),
    "exp": lambda: mb.exp(x=A), "sqrt": lambda: mb.sqrt(x=POS), "sin": lambda: mb.sin(x=A),
    "cos": lambda: mb.cos(x=A), "atan": lambda: mb.atan(x=A), "tanh": lambda: mb.tanh(x=A),
    "floor": lambda: mb.floor(x=A), "round": lambda: mb.round(x=A * 3),
    "sigmoid": lambda: mb.sigmoid(x=A), "relu": lambda: mb.relu(x=A), "abs": lambda: mb.abs(x=A),
    "rsqrt": lambda: mb.rsqrt(x=POS), "log": lambda: mb.log(x=POS), "inverse": lambda: mb.inverse(x=POS),
    "clip": lambda: mb.clip(x=A, alpha=-0.5, beta=0.5),
    "leaky_relu": lambda: mb.leaky_relu(x=A, alpha=0.1),
    "softmax": lambda: mb.softmax(x=A, axis=1),
    "gelu": lambda: mb.gelu(x=A), "gelu_tanh": lambda: mb.gelu(x=A, mode="TANH_APPROXIMATION"),
    "cast_int": lambda: mb.cast(x=A * 3, dtype="int32"), "cast_bool": lambda: mb.cast(x=A, dtype="bool"),
    "reshape": lambda: mb.reshape(x=A, shape=[0, -1, 2]), "transpose": lambda: mb.transpose(x=A, perm=[2, 0, 1]),
    "expand_dims": lambda: mb.expand_dims(x=A, axes=[0, -1]),
    "squeeze": lambda: mb.squeeze(x=A[:, :1], axes=[1]),
    "slice_by_index": lambda: mb.slice_by_index(x=A, begin=[1, 0, 3], end=[2, 3, 0], stride=[1, 2, -1],
                                               squeeze_mask=[True, False, False]),
    "slice_masks": lambda: mb.slice_by_index(x=A, begin=[0, 1, 0], end=[0, 0, 2],
                                            begin_mask=[True, False, True], end_mask=[True, True, False]),
    "slice_by_size": lambda: mb.slice_by_size(x=A, begin=[0, 1, 1], size=[-1, 2, 2]),
    "concat": lambda: mb.concat(values=[A, A[:, :1]], axis=1),
    "stack": lambda: mb.stack(values=[A, A], axis=1),
    "split": lambda: mb.split(x=A, split_sizes=[1, 3], axis=-1),
    "tile": lambda: mb.tile(x=A, reps=[1, 2, 1]),
    "range_1d": lambda: mb.range_1d(start=np.float32(0.5), end=np.float32(4.0), step=np.float32(0.75)),
    "fill_like": lambda: mb.fill_like(ref_tensor=A, value=2.5),
    "cumsum": lambda: mb.cumsum(x=A, axis=1), "cumsum_reverse": lambda: mb.cumsum(x=A, axis=2, reverse=True),
    "gather": lambda: mb.gather(x=A, indices=I, axis=2),
    "gather_along_axis": lambda: mb.gather_along_axis(x=A, indices=np.zeros((2, 3, 2), np.int32), axis=2),
    # (coremltools' value inference of scatter_along_axis ignores `mode`: update only)
    "scatter_along_axis": lambda: mb.scatter_along_axis(data=A, indices=np.array([[[3, 0]] * 3] * 2, np.int32),
                                                        updates=A[..., :2], axis=2, mode="update"),
    "pad_constant": lambda: mb.pad(x=A, pad=[0, 0, 1, 2, 2, 0], mode="constant", constant_val=1.5),
    "pad_reflect": lambda: mb.pad(x=A, pad=[2, 1], mode="reflect"),
    "pad_replicate": lambda: mb.pad(x=A, pad=[1, 1, 0, 3], mode="replicate"),
    "reduce_sum": lambda: mb.reduce_sum(x=A, axes=[1], keep_dims=True),
    "reduce_mean": lambda: mb.reduce_mean(x=A, axes=[0, 2]),
    "reduce_max": lambda: mb.reduce_max(x=A), "reduce_argmax": lambda: mb.reduce_argmax(x=A, axis=1),
    "matmul": lambda: mb.matmul(x=A, y=A, transpose_y=True),
    "linear": lambda: mb.linear(x=A, weight=B.reshape(1, 3).repeat(4, 0).T.copy(), bias=np.ones(3, np.float32)),
}


def _built(make):
    with Function({}, opset_version=ct.target.iOS17):
        out = make()
    outputs = out if isinstance(out, (list, tuple)) else [out]
    return outputs[0].op, outputs


@pytest.mark.parametrize("case", sorted(CASES))
def test_kernel_matches_coremltools_value_inference(case):
    op, outputs = _built(CASES[case])
    assert all(o.val is not None for o in outputs), "coremltools gave no reference value"
    got = KERNELS[op.op_type](op, Args(op, lambda var: _constant(var.val)))
    got = got if isinstance(got, (tuple, list)) else (got,)
    for value, out in zip(got, outputs):
        expected = np.asarray(out.val)
        value = value.numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        assert value.shape == expected.shape, (case, value.shape, expected.shape)
        np.testing.assert_allclose(value.astype(np.float64), expected.astype(np.float64),
                                   rtol=1e-5, atol=1e-5, err_msg=case)


def test_concat_interleave_follows_the_documented_example():
    # coremltools' value inference ignores `interleave`, so the reference is the op's
    # docstring: output[0::2] = in1, output[1::2] = in2.
    first, second = np.arange(1, 7).reshape(3, 2), np.arange(7, 13).reshape(3, 2)
    op, _ = _built(lambda: mb.concat(values=[first.astype(np.float32), second.astype(np.float32)],
                                     axis=0, interleave=True))
    got = KERNELS["concat"](op, Args(op, lambda var: _constant(var.val)))
    assert got.tolist() == [[1, 2], [7, 8], [3, 4], [9, 10], [5, 6], [11, 12]]



def test_scatter_nd_combines_each_addressed_slice_in_order():
    # coremltools has no value inference for scatter_nd: the reference is written out
    data = np.zeros((3, 2), np.float32)
    indices = np.array([[2], [0], [2]], np.int32)  # row 2 twice: the updates add up
    updates = np.array([[1, 2], [3, 4], [10, 20]], np.float32)
    op, _ = _built(lambda: mb.scatter_nd(data=data, indices=indices, updates=updates, mode="add"))
    got = KERNELS["scatter_nd"](op, Args(op, lambda var: _constant(var.val)))
    assert got.tolist() == [[3, 4], [0, 0], [11, 22]]


def test_gather_nd_pairs_its_batch_dims_with_the_indices():
    # no value inference for batch_dims either; iOS16's gather_nd doc: x and indices
    # share their leading batch_dims axes
    with Function({}, opset_version=ct.target.iOS17):
        out = mb.gather_nd(x=A, indices=np.array([[[1], [0]], [[2], [2]]], np.int32), batch_dims=1)
    got = KERNELS["gather_nd"](out.op, Args(out.op, lambda var: _constant(var.val))).numpy()
    np.testing.assert_array_equal(got, np.stack([A[0, [1, 0]], A[1, [2, 2]]]))
