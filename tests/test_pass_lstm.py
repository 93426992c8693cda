"""kokoro::unpack_lstm on kokoro's TextEncoder and DurationEncoder (small sizes)."""
import copy

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from kokoro_build.model.source.kmodel import import_kokoro_model
from kokoro_build.model.surgery import apply_passes
from kokoro_build.model.surgery.passes.lstm import MaskedBiLSTM

kokoro = import_kokoro_model()
from kokoro.modules import DurationEncoder, TextEncoder  # noqa: E402

PACKING_OPS = {"aten::_pack_padded_sequence", "aten::_pad_packed_sequence", "aten::index_put_",
               "aten::copy_", "aten::masked_fill_"}


class Encoders(nn.Module):
    """ids [1, T] + padding mask [1, T] -> both encoders' outputs, as KModel calls them."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.text = TextEncoder(channels=16, kernel_size=5, depth=2, n_symbols=30)
        self.duration = DurationEncoder(sty_dim=8, d_model=16, nlayers=2)

    def forward(self, ids, padding):
        lengths = (~padding).sum(-1)
        t_en = self.text(ids, lengths, padding)
        style = torch.ones(1, 8) * 0.1
        return t_en, self.duration(t_en, style, lengths, padding)


def _inputs(steps, valid):
    ids = torch.randint(1, 30, (1, steps), generator=torch.Generator().manual_seed(1))
    ids[:, valid:] = 0
    return ids, (torch.arange(steps) >= valid)[None]


def _kinds(module, inputs):
    return {n.kind() for n in torch.jit.trace(module, inputs, check_trace=False).inlined_graph.nodes()}


def test_unmasked_is_exact_without_padding_and_removes_packing():
    module, inputs = Encoders().eval(), _inputs(12, 12)
    assert "aten::_pack_padded_sequence" in _kinds(module, inputs)
    result = apply_passes(module, [("kokoro::unpack_lstm", {})], inputs)
    assert result.records[0].sites == 2 and result.records[0].psnr_db == float("inf")
    assert not _kinds(result.module, inputs) & PACKING_OPS


def test_masked_matches_packing_on_a_padded_bucket():
    module, inputs = Encoders().eval(), _inputs(16, 11)
    result = apply_passes(module, [("kokoro::unpack_lstm", {"masked": True})], inputs)
    assert result.records[0].sites == 2 + 3  # two encoders + three bidirectional LSTMs
    assert result.records[0].psnr_db >= 60, result.records[0]
    assert not _kinds(result.module, inputs) & PACKING_OPS


def test_unmasked_on_a_padded_bucket_fails_the_gate():
    """Without the mask the backward LSTM reads the padding: parity catches it."""
    import pytest
    from kokoro_build.model.surgery import SurgeryError
    with pytest.raises(SurgeryError, match="kokoro::unpack_lstm: parity"):
        apply_passes(Encoders().eval(), [("kokoro::unpack_lstm", {})], _inputs(16, 11))


def test_masked_bilstm_equals_the_packed_lstm_on_valid_steps():
    torch.manual_seed(2)
    lstm = nn.LSTM(6, 5, batch_first=True, bidirectional=True).eval()
    x = torch.randn(1, 10, 6)
    for valid in (1, 4, 10):
        padding = (torch.arange(10) >= valid)[None]
        packed = pack_padded_sequence(x, torch.tensor([valid]), batch_first=True)
        expected = pad_packed_sequence(lstm(packed)[0], batch_first=True)[0]
        got = MaskedBiLSTM(copy.deepcopy(lstm))(x, padding)
        assert torch.allclose(got[:, :valid], expected, atol=1e-6), valid
