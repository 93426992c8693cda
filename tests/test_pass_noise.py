"""kokoro::deterministic_noise on kokoro's own source module (small rates)."""
import copy

import pytest
import torch
from torch import nn

from kokoro_build.model.source.kmodel import import_kokoro_model
from kokoro_build.model.surgery import SurgeryError, apply_passes, make_pass
from kokoro_build.model.surgery.passes.noise import supply_noise
from kokoro_build.schema.contract import seeded_noise

kokoro = import_kokoro_model()
from kokoro.istftnet import SourceModuleHnNSF  # noqa: E402

UPSAMPLE, STEPS = 30, 600  # samples per f0 step, samples
RANDOM_OPS = {"aten::rand", "aten::randn", "aten::randn_like", "aten::rand_like", "aten::normal",
              "aten::uniform_", "aten::normal_"}
WRITE_OPS = {"aten::index_put_", "aten::copy_", "aten::select_scatter", "aten::slice_scatter",
             "aten::remainder", "aten::fmod"}


class Source(nn.Module):
    """f0 [1, L, 1] (+ noise inputs) -> the harmonic source [1, L, 1], as the Generator uses it."""

    def __init__(self):
        super().__init__()
        self.source = SourceModuleHnNSF(24000, UPSAMPLE, harmonic_num=8, voiced_threshod=10)

    def forward(self, f0, phase_init=None, source_noise=None):
        if source_noise is not None:
            supply_noise(self, phase_init, source_noise)
        return self.source(f0)[0]


def _f0():
    """Per-sample f0 as kokoro's Generator feeds SineGen: an f0 track nearest-upsampled."""
    steps = 170 + 80 * torch.sin(torch.linspace(0, 12, STEPS // UPSAMPLE))
    f0 = torch.repeat_interleave(steps, UPSAMPLE)[None, :, None]
    f0[:, 200:320] = 0.0  # unvoiced
    return f0


def _kinds(module, inputs):
    graph = torch.jit.trace(module, inputs, check_trace=False).inlined_graph
    return {node.kind() for node in graph.nodes()}


def test_seeded_noise_is_what_the_unpatched_source_draws():
    module = Source().eval()
    inputs = (_f0(),) + seeded_noise(STEPS, 9)
    assert RANDOM_OPS & _kinds(module, inputs), "the unpatched source draws random numbers"
    result = apply_passes(module, [("kokoro::deterministic_noise", {"mode": "input"})], inputs)
    record = result.records[0]
    assert record.sites == 2 and record.psnr_db == float("inf"), record
    kinds = _kinds(result.module, inputs)
    assert not kinds & (RANDOM_OPS | WRITE_OPS), kinds & (RANDOM_OPS | WRITE_OPS)


def test_input_mode_without_its_inputs_is_a_clear_error():
    module = copy.deepcopy(Source().eval())
    make_pass("kokoro::deterministic_noise").apply(module)
    with pytest.raises(ValueError, match=r"source_noise of shape \[1, 9, 600\]"):
        module(_f0())


def test_hash_mode_is_deterministic_and_keeps_noise_in_unvoiced_stretches():
    module = Source().eval()
    make_pass("kokoro::deterministic_noise", {"mode": "hash"}).apply(module)
    first, second = module(_f0()), module(_f0())
    assert torch.equal(first, second)
    assert first[0, 210:310].std() > 1e-3, "unvoiced stretch must still carry noise"
    assert not _kinds(module, (_f0(),)) & (RANDOM_OPS | WRITE_OPS)


def test_zero_mode_needs_conv_stft_and_pins_its_phase():
    module = Source().eval()
    with pytest.raises(SurgeryError, match="must run after kokoro::stft_conv"):
        apply_passes(module, [("kokoro::deterministic_noise", {"mode": "zero"})], (_f0(),))
    silent = copy.deepcopy(module)
    make_pass("kokoro::deterministic_noise", {"mode": "zero"}).apply(silent)
    out = silent(_f0())
    assert torch.equal(out, silent(_f0()))
    unvoiced = out[0, 210:310]
    assert unvoiced.max() == unvoiced.min(), "no noise: the unvoiced source is constant"


def test_zero_mode_sets_the_phase_floor_on_conv_stft():
    from kokoro_build.model.surgery.passes.stft import ConvSTFT
    holder = nn.Module()
    holder.stft, holder.gen = ConvSTFT(8, 2, 8), Source()
    make_pass("kokoro::deterministic_noise", {"mode": "zero"}).apply(holder)
    assert holder.stft.phase_floor > 0
    _, phase = holder.stft.transform(torch.full((1, 64), 0.3))
    assert torch.equal(phase[0, 2:], torch.zeros_like(phase[0, 2:])), "near-zero bins get phase 0"
