"""kokoro::mask_padding: a padded frame bucket gives the unpadded run's frames."""
import torch
from torch import nn

from kokoro_build.model.source.kmodel import import_kokoro_model
from kokoro_build.model.stages.frames import run_over_valid
from kokoro_build.model.surgery import SurgeryError, apply_passes

kokoro = import_kokoro_model()
from kokoro.istftnet import AdainResBlk1d  # noqa: E402

NOISE = ("kokoro::deterministic_noise", {})  # required before mask_padding


class Blocks(nn.Module):
    """Two AdaIN residual blocks (one upsampling) and a bidirectional LSTM, like prosody."""

    accepts_valid_frames = True

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lstm = nn.LSTM(6, 3, batch_first=True, bidirectional=True)
        self.first = AdainResBlk1d(6, 6, style_dim=4)
        self.second = AdainResBlk1d(6, 4, style_dim=4, upsample=True)

    def forward(self, x, style, valid_frames):
        def run(x, style):
            h, _ = self.lstm(x.transpose(1, 2))
            return (self.second(self.first(h.transpose(1, 2), style), style),)
        return run_over_valid(self, run, (x, style), (1, None), (2,), valid_frames)[0]


def _inputs(frames=20, valid=13):
    x = torch.randn(1, 6, frames, generator=torch.Generator().manual_seed(1))
    x[..., valid:] = 0
    return x, torch.randn(1, 4), torch.tensor([float(valid)])


def test_masked_bucket_equals_the_unpadded_run():
    module, inputs = Blocks().eval(), _inputs()
    unpadded = module(inputs[0][..., :13], inputs[1], None)
    padded = module(*inputs)  # the reference: crop, run, pad with zeros
    assert torch.equal(padded[..., :26], unpadded) and not padded[..., 26:].any()
    result = apply_passes(module, [NOISE, ("kokoro::mask_padding", {})], inputs)
    record = result.records[-1]
    assert record.sites == 5 + 1 + 4  # convs wider than 1 (incl. the pool), the LSTM, AdaINs
    assert record.psnr_db >= 100, record
    graph = torch.jit.trace(result.module, inputs, check_trace=False).inlined_graph
    assert "aten::instance_norm" not in {n.kind() for n in graph.nodes()}


def test_without_masking_padding_leaks_into_the_valid_frames():
    module, inputs = Blocks().eval(), _inputs()
    reference = module(*inputs)
    module.padding_masked = True  # run the full bucket, but with no masking sites
    leaked = module(*inputs)
    assert (leaked - reference)[..., :26].abs().max() > 1e-3


def test_mask_padding_needs_deterministic_noise_first():
    import pytest
    with pytest.raises(SurgeryError, match="must run after kokoro::deterministic_noise"):
        apply_passes(Blocks().eval(), [("kokoro::mask_padding", {})], _inputs())
