"""The neural G2P split: g2p-en's GRU seq2seq (letters -> ARPAbet) as a torch module.

Design: the greedy decode runs inside the graph, unrolled to g2p-en's own 20 steps,
so a client makes one call per word. Chosen from evidence (coremltools 9.0, measured
here, fp32, chars a RangeDim):
  - in-graph `while` loop (torch.jit.script): ct.convert fails on `prim::Uninitialized`
    (from the scripted nn.GRU and from `break`); TorchScript conversion is experimental.
  - encoder + one decoder step, the loop in the client: converts (1.63 + 1.74 MB, two
    packages), evaluator runs both; the client owns the hidden state and 20 calls a word.
  - unrolled decode (this): converts to one 3.49 MB package (the step's weights are
    deduplicated, so no bigger than the two above), the evaluator runs it, one call.
The encoder's nn.GRU converts to a while_loop over the RangeDim (the evaluator runs it
with its scatter kernel). Padding would change the encoder's final state, so the
characters take a range, never buckets. The G2P runs on the CPU (gathers, argmax).
"""
from __future__ import annotations

import torch
from torch import nn

from kokoro_build.schema.contract import word_ids
from kokoro_build.model.stages.base import StageKind, TensorSpec, register_stage

# Words for the example inputs: real words g2p-en must spell out (out of CMUdict-like
# lexicons), so parity runs on the decoder's real path. Picked by length.
EXAMPLE_WORDS = ("zyx", "quib", "fromp", "glarbs", "tokenly", "shmoozer", "blorfling",
                 "activation", "unkokorable", "splinterwise", "activationist", "hyperquantized",
                 "overparameterized")


class GruCell(nn.Module):
    """One GRU step, written out (ct.convert has no converter for the `unsafe_chunk`
    that nn.GRUCell traces to). Gate order r, z, n in the stacked weights, as in
    torch and g2p-en: n = tanh(W_in x + b_in + r * (W_hn h + b_hn))."""

    def __init__(self, w_ih, w_hh, b_ih, b_hh):
        super().__init__()
        self.hidden = w_hh.shape[1]
        self.w_ih, self.w_hh = nn.Parameter(w_ih.clone()), nn.Parameter(w_hh.clone())
        self.b_ih, self.b_hh = nn.Parameter(b_ih.clone()), nn.Parameter(b_hh.clone())

    def forward(self, x, h):
        gi = nn.functional.linear(x, self.w_ih, self.b_ih)
        gh = nn.functional.linear(h, self.w_hh, self.b_hh)
        k = self.hidden
        r = torch.sigmoid(gi[:, :k] + gh[:, :k])
        z = torch.sigmoid(gi[:, k:2 * k] + gh[:, k:2 * k])
        n = torch.tanh(gi[:, 2 * k:] + r * gh[:, 2 * k:])
        return (1 - z) * n + z * h


class G2PModule(nn.Module):
    def __init__(self, arrays: dict[str, torch.Tensor], start: int, end: int, max_phonemes: int):
        super().__init__()
        hidden = arrays["enc_w_hh"].shape[1]
        self.start, self.end, self.max_phonemes = start, end, max_phonemes
        self.enc_emb = nn.Embedding.from_pretrained(arrays["enc_emb"].clone())
        self.encoder = nn.GRU(arrays["enc_emb"].shape[1], hidden, batch_first=True)
        with torch.no_grad():
            for ours, theirs in (("weight_ih_l0", "enc_w_ih"), ("weight_hh_l0", "enc_w_hh"),
                                 ("bias_ih_l0", "enc_b_ih"), ("bias_hh_l0", "enc_b_hh")):
                getattr(self.encoder, ours).copy_(arrays[theirs])
        self.dec_emb = nn.Embedding.from_pretrained(arrays["dec_emb"].clone())
        self.decoder = GruCell(arrays["dec_w_ih"], arrays["dec_w_hh"], arrays["dec_b_ih"], arrays["dec_b_hh"])
        self.classify = nn.Linear(hidden, arrays["fc_w"].shape[0])
        with torch.no_grad():
            self.classify.weight.copy_(arrays["fc_w"])
            self.classify.bias.copy_(arrays["fc_b"])

    def forward(self, chars):
        """chars [1, T] (word_ids: letters, then </s>) -> phonemes [1, 20] int32: ARPAbet
        ids, greedy, and </s> from the first </s> on (the client reads up to it)."""
        h = self.encoder(self.enc_emb(chars.long()))[1][0]
        token = torch.full((1,), self.start, dtype=torch.long)
        end = torch.full((1,), self.end, dtype=torch.long)
        done = torch.zeros(1, dtype=torch.bool)
        out = []
        for _ in range(self.max_phonemes):
            h = self.decoder(self.dec_emb(token), h)
            token = self.classify(h).argmax(-1)
            done = torch.logical_or(done, token == end)
            token = torch.where(done, end, token)
            out.append(token)
        return torch.stack(out, 1).to(torch.int32)


@register_stage("g2p")
class G2P(StageKind):
    """Its weights are g2p-en's checkpoint (source/g2p_en.py), not Kokoro's."""

    @staticmethod
    def load_source(path: str) -> dict:
        from kokoro_build.model.source.g2p_en import load_checkpoint
        return load_checkpoint(path)

    def model_from_source(self, blob: dict):
        return blob["arrays"]

    def build_module(self, arrays, sizes=None) -> nn.Module:
        phonemes = self.model_config["phonemes"]
        return G2PModule(arrays, phonemes.index("<s>"), phonemes.index("</s>"),
                         self.model_config["max_phonemes"]).eval()

    def inputs(self, sizes):
        return [TensorSpec("chars", (1, sizes["chars"]), "int32")]

    def outputs(self, sizes):
        return [TensorSpec("phonemes", (1, self.model_config["max_phonemes"]), "int32")]

    def parity_sizes(self, sizes):
        return {"chars": min(sizes["chars"], 14)}  # "activationist" + </s>

    def parity_view(self, output, value):
        """Symbol ids compared as one-hot rows: one wrong symbol of 20 scores 28.7 dB, under
        every gate (as plain numbers, a near-miss id would pass at about 50 dB)."""
        return nn.functional.one_hot(value.long(), len(self.model_config["phonemes"])).float()

    def example_inputs(self, sizes, voice_pack=None, seed=0):
        """An example word of the right length, else fixed-seed random letters."""
        n = sizes["chars"]
        word = next((w for w in EXAMPLE_WORDS if len(w) == n - 1), None)
        if word is None:
            g = torch.Generator().manual_seed(seed)
            word = "".join(chr(ord("a") + int(i)) for i in torch.randint(26, (n - 1,), generator=g))
        return (torch.tensor([word_ids(word, self.model_config["graphemes"])], dtype=torch.int32),)
