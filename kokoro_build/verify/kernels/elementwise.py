"""Elementwise MIL ops: binary with numpy broadcasting, unary, activations."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from kokoro_build.verify.kernels import axis, kernel

_BINARY = {
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "real_div": torch.true_divide,
    "pow": torch.pow, "floor_div": torch.floor_divide, "maximum": torch.maximum,
    "minimum": torch.minimum, "mod": torch.remainder,  # MIL mod: x - floor(x / y) * y
    "equal": torch.eq, "not_equal": torch.ne, "greater": torch.gt, "greater_equal": torch.ge,
    "less": torch.lt, "less_equal": torch.le, "logical_and": torch.logical_and,
    "logical_or": torch.logical_or, "logical_xor": torch.logical_xor,
}


def _binary(fn):
    def run(op, a):
        return fn(a.tensor("x"), a.tensor("y"))
    return run


for _name, _fn in _BINARY.items():
    kernel(_name)(_binary(_fn))

_UNARY = {
    "abs": torch.abs, "acos": torch.acos, "asin": torch.asin, "atan": torch.atan,
    "atanh": torch.atanh, "ceil": torch.ceil, "cos": torch.cos, "cosh": torch.cosh,
    "erf": torch.erf, "exp": torch.exp, "exp2": torch.exp2, "floor": torch.floor,
    "logical_not": torch.logical_not, "round": torch.round,  # half to even, as numpy
    "sign": torch.sign, "sin": torch.sin, "sinh": torch.sinh, "sqrt": torch.sqrt,
    "square": torch.square, "tan": torch.tan, "tanh": torch.tanh, "relu": torch.relu,
    "sigmoid": torch.sigmoid, "silu": F.silu, "softsign": F.softsign, "identity": lambda x: x,
    "relu6": lambda x: torch.clamp(x, 0, 6), "softplus": F.softplus,
}


def _unary(fn):
    def run(op, a):
        return fn(a.tensor("x"))
    return run


for _name, _fn in _UNARY.items():
    kernel(_name)(_unary(_fn))


@kernel("inverse")
def inverse(op, a):
    return 1.0 / (a.tensor("x") + a.float("epsilon", 1e-4))


@kernel("log")
def log(op, a):
    return torch.log(a.tensor("x") + a.float("epsilon", 1e-45))


@kernel("rsqrt")
def rsqrt(op, a):
    return torch.rsqrt(a.tensor("x") + a.float("epsilon", 1e-12))


@kernel("clip")
def clip(op, a):
    return torch.clamp(a.tensor("x"), a.float("alpha"), a.float("beta"))


@kernel("threshold")
def threshold(op, a):
    return torch.clamp(a.tensor("x"), min=a.float("alpha"))


@kernel("leaky_relu")
def leaky_relu(op, a):
    return F.leaky_relu(a.tensor("x"), a.float("alpha", 0.01))


@kernel("elu")
def elu(op, a):
    return F.elu(a.tensor("x"), a.float("alpha", 1.0))


@kernel("gelu")
def gelu(op, a):
    x, mode = a.tensor("x"), a.str("mode", "EXACT")
    if mode == "EXACT":
        return F.gelu(x)
    if mode == "TANH_APPROXIMATION":
        return F.gelu(x, approximate="tanh")
    if mode == "SIGMOID_APPROXIMATION":
        return x * torch.sigmoid(1.702 * x)
    raise ValueError(f"gelu mode {mode!r}")


@kernel("softmax")
def softmax(op, a):
    x = a.tensor("x")
    return torch.softmax(x, dim=axis(a.int("axis", -1), x.dim()))


@kernel("scaled_tanh")
def scaled_tanh(op, a):
    return a.float("alpha", 1.0) * torch.tanh(a.float("beta", 1.0) * a.tensor("x"))


@kernel("sigmoid_hard")
def sigmoid_hard(op, a):
    return torch.clamp(a.float("alpha", 0.2) * a.tensor("x") + a.float("beta", 0.5), 0, 1)


@kernel("linear_activation")
def linear_activation(op, a):
    return a.float("alpha", 1.0) * a.tensor("x") + a.float("beta", 0.0)


@kernel("prelu")
def prelu(op, a):
    x, alpha = a.tensor("x"), a.tensor("alpha")  # alpha per channel (axis 1)
    return torch.where(x >= 0, x, x * alpha.reshape(1, -1, *([1] * (x.dim() - 2))))
