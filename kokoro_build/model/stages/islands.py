"""The vocoder's fp32 islands, as stages of their own.

A Core ML model has one compute precision, and `FP16ComputePrecision(op_selector)`
doesn't insert the fp32 casts (laishere/kokoro-coreml's notes), so an island is a separate model.
laishere/kokoro-coreml runs two of them in fp32 around an fp16 vocoder:
- `noise`: the harmonic source, SineGen's `cumsum -> sin`, which collapses in
  fp16 (correlation 0.94 -> 0.82), and its STFT;
- `tail`: `conv_post -> exp -> sin -> iSTFT`.

The vocoder stage takes `islands: [noise, tail]` to leave these parts out: it then
takes the noise stage's `har` and gives the tail stage its `features`.
"""
from __future__ import annotations

import torch
from torch import nn

from kokoro_build.model.surgery.passes.noise import supply_noise
from kokoro_build.model.stages.base import StageKind, TensorSpec, register_stage
from kokoro_build.schema.contract import samples_per_frame
from kokoro_build.model.stages.frames import padded_frames, run_over_valid
from kokoro_build.model.stages.generator import (body_channels, generator_tail, source_spectrum, spectrum_channels,
                        spectrum_rate)
from kokoro_build.model.stages.vocoder import Vocoder


class SourceParts(nn.Module):
    """The generator's children that make the source spectrum (nothing else, so
    surgery and tracing see only what the island runs)."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.f0_upsamp, self.m_source, self.stft = generator.f0_upsamp, generator.m_source, generator.stft


class TailParts(nn.Module):
    def __init__(self, generator: nn.Module):
        super().__init__()
        self.conv_post, self.stft, self.post_n_fft = generator.conv_post, generator.stft, generator.post_n_fft


class NoiseModule(nn.Module):
    accepts_valid_frames = True  # kokoro::mask_padding applies

    def __init__(self, generator: nn.Module, rates: tuple[int, int], extra_inputs: tuple[str, ...]):
        super().__init__()
        self.parts = SourceParts(generator)
        self.samples_per_frame, self.spectrum_rate = rates
        self.extra_inputs = extra_inputs

    def forward(self, f0, *extra):
        """f0 [1, 2T] (Hz) -> har [1, 22, 120T + 1]. As the vocoder: phase_init [1, 9] and
        source_noise [1, 9, 600T] with deterministic_noise `input`, valid_frames [1]
        with mask_padding."""
        named = dict(zip(self.extra_inputs, extra))

        def run(f0, phase_init, source_noise):
            if source_noise is not None:
                supply_noise(self.parts, phase_init, source_noise)
            return (source_spectrum(self.parts, f0),)

        return run_over_valid(self, run, (f0, named.get("phase_init"), named.get("source_noise")),
                              (2, None, self.samples_per_frame), (self.spectrum_rate,),
                              named.get("valid_frames"))[0]


class TailModule(nn.Module):
    accepts_valid_frames = True

    def __init__(self, generator: nn.Module, rates: tuple[int, int], extra_inputs: tuple[str, ...]):
        super().__init__()
        self.parts = TailParts(generator)
        self.samples_per_frame, self.spectrum_rate = rates
        self.extra_inputs = extra_inputs

    def forward(self, features, *extra):
        """features [1, 128, 120T + 1] (the vocoder body's output) -> audio [1, 600T];
        with mask_padding, valid_frames [1]."""
        named = dict(zip(self.extra_inputs, extra))

        def run(features):
            return (generator_tail(self.parts, features).squeeze(1),)

        return run_over_valid(self, run, (features,), (self.spectrum_rate,), (self.samples_per_frame,),
                              named.get("valid_frames"))[0]


@register_stage("noise")
class Noise(Vocoder):
    """The source island: the vocoder's f0, noise inputs and frame buckets."""

    def build_module(self, kmodel, sizes=None) -> nn.Module:
        extra = tuple(spec.name for spec in self.extra_specs(1))
        rates = (self.samples_per_frame, spectrum_rate(self.model_config))
        module = NoiseModule(kmodel.decoder.generator, rates, extra)
        module.accepts_valid_frames = self.masked
        return module.eval()

    def inputs(self, sizes):
        return [TensorSpec("f0", (1, 2 * sizes["frames"]))] + self.extra_specs(sizes["frames"])

    def outputs(self, sizes):
        length = spectrum_rate(self.model_config) * sizes["frames"] + 1
        return [TensorSpec("har", (1, spectrum_channels(self.model_config), length))]

    def example_inputs(self, sizes, voice_pack, seed=0):
        """The vocoder's f0 contour and noise (see Vocoder.example_inputs)."""
        full = super().example_inputs(sizes, voice_pack, seed)
        return (full[1],) + full[4:]

    def parity_view(self, output, value):
        """har as the complex spectrum (real, imaginary), not (magnitude, phase): a phase
        near +-pi flips sign on rounding, and a bin with no energy has any phase."""
        if output != "har":
            return value
        magnitude, phase = value.chunk(2, dim=1)
        return torch.cat([magnitude * torch.cos(phase), magnitude * torch.sin(phase)], dim=1)


@register_stage("tail")
class Tail(StageKind):
    def build_module(self, kmodel, sizes=None) -> nn.Module:
        rates = (samples_per_frame(self.model_config), spectrum_rate(self.model_config))
        module = TailModule(kmodel.decoder.generator, rates, ("valid_frames",) if self.masked else ())
        module.accepts_valid_frames = self.masked
        return module.eval()

    def inputs(self, sizes):
        length = spectrum_rate(self.model_config) * sizes["frames"] + 1
        specs = [TensorSpec("features", (1, body_channels(self.model_config), length))]
        return specs + ([TensorSpec("valid_frames", (1,))] if self.masked else [])

    def outputs(self, sizes):
        return [TensorSpec("audio", (1, sizes["frames"] * samples_per_frame(self.model_config)))]

    def parity_sizes(self, sizes):
        return {"frames": 120}

    def example_inputs(self, sizes, voice_pack, seed=0):
        """Body features ~ N(0, 1), zero past the valid frames (a quarter is padding)."""
        t = sizes["frames"]
        valid = padded_frames(t) if self.masked else t
        rate = spectrum_rate(self.model_config)
        g = torch.Generator().manual_seed(seed)
        features = torch.randn(1, body_channels(self.model_config), rate * t + 1, generator=g)
        features[..., rate * valid + 1:] = 0.0
        return (features,) + ((torch.tensor([float(valid)]),) if self.masked else ())
