"""The synthesizer split: prosody and vocoder fused, fed the alignment (the seed
guide's two-stage design: duration, then everything else in one model)."""
from __future__ import annotations

import torch
from torch import nn

from kokoro_build.model.surgery.passes.noise import supply_noise
from kokoro_build.model.surgery.passes.padding import frames_mask
from kokoro_build.model.stages.base import TensorSpec, register_stage
from kokoro_build.model.stages.frames import padded_frames, run_over_valid
from kokoro_build.model.stages.vocoder import Vocoder


class SynthesizerModule(nn.Module):
    accepts_valid_frames = True  # kokoro::mask_padding applies

    def __init__(self, predictor: nn.Module, decoder: nn.Module, samples_per_frame: int,
                 style_dim: int, extra_inputs: tuple[str, ...]):
        super().__init__()
        self.predictor, self.decoder = predictor, decoder
        self.samples_per_frame, self.style_dim = samples_per_frame, style_dim
        self.extra_inputs = extra_inputs

    def forward(self, d, t_en, alignment, ref_s, *extra):
        """d [1, N, 640] and t_en [1, 512, N] (the duration stage's outputs; padding
        tokens are zero rows of the alignment), alignment [1, N, F], ref_s [1, 256],
        and as the vocoder: phase_init, source_noise [1, 9, 600F], valid_frames [1]
        -> audio [1, 600F]. The same arithmetic as KModel after its alignment."""
        named = dict(zip(self.extra_inputs, extra))
        valid = named.get("valid_frames")

        def run(alignment, phase_init, source_noise):
            if source_noise is not None:
                supply_noise(self.decoder, phase_init, source_noise)
            f0, n = self.predictor.F0Ntrain(d.transpose(-1, -2) @ alignment, ref_s[:, self.style_dim:])
            if valid is not None and getattr(self, "padding_masked", False):
                # zero f0/n past the valid frames, as the split chain pads them
                keep = frames_mask(valid, alignment.shape[-1], f0.shape[-1]).to(f0.dtype)
                f0, n = f0 * keep, n * keep
            return (self.decoder(t_en @ alignment, f0, n, ref_s[:, : self.style_dim]).squeeze(1),)

        spf = self.samples_per_frame
        return run_over_valid(self, run, (alignment, named.get("phase_init"), named.get("source_noise")),
                              (1, None, spf), (spf,), named.get("valid_frames"))[0]


@register_stage("synthesizer")
class Synthesizer(Vocoder):
    """The vocoder's noise and padding inputs, after the prosody's and vocoder's own."""

    def build_module(self, kmodel, sizes=None) -> nn.Module:
        extra = tuple(spec.name for spec in self.extra_specs(1))
        module = SynthesizerModule(kmodel.predictor, kmodel.decoder, self.samples_per_frame,
                                   self.model_config["style_dim"], extra)
        module.accepts_valid_frames = self.masked
        return module.eval()

    def inputs(self, sizes):
        n, t = sizes["tokens"], sizes["frames"]
        hidden, style = self.model_config["hidden_dim"], self.model_config["style_dim"]
        return [TensorSpec("d", (1, n, hidden + style)), TensorSpec("t_en", (1, hidden, n)),
                TensorSpec("alignment", (1, n, t)), TensorSpec("ref_s", (1, 2 * style))] + \
            self.extra_specs(t)

    def parity_sizes(self, sizes):
        return {"tokens": min(sizes["tokens"], 64), "frames": 120}

    def example_inputs(self, sizes, voice_pack, seed=0):
        """Token features ~ N(0, 1) (style appended to d as the duration encoder does),
        durations of 2-8 frames filling the valid frames, a real voice's style."""
        n, t = sizes["tokens"], sizes["frames"]
        valid = padded_frames(t) if self.masked else t
        g = torch.Generator().manual_seed(seed)
        hidden, style_dim = self.model_config["hidden_dim"], self.model_config["style_dim"]
        ref_s = voice_pack[min(n // 2, voice_pack.shape[0] - 1)].reshape(1, -1).clone()
        d = torch.cat([torch.randn(1, n, hidden, generator=g),
                       ref_s[:, None, style_dim:].expand(1, n, style_dim)], dim=-1)
        t_en = 0.5 * torch.randn(1, hidden, n, generator=g)
        durations = torch.randint(2, 9, (n,), generator=g)
        durations[-1] += max(valid - int(durations.sum()), 0)  # fill every valid frame
        owner = torch.repeat_interleave(torch.arange(n), durations)[:valid]
        alignment = torch.zeros(1, n, t)
        alignment[0, owner, torch.arange(valid)] = 1.0
        return (d, t_en, alignment, ref_s) + self.extra_examples(t, valid)
