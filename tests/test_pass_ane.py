"""kokoro::cos_snake and kokoro::linear_to_conv (the `ane` preset's extra passes)."""
import torch
from torch import nn

from kokoro_build.model.source.kmodel import import_kokoro_model
from kokoro_build.model.surgery import apply_passes
from kokoro_build.model.surgery.passes.layout import Conv1x1Linear

kokoro = import_kokoro_model()
from kokoro.istftnet import AdaINResBlock1  # noqa: E402
from kokoro.modules import AdaLayerNorm  # noqa: E402


def _kinds(module, inputs):
    return {n.kind() for n in torch.jit.trace(module, inputs, check_trace=False).inlined_graph.nodes()}


def test_cos_snake_removes_pow_and_keeps_parity():
    torch.manual_seed(0)
    block = AdaINResBlock1(channels=8, kernel_size=3, dilation=(1, 3, 5), style_dim=4).eval()
    for alpha in (*block.alpha1, *block.alpha2):  # trained alphas vary around 1 (one is -0.026)
        alpha.data.uniform_(0.3, 2.0)
    inputs = (torch.randn(1, 8, 40), torch.randn(1, 4))
    assert "aten::pow" in _kinds(block, inputs)
    result = apply_passes(block, [("kokoro::cos_snake", {})], inputs)
    assert result.records[0].sites == 1 and result.records[0].psnr_db >= 60, result.records[0]
    kinds = _kinds(result.module, inputs)
    assert "aten::pow" not in kinds and "aten::cos" in kinds


class Mixer(nn.Module):
    """A sequence linear, a small one and a style projection, as in kokoro's encoders."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.proj, self.tiny = nn.Linear(32, 24), nn.Linear(4, 4)
        self.norm = AdaLayerNorm(style_dim=8, channels=24)

    def forward(self, x, small, style):
        return self.norm(self.proj(x), style), self.tiny(small)


def test_linear_to_conv_is_exact_and_leaves_small_and_style_linears():
    module = Mixer().eval()
    inputs = (torch.randn(1, 10, 32), torch.randn(1, 10, 4), torch.randn(1, 8))
    result = apply_passes(module, [("kokoro::linear_to_conv", {"min_features": 16})], inputs)
    assert result.records[0].sites == 1 and result.records[0].psnr_db >= 60
    rewritten = result.module
    assert isinstance(rewritten.proj, Conv1x1Linear)
    assert type(rewritten.tiny) is nn.Linear and type(rewritten.norm.fc) is nn.Linear
    assert "aten::_convolution" in _kinds(rewritten, inputs)


def test_conv1x1_linear_matches_on_2d_and_3d_inputs():
    torch.manual_seed(1)
    linear = nn.Linear(6, 3)
    conv = Conv1x1Linear(linear)
    for x in (torch.randn(2, 5, 6), torch.randn(2, 6)):
        assert torch.allclose(conv(x), linear(x), atol=1e-6)
