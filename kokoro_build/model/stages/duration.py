"""The duration split: PL-BERT, the duration encoder and predictor, and the text encoder."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from kokoro_build.model.stages.base import StageKind, TensorSpec, register_stage


class PackedLSTM(nn.Module):
    """kokoro's predictor.lstm, run over the valid steps only, as its encoders'
    LSTMs are. (KModel runs this one unpacked; with no padding that is the same.)"""

    def __init__(self, lstm: nn.LSTM):
        super().__init__()
        self.lstm = lstm

    def forward(self, x, padding):
        lengths = (~padding).sum(-1).cpu()
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        return pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=x.shape[1])[0]


class DurationModule(nn.Module):
    def __init__(self, kmodel):
        super().__init__()
        self.bert, self.bert_encoder = kmodel.bert, kmodel.bert_encoder
        self.duration_encoder = kmodel.predictor.text_encoder
        self.duration_lstm = PackedLSTM(kmodel.predictor.lstm)
        self.duration_proj = kmodel.predictor.duration_proj
        self.text_encoder = kmodel.text_encoder

    def forward(self, input_ids, ref_s, speed, attention_mask=None):
        """input_ids [1, N] (int; 0 = boundary/pad), ref_s [1, 256], speed [1]
        (+ attention_mask [1, N], 1 = token, 0 = padding, for padded buckets) ->
        durations [1, N] (frames, before rounding), d [1, N, 640], t_en [1, 512, N].

        The same arithmetic as KModel.forward_with_tokens up to its rounding.
        """
        if attention_mask is None:
            padding = torch.zeros_like(input_ids, dtype=torch.bool)
        else:
            padding = attention_mask == 0
        lengths = (~padding).sum(-1)
        hidden = self.bert(input_ids, attention_mask=(~padding).int())
        d_en = self.bert_encoder(hidden).transpose(-1, -2)
        d = self.duration_encoder(d_en, ref_s[:, 128:], lengths, padding)
        x = self.duration_lstm(d, padding)
        durations = torch.sigmoid(self.duration_proj(x)).sum(-1) / speed
        t_en = self.text_encoder(input_ids, lengths, padding)
        return durations, d, t_en


@register_stage("duration")
class Duration(StageKind):
    @property
    def padded(self) -> bool:
        """Right-padded token buckets: declared by unpack_lstm(masked: true)."""
        options = self.pass_options("kokoro::unpack_lstm")
        return bool(options and options.get("masked"))

    def build_module(self, kmodel, sizes=None) -> nn.Module:
        return DurationModule(kmodel).eval()

    def inputs(self, sizes):
        n = sizes["tokens"]
        specs = [TensorSpec("input_ids", (1, n), "int32"),
                 TensorSpec("ref_s", (1, 2 * self.model_config["style_dim"])),
                 TensorSpec("speed", (1,))]
        return specs + ([TensorSpec("attention_mask", (1, n))] if self.padded else [])

    def outputs(self, sizes):
        n, hidden, style = sizes["tokens"], self.model_config["hidden_dim"], self.model_config["style_dim"]
        return [TensorSpec("durations", (1, n)), TensorSpec("d", (1, n, hidden + style)),
                TensorSpec("t_en", (1, hidden, n))]

    def parity_sizes(self, sizes):
        return {"tokens": min(sizes["tokens"], 64)}

    def example_inputs(self, sizes, voice_pack, seed=0):
        """Random phoneme ids between the 0 boundary tokens (the last quarter
        padding with 0 when padded), the voice pack row kokoro picks for that
        length, speed 1."""
        n = sizes["tokens"]
        g = torch.Generator().manual_seed(seed)
        symbols = torch.tensor(sorted(set(self.model_config["vocab"].values())))
        valid = max(n - n // 4, 3) if self.padded and n >= 4 else n
        ids = torch.zeros(1, n, dtype=torch.long)
        ids[0, 1:valid - 1] = symbols[torch.randint(len(symbols), (max(valid - 2, 0),), generator=g)]
        style = voice_pack[min(max(valid - 3, 0), voice_pack.shape[0] - 1)].reshape(1, -1).clone()
        inputs = (ids, style, torch.ones(1))
        if self.padded:
            inputs += ((torch.arange(n) < valid).float()[None],)
        return inputs
