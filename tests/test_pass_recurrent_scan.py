"""executorch::recurrent_scan: nn.LSTM / nn.GRU as a scan loop, equal to torch's."""
import pytest
import torch
from torch import nn

from kokoro_build.model.surgery import apply_passes
from kokoro_build.model.surgery.passes.recurrent_scan import ScanGRU, ScanLSTM


class Recurrent(nn.Module):
    """kokoro's shape of LSTM (bidirectional, batch_first), a unidirectional one, and
    g2p-en's use of a GRU (its final state)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.bi = nn.LSTM(12, 8, batch_first=True, bidirectional=True)
        self.uni = nn.LSTM(16, 6, batch_first=True)
        self.gru = nn.GRU(6, 5, batch_first=True)

    def forward(self, x):
        self.bi.flatten_parameters()  # kokoro calls it; the scanned LSTM must accept it
        y, (h, c) = self.bi(x)
        z = self.uni(y)[0]
        out, last = self.gru(z)
        return y, h, c, z, out, last[0]


def test_lstm_and_gru_become_scans_equal_to_torch_at_every_length():
    module = Recurrent().eval()
    result = apply_passes(module, [("executorch::recurrent_scan", {})], (torch.randn(2, 9, 12),))
    record = result.records[0]
    assert record.sites == 3 and record.psnr_db > 120  # batch 2: the loop carries [B, H]
    assert [type(m) for m in (result.module.bi, result.module.uni, result.module.gru)] == [ScanLSTM, ScanLSTM, ScanGRU]
    for steps in (1, 5, 40):
        x = torch.randn(1, steps, 12)
        with torch.no_grad():
            for want, got in zip(module(x), result.module(x)):
                assert got.shape == want.shape
                assert torch.allclose(got, want, atol=1e-6)


def test_rewriting_twice_changes_nothing_more():
    module = Recurrent().eval()
    once = apply_passes(module, [("executorch::recurrent_scan", {})], (torch.randn(1, 4, 12),)).module
    again = apply_passes(once, [("executorch::recurrent_scan", {})], (torch.randn(1, 4, 12),))
    assert again.records[0].sites == 0


def test_what_it_cannot_rewrite_is_refused_by_name():
    with pytest.raises(ValueError, match="ScanLSTM handles one layer"):
        ScanLSTM(nn.LSTM(4, 4, num_layers=2))
    scanned = ScanGRU(nn.GRU(4, 3, batch_first=True))
    with pytest.raises(ValueError, match="starts from zeros"):
        scanned(torch.randn(1, 2, 4), torch.zeros(1, 1, 3))


def test_the_scan_exports_with_a_dynamic_length():
    """The point of the pass: one graph for every length (nn.LSTM specializes)."""
    module = apply_passes(Recurrent().eval(), [("executorch::recurrent_scan", {})],
                          (torch.randn(1, 4, 12),)).module
    steps = torch.export.Dim("steps", min=2, max=64)
    exported = torch.export.export(module, (torch.randn(1, 10, 12),), dynamic_shapes=({1: steps},), strict=False)
    x = torch.randn(1, 33, 12)
    with torch.no_grad():
        for want, got in zip(module(x), exported.module()(x)):
            assert torch.allclose(got, want, atol=1e-6)
    with pytest.raises(Exception, match="(?i)constraint|specializ"):
        torch.export.export(Recurrent().eval(), (torch.randn(1, 10, 12),), dynamic_shapes=({1: steps},),
                            strict=False)
