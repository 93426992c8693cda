"""The vocoder split: KModel.decoder (AdaIN ResBlocks + iSTFTNet generator)."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..surgery.passes.noise import seeded_noise, supply_noise
from .base import StageKind, TensorSpec, register_stage

HARMONICS = 9  # kokoro's Generator builds its source with harmonic_num=8


class VocoderModule(nn.Module):
    def __init__(self, decoder: nn.Module):
        super().__init__()
        self.decoder = decoder

    def forward(self, asr, f0, n, style, phase_init=None, source_noise=None):
        """asr [1, 512, T], f0 [1, 2T] (Hz), n [1, 2T], style [1, 128] -> audio [1, T*spf].

        spf (samples per frame) = 2 * prod(upsample_rates) * hop = 600 for
        Kokoro-82M: one asr frame is 25 ms at 24 kHz. With deterministic_noise
        in `input` mode, also phase_init [1, 9] ~ U(0,1) and source_noise
        [1, 9, T*spf] ~ N(0,1), the random numbers the source would draw.
        """
        if source_noise is not None:
            supply_noise(self.decoder, phase_init, source_noise)
        return self.decoder(asr, f0, n, style).squeeze(1)


@register_stage("vocoder")
class Vocoder(StageKind):
    @property
    def samples_per_frame(self) -> int:
        ist = self.model_config["istftnet"]
        return 2 * math.prod(ist["upsample_rates"]) * ist["gen_istft_hop_size"]

    @property
    def noise_inputs(self) -> bool:
        options = self.pass_options("kokoro::deterministic_noise")
        return options is not None and options.get("mode", "input") == "input"

    def build_module(self, kmodel) -> nn.Module:
        return VocoderModule(kmodel.decoder).eval()

    def inputs(self, sizes):
        t = sizes["frames"]
        return [TensorSpec("asr", (1, self.model_config["hidden_dim"], t)),
                TensorSpec("f0", (1, 2 * t)), TensorSpec("n", (1, 2 * t)),
                TensorSpec("style", (1, self.model_config["style_dim"]))] + self._noise_specs(t)

    def _noise_specs(self, t: int) -> list[TensorSpec]:
        if not self.noise_inputs:
            return []
        return [TensorSpec("phase_init", (1, HARMONICS)),
                TensorSpec("source_noise", (1, HARMONICS, t * self.samples_per_frame))]

    def outputs(self, sizes):
        return [TensorSpec("audio", (1, sizes["frames"] * self.samples_per_frame))]

    def parity_sizes(self, sizes):
        # Surgery doesn't depend on the bucket: check it once at 3 s for every
        # bucket (the full 30 s bucket made parity 7x slower than tracing).
        return {"frames": 120}

    def example_inputs(self, sizes, voice_pack, seed=0):
        """asr ~ N(0, 0.5); a voiced f0 contour (90-250 Hz) with unvoiced gaps; n ~ N(0,1);
        the decoder half of a real voice pack's style; noise inputs (if any) equal
        to what the unpatched source draws after torch.manual_seed(0), the seed
        surgery parity runs with."""
        t = sizes["frames"]
        g = torch.Generator().manual_seed(seed)
        asr = 0.5 * torch.randn(1, self.model_config["hidden_dim"], t, generator=g)
        steps = torch.linspace(0, 6 * math.pi, 2 * t)
        f0 = 170 + 80 * torch.sin(steps)[None]
        f0[:, (torch.arange(2 * t) % 50) >= 40] = 0.0  # unvoiced stretches
        n = torch.randn(1, 2 * t, generator=g)
        index = min(t // 4, voice_pack.shape[0] - 1)
        style = voice_pack[index].reshape(1, -1)[:, : self.model_config["style_dim"]].clone()
        if not self.noise_inputs:
            return asr, f0, n, style
        return (asr, f0, n, style) + seeded_noise(t * self.samples_per_frame, HARMONICS, seed=0)
