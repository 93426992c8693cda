"""Kernels coremltools can't evaluate (no value inference): programs with a real input,
run by the evaluator, against torch or numpy references."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import coremltools as ct
from coremltools.converters.mil import Builder as mb

from kokoro_build.verify.mil_eval import MilEvaluator

rng = np.random.default_rng(1)


def evaluate(body, x: np.ndarray, precision="fp32", opset=ct.target.iOS17):
    @mb.program(input_specs=[mb.TensorSpec(shape=x.shape)], opset_version=opset)
    def program(x):
        return body(x)
    outputs = MilEvaluator("test.mlpackage", precision, program=program).run({"x": x})
    return [torch.from_numpy(v) for v in outputs.values()]


def close(got, expected, tol=1e-4):
    assert tuple(got.shape) == tuple(expected.shape), (got.shape, expected.shape)
    torch.testing.assert_close(got.float(), expected.float(), rtol=tol, atol=tol)


@pytest.mark.parametrize("pad_type, pad, dilation, groups, stride", [
    ("valid", None, 1, 1, 1), ("same", None, 3, 1, 1), ("custom", [2, 1], 2, 2, 2), ("same", None, 1, 4, 2),
])
def test_conv1d(pad_type, pad, dilation, groups, stride):
    x = rng.standard_normal((1, 4, 17)).astype(np.float32)
    w = rng.standard_normal((8, 4 // groups, 3)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    kwargs = dict(weight=w, bias=b, pad_type=pad_type, dilations=[dilation], groups=groups, strides=[stride])
    if pad:
        kwargs["pad"] = pad
    (got,) = evaluate(lambda x: mb.conv(x=x, **kwargs), x)
    xt = torch.from_numpy(x)
    if pad_type == "custom":
        xt = F.pad(xt, pad)
    elif pad_type == "same":
        total = max((-(-17 // stride) - 1) * stride + (3 - 1) * dilation + 1 - 17, 0)
        xt = F.pad(xt, [total // 2, total - total // 2])
    expected = F.conv1d(xt, torch.from_numpy(w), torch.from_numpy(b), stride=stride, dilation=dilation, groups=groups)
    close(got, expected)


def test_conv2d_groups():
    x = rng.standard_normal((1, 4, 6, 7)).astype(np.float32)
    w = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
    (got,) = evaluate(lambda x: mb.conv(x=x, weight=w, pad_type="custom", pad=[1, 1, 0, 2], groups=2), x)
    expected = F.conv2d(F.pad(torch.from_numpy(x), [0, 2, 1, 1]), torch.from_numpy(w), groups=2)
    close(got, expected)


@pytest.mark.parametrize("pad, output_shape", [([0, 0], None), ([1, 2], None), ([0, 0], [1, 3, 20])])
def test_conv_transpose(pad, output_shape):
    x = rng.standard_normal((1, 4, 7)).astype(np.float32)
    w = rng.standard_normal((4, 3, 4)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    kwargs = dict(weight=w, bias=b, pad_type="custom", pad=pad, strides=[3])
    if output_shape:
        kwargs["output_shape"] = np.array(output_shape, np.int32)
    (got,) = evaluate(lambda x: mb.conv_transpose(x=x, **kwargs), x)
    full = F.conv_transpose1d(torch.from_numpy(x), torch.from_numpy(w), stride=3)
    expected = full[..., pad[0]: full.shape[-1] - pad[1]]
    if output_shape:
        expected = F.pad(expected, [0, output_shape[-1] - expected.shape[-1]])
    close(got, expected + torch.from_numpy(b)[:, None])


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_lstm_against_torch(direction):
    torch.manual_seed(0)
    bidirectional = direction == "bidirectional"
    lstm = torch.nn.LSTM(5, 3, bidirectional=bidirectional).eval()
    x = rng.standard_normal((6, 1, 5)).astype(np.float32)

    def ifoz(t):  # torch gates i, f, g, o -> MIL i, f, o, z
        i, f, g, o = t.detach().numpy().reshape(4, 3, -1)
        return np.concatenate([i, f, o, g]).reshape(t.shape)

    def weights(sfx):
        return dict(weight_ih=ifoz(getattr(lstm, "weight_ih_l0" + sfx)), weight_hh=ifoz(getattr(lstm, "weight_hh_l0" + sfx)),
                    bias=ifoz(getattr(lstm, "bias_ih_l0" + sfx) + getattr(lstm, "bias_hh_l0" + sfx)))
    kwargs = weights("")
    if bidirectional:
        back = weights("_reverse")
        kwargs.update(weight_ih_back=back["weight_ih"], weight_hh_back=back["weight_hh"], bias_back=back["bias"])
    dirs = 2 if bidirectional else 1
    zeros = np.zeros((1, 3 * dirs), np.float32)
    y, h, c = evaluate(lambda x: mb.lstm(x=x, initial_h=zeros, initial_c=zeros, direction=direction,
                                         output_sequence=True, **kwargs), x)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        if direction == "reverse":  # outputs in processing order, as coremltools' unilstm test expects
            expected, (h_n, _) = lstm(xt.flip(0))
        else:
            expected, (h_n, _) = lstm(xt)
    close(y, expected)
    close(h, h_n.transpose(0, 1).reshape(1, -1))


def test_norms():
    x = rng.standard_normal((2, 3, 8)).astype(np.float32)
    gamma, beta = rng.standard_normal(3).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    (inst,) = evaluate(lambda x: mb.instance_norm(x=x, gamma=gamma, beta=beta, epsilon=1e-5), x)
    close(inst, F.instance_norm(torch.from_numpy(x), weight=torch.from_numpy(gamma), bias=torch.from_numpy(beta)))
    g8, b8 = rng.standard_normal(8).astype(np.float32), rng.standard_normal(8).astype(np.float32)
    (layer,) = evaluate(lambda x: mb.layer_norm(x=x, axes=[-1], gamma=g8, beta=b8, epsilon=1e-5), x)
    close(layer, F.layer_norm(torch.from_numpy(x), (8,), torch.from_numpy(g8), torch.from_numpy(b8)))


@pytest.mark.parametrize("mode", ["nearest", "half_pixel", "align_corners"])
def test_upsampling_against_interpolate(mode):
    x = rng.standard_normal((1, 2, 3, 5)).astype(np.float32)
    xt = torch.from_numpy(x)
    if mode == "nearest":
        (got,) = evaluate(lambda x: mb.upsample_nearest_neighbor(x=x, scale_factor_height=2, scale_factor_width=3), x)
        expected = F.interpolate(xt, scale_factor=(2, 3), mode="nearest")
    else:
        corners = mode == "align_corners"
        (got,) = evaluate(lambda x: mb.upsample_bilinear(x=x, scale_factor_height=2.0, scale_factor_width=3.0,
                                                         align_corners=corners, half_pixel_centers=not corners), x)
        expected = F.interpolate(xt, size=(6, 15) if corners else None, scale_factor=None if corners else (2, 3),
                                 mode="bilinear", align_corners=corners)
    close(got, expected)


def test_exclusive_reverse_cumsum_against_numpy():
    # coremltools' own value inference for exclusive cumsum raises, so numpy is the reference
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    (got,) = evaluate(lambda x: mb.cumsum(x=x, axis=2, exclusive=True, reverse=True), x)
    flipped = np.flip(x, 2)
    close(got, torch.from_numpy(np.flip(np.cumsum(flipped, 2) - flipped, 2).copy()))


def test_pools():
    x = rng.standard_normal((1, 2, 9)).astype(np.float32)
    (avg,) = evaluate(lambda x: mb.avg_pool(x=x, kernel_sizes=[3], strides=[2], pad_type="custom", pad=[1, 1],
                                            exclude_padding_from_average=True), x)
    close(avg, F.avg_pool1d(torch.from_numpy(x), 3, 2, padding=1, count_include_pad=False))
    (mx,) = evaluate(lambda x: mb.max_pool(x=x, kernel_sizes=[2], strides=[2], pad_type="valid"), x)
    close(mx, F.max_pool1d(torch.from_numpy(x), 2, 2))


def test_fp16_outputs_are_rounded_and_fp32_mode_is_not():
    x = np.array([[1.0 + 2 ** -12, 70000.0, 1e-8]], np.float32)
    body = lambda x: mb.mul(x=mb.cast(x=x, dtype="fp16"), y=np.float16(1.0))  # noqa: E731
    (half,) = evaluate(body, x, precision="fp16")
    assert half[0, 0] == 1.0 and torch.isinf(half[0, 1]) and half[0, 2] == torch.tensor(1e-8).half().float()
    (full,) = evaluate(body, x, precision="fp32")
    assert full[0, 0] == np.float32(1.0 + 2 ** -12) and full[0, 1] == 70000.0


@pytest.mark.parametrize("mode, axis", [("update", 0), ("add", 1), ("max", -1)])
def test_scatter(mode, axis):
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    indices = np.array([2, 0], np.int32)
    dim = axis % 3
    updates = rng.standard_normal(tuple(2 if d == dim else s for d, s in enumerate(x.shape))).astype(np.float32)
    (got,) = evaluate(lambda x: mb.scatter(data=x, indices=indices, updates=updates, axis=axis, mode=mode), x)
    expected = torch.from_numpy(x.copy())
    combine = {"update": lambda old, new: new, "add": torch.add, "max": torch.maximum}[mode]
    for i, target in enumerate(indices):
        slot = expected.select(dim, int(target))
        slot.copy_(combine(slot, torch.from_numpy(updates).select(dim, i)))
    close(got, expected)


@pytest.mark.parametrize("dtype, zero_point, per_axis", [("int8", None, False), ("uint8", 128, False),
                                                          ("int8", None, True)])
def test_quantize_reshape_dequantize(dtype, zero_point, per_axis):
    """W8A8's activation ops: quantize, a reshape on the int8 data (what coremltools'
    int_op_canonicalization leaves), dequantize; against the equations."""
    x = (3 * rng.standard_normal((1, 4, 6))).astype(np.float32)
    scale = np.array([0.02, 0.05, 0.1, 0.04], np.float32) if per_axis else np.float32(0.05)
    kwargs = {"scale": scale, "output_dtype": dtype, **({"axis": 1} if per_axis else {})}
    zp = None
    if zero_point is not None:
        zp = np.uint8(zero_point) if dtype == "uint8" else np.int8(zero_point)
        kwargs["zero_point"] = zp
    dq = {k: v for k, v in kwargs.items() if k != "output_dtype"}

    def body(x):
        q = mb.quantize(input=x, **kwargs)
        q = mb.reshape(x=q, shape=[1, 4, 3, 2])
        return mb.dequantize(input=mb.reshape(x=q, shape=[1, 4, 6]), **dq)
    (got,) = evaluate(body, x)
    s = scale.reshape(1, 4, 1) if per_axis else scale
    low, high = (-128, 127) if dtype == "int8" else (0, 255)
    q = np.clip(np.round(x / s) + (0 if zp is None else float(zp)), low, high)
    expected = (q - (0 if zp is None else float(zp))) * s
    close(got, torch.from_numpy(expected.astype(np.float32)), tol=1e-6)
    assert float((got - torch.from_numpy(x)).abs().max()) > 0  # it did quantize
