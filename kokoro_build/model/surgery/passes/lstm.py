"""LSTMs without sequence packing, so fixed-size (and padded) inputs trace and convert."""
from __future__ import annotations

import torch
from torch import nn

from kokoro_build.model.surgery.registry import SurgeryPass, register_pass
from kokoro_build.model.surgery.rewrite import swap_forward


class MaskedBiLSTM(nn.Module):
    """A bidirectional LSTM over a right-padded batch-1 sequence that, on the
    valid steps, equals packing it to its true length: the forward direction
    runs as usual (padding comes after the valid steps), and the backward one
    runs over the valid prefix reversed in place (a gather with the index
    permutation t -> L-1-t on [0, L), identity-like wrap on the padding)."""

    def __init__(self, lstm: nn.LSTM):
        super().__init__()
        if not (lstm.bidirectional and lstm.batch_first and lstm.num_layers == 1):
            raise ValueError("MaskedBiLSTM handles single-layer, batch_first, bidirectional LSTMs")
        self.forward_lstm = nn.LSTM(lstm.input_size, lstm.hidden_size, batch_first=True)
        self.backward_lstm = nn.LSTM(lstm.input_size, lstm.hidden_size, batch_first=True)
        for name, value in lstm.named_parameters():
            target = self.backward_lstm if name.endswith("_reverse") else self.forward_lstm
            getattr(target, name.removesuffix("_reverse")).data.copy_(value.data)

    def forward(self, x, padding):
        """x [1, T, C]; padding [1, T] bool (True = padding) -> [1, T, 2H]."""
        steps = x.shape[1]
        valid = (~padding).sum(-1)
        reverse = valid - 1 - torch.arange(steps)
        # int32 stated explicitly: Core ML computes the bool sum in fp32 otherwise,
        # and gather rejects float indices.
        reverse = torch.where(reverse < 0, reverse + steps, reverse).to(torch.int32)
        ahead = self.forward_lstm(x)[0]
        behind = self.backward_lstm(x.index_select(1, reverse))[0].index_select(1, reverse)
        return torch.cat([ahead, behind], dim=-1)


def run_lstm(lstm, x, padding):
    """A batch_first LSTM's output sequence, over the valid steps when it was masked."""
    return lstm(x, padding) if isinstance(lstm, MaskedBiLSTM) else lstm(x)[0]


def _text_encoder_forward(self, x, input_lengths, m):
    """kokoro TextEncoder.forward, packing-free: [1, T] ids -> [1, C, T]."""
    pad = m.unsqueeze(1)
    x = self.embedding(x).transpose(1, 2).masked_fill(pad, 0.0)
    for block in self.cnn:
        x = block(x).masked_fill(pad, 0.0)
    x = run_lstm(self.lstm, x.transpose(1, 2), m).transpose(1, 2)
    return x.masked_fill(pad, 0.0)


def _duration_encoder_forward(self, x, style, text_lengths, m):
    """kokoro DurationEncoder.forward, packing-free: [1, C, T] -> [1, T, C + style]."""
    pad_tbc, pad_bct = m.unsqueeze(-1).transpose(0, 1), m.unsqueeze(1)
    x = x.permute(2, 0, 1)
    s = style.expand(x.shape[0], x.shape[1], -1)
    x = torch.cat([x, s], dim=-1).masked_fill(pad_tbc, 0.0).transpose(0, 1).transpose(-1, -2)
    for block in self.lstms:
        if type(block).__name__ == "AdaLayerNorm":
            x = block(x.transpose(-1, -2), style).transpose(-1, -2)
            x = torch.cat([x, s.permute(1, 2, 0)], dim=1).masked_fill(pad_bct, 0.0)
        else:  # kokoro zero-pads what pad_packed_sequence returns: the same here
            x = run_lstm(block, x.transpose(-1, -2), m).transpose(-1, -2).masked_fill(pad_bct, 0.0)
    return x.transpose(-1, -2)


def _packed_lstm_forward(self, x, padding):
    return run_lstm(self.lstm, x, padding).masked_fill(padding.unsqueeze(-1), 0.0)


@register_pass("kokoro::unpack_lstm")
class UnpackLstm(SurgeryPass):
    """Before: TextEncoder and DurationEncoder (and the duration stage's
    PackedLSTM) call pack_padded_sequence -> LSTM -> pad_packed_sequence, then
    copy into a `torch.zeros` buffer with slice assignment and mask in place;
    traced, these are data-dependent shapes that ct.convert rejects or bakes.
    After:  LSTM over the fixed-size sequence, out-of-place masked_fill, no
    packing and no zeros buffer. `masked: false` is exact when there is no
    padding (batch 1, the length equals the shape); `masked: true` swaps every
    bidirectional LSTM for MaskedBiLSTM, exact on the valid steps of a
    right-padded bucket (outputs at padding are zero, as kokoro's are)."""

    def apply(self, module) -> int:
        sites = 0
        if self.options.masked:
            for parent in list(module.modules()):
                for name, child in list(parent.named_children()):
                    if isinstance(child, nn.LSTM) and child.bidirectional:
                        setattr(parent, name, MaskedBiLSTM(child))
                        sites += 1
        sites += swap_forward(module, "TextEncoder", _text_encoder_forward, "Unpacked")
        sites += swap_forward(module, "DurationEncoder", _duration_encoder_forward, "Unpacked")
        sites += swap_forward(module, "PackedLSTM", _packed_lstm_forward, "Unpacked")
        return sites
