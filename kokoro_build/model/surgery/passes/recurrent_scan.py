"""LSTMs and GRUs as one `scan` loop each, for ExecuTorch (not in any Core ML preset).

torch.export decomposes nn.LSTM / nn.GRU into one cell per time step, for the
example's length only: a token range fails (`Constraints violated (tokens)`), and a
512-token bucket of the small test model was still lowering after 11 minutes
(measured here). ExecuTorch 1.5.1's emitter runs `torch.ops.higher_order.scan` as a
loop (exir/emit/_emitter.py, `_emit_scan`), so the recurrence stays one op over a
dynamic length. torch.jit.trace can't trace `scan`: the Core ML path never runs this.
"""
from __future__ import annotations

import torch
from torch import nn

from kokoro_build.model.surgery.registry import SurgeryPass, register_pass


def _scan(step, init, xs, reverse: bool):
    from torch._higher_order_ops.scan import scan
    return scan(step, init, xs, reverse=reverse)


class _ScanRecurrent(nn.Module):
    """Shared by both cells: the input projection of every step is one matmul (which
    XNNPACK takes) before the loop; only the hidden state's product runs per step."""

    def __init__(self, rnn: nn.RNNBase):
        super().__init__()
        if rnn.num_layers != 1 or not rnn.bias or getattr(rnn, "proj_size", 0):
            raise ValueError(f"{type(self).__name__} handles one layer with biases and no projection")
        self.rnn, self.batch_first = rnn, rnn.batch_first
        self.directions = (("", False), ("_reverse", True)) if rnn.bidirectional else (("", False),)

    def flatten_parameters(self) -> None:  # kokoro's modules call it on their LSTMs
        pass

    def weights(self, suffix: str):
        return [getattr(self.rnn, f"{name}_l0{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]

    def forward(self, x, state=None):
        if state is not None:
            raise ValueError("the scanned recurrence starts from zeros, as Kokoro's and g2p-en's do")
        steps = x if not self.batch_first else x.transpose(0, 1)  # [T, B, C]
        outputs, finals = [], []
        for suffix, reverse in self.directions:
            ys, final = self.run_direction(steps, *self.weights(suffix), reverse)
            outputs.append(ys)
            finals.append(final)
        out = torch.cat(outputs, dim=-1)
        return (out.transpose(0, 1) if self.batch_first else out), self.final_state(finals)


class ScanLSTM(_ScanRecurrent):
    """Drop-in for a one-layer nn.LSTM: (output, (h_n, c_n)), gates i, f, g, o."""

    def run_direction(self, steps, w_ih, w_hh, b_ih, b_hh, reverse: bool):
        hidden = w_hh.shape[1]
        projected = torch.matmul(steps, w_ih.t()) + (b_ih + b_hh)
        zeros = steps.new_zeros(steps.shape[1], hidden)

        def step(carry, gates_x):
            h, c = carry
            gates = gates_x + torch.matmul(h, w_hh.t())
            i, f, g, o = gates.chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            return (h, c), h.clone()  # scan's outputs may not alias its carry

        (h, c), ys = _scan(step, (zeros, zeros.clone()), projected, reverse)
        return ys, (h, c)

    @staticmethod
    def final_state(finals):
        return torch.stack([h for h, _ in finals]), torch.stack([c for _, c in finals])


class ScanGRU(_ScanRecurrent):
    """Drop-in for a one-layer nn.GRU: (output, h_n), gates r, z, n as torch's."""

    def run_direction(self, steps, w_ih, w_hh, b_ih, b_hh, reverse: bool):
        hidden = w_hh.shape[1]
        projected = torch.matmul(steps, w_ih.t()) + b_ih

        def step(h, gates_x):
            gates_h = torch.matmul(h, w_hh.t()) + b_hh
            r = torch.sigmoid(gates_x[..., :hidden] + gates_h[..., :hidden])
            z = torch.sigmoid(gates_x[..., hidden:2 * hidden] + gates_h[..., hidden:2 * hidden])
            n = torch.tanh(gates_x[..., 2 * hidden:] + r * gates_h[..., 2 * hidden:])
            h = (1 - z) * n + z * h
            return h, h.clone()

        h, ys = _scan(step, steps.new_zeros(steps.shape[1], hidden), projected, reverse)
        return ys, h

    @staticmethod
    def final_state(finals):
        return torch.stack(finals)


@register_pass("executorch::recurrent_scan")
class RecurrentScan(SurgeryPass):
    """Before: nn.LSTM / nn.GRU (one layer; kokoro's bidirectional LSTMs, the halves of
    unpack_lstm's MaskedBiLSTM, g2p-en's encoder GRU), which torch.export unrolls
    to the example's length.
    After:  ScanLSTM / ScanGRU: the input projection for all steps, then one
    `scan` over time per direction (reverse=True for the backward one)."""

    def apply(self, module) -> int:
        sites = 0
        for parent in list(module.modules()):
            if isinstance(parent, _ScanRecurrent):  # already rewritten: keep its weights' holder
                continue
            for name, child in list(parent.named_children()):
                replacement = {nn.LSTM: ScanLSTM, nn.GRU: ScanGRU}.get(type(child))
                if replacement is not None:
                    setattr(parent, name, replacement(child))
                    sites += 1
        return sites
