"""The vocoder split: KModel.decoder (AdaIN ResBlocks + iSTFTNet generator)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from kokoro_build.model.stages.base import StageKind, TensorSpec, register_stage
from kokoro_build.model.surgery.passes.noise import supply_noise
from kokoro_build.schema.contract import HARMONICS, samples_per_frame, seeded_noise
from kokoro_build.model.stages.frames import padded_frames, run_over_valid
from kokoro_build.model.stages.generator import (body_channels, decoder_features, generator_body, generator_tail,
                        source_spectrum, spectrum_channels, spectrum_rate)



class VocoderModule(nn.Module):
    accepts_valid_frames = True  # kokoro::mask_padding applies

    def __init__(self, decoder: nn.Module, samples_per_frame: int, extra_inputs: tuple[str, ...],
                 islands: tuple[str, ...] = (), spectrum_rate: int = 0):
        super().__init__()
        self.decoder, self.samples_per_frame = decoder, samples_per_frame
        self.extra_inputs = extra_inputs  # names of the optional inputs, in order
        self.islands, self.spectrum_rate = islands, spectrum_rate  # split-off stages (islands.py)

    def forward(self, asr, f0, n, style, *extra):
        """asr [1, 512, T], f0 [1, 2T] (Hz), n [1, 2T], style [1, 128] -> audio [1, T*spf].

        spf (samples per frame) = 2 * prod(upsample_rates) * hop = 600 for
        Kokoro-82M: one asr frame is 25 ms at 24 kHz. With deterministic_noise
        in `input` mode, also phase_init [1, 9] ~ U(0,1) and source_noise
        [1, 9, T*spf] ~ N(0,1), the random numbers the source would draw.
        With mask_padding, valid_frames [1]: frames past it are padding
        (zeros in, zeros out) and don't change the valid frames' audio.
        With islands (islands.py): `noise` replaces the noise inputs by the source
        spectrum har [1, 22, 120T + 1]; `tail` makes the output the features
        [1, 128, 120T + 1] that the tail stage turns into audio.
        """
        named = dict(zip(self.extra_inputs, extra))
        spf, har = self.samples_per_frame, named.get("har")
        noise = (named.get("phase_init"), named.get("source_noise"))

        def run(asr, f0, n, style, phase_init, source_noise, har):
            if source_noise is not None:
                supply_noise(self.decoder, phase_init, source_noise)
            if not self.islands:
                return (self.decoder(asr, f0, n, style).squeeze(1),)
            generator = self.decoder.generator
            if har is None:
                har = source_spectrum(generator, f0)
            x = generator_body(generator, decoder_features(self.decoder, asr, f0, n, style), style, har)
            return (x if "tail" in self.islands else generator_tail(generator, x).squeeze(1),)

        out_rate = self.spectrum_rate if "tail" in self.islands else spf
        return run_over_valid(self, run, (asr, f0, n, style, *noise, har),
                              (1, 2, 2, None, None, spf, self.spectrum_rate), (out_rate,),
                              named.get("valid_frames"))[0]


@register_stage("vocoder")
class Vocoder(StageKind):
    @property
    def samples_per_frame(self) -> int:
        return samples_per_frame(self.model_config)

    @property
    def islands(self) -> tuple[str, ...]:
        return tuple(self.options.get("islands", ()))

    @property
    def noise_inputs(self) -> bool:
        if "noise" in self.islands:
            return False  # the noise stage takes them
        options = self.pass_options("kokoro::deterministic_noise")
        return options is not None and options.get("mode", "input") == "input"

    def build_module(self, kmodel, sizes=None) -> nn.Module:
        extra = tuple(spec.name for spec in self.inputs({"frames": 1})[4:])
        module = VocoderModule(kmodel.decoder, self.samples_per_frame, extra,
                               self.islands, spectrum_rate(self.model_config))
        module.accepts_valid_frames = self.masked
        return module.eval()

    def inputs(self, sizes):
        t = sizes["frames"]
        return [TensorSpec("asr", (1, self.model_config["hidden_dim"], t)),
                TensorSpec("f0", (1, 2 * t)), TensorSpec("n", (1, 2 * t)),
                TensorSpec("style", (1, self.model_config["style_dim"]))] + self.extra_specs(t)

    def extra_specs(self, t: int) -> list[TensorSpec]:
        """The optional inputs after the fixed ones: source noise, then valid_frames."""
        specs = []
        if "noise" in self.islands:
            specs.append(TensorSpec("har", (1, spectrum_channels(self.model_config),
                                            spectrum_rate(self.model_config) * t + 1)))
        if self.noise_inputs:
            specs += [TensorSpec("phase_init", (1, HARMONICS)),
                      TensorSpec("source_noise", (1, HARMONICS, t * self.samples_per_frame))]
        if self.masked:
            specs.append(TensorSpec("valid_frames", (1,)))
        return specs

    def extra_examples(self, t: int, valid: int) -> tuple:
        """Values for extra_specs: noise drawn for the valid frames, as the unpadded
        reference draws it (then zero-padded), and the valid frame count."""
        extra = ()
        if "noise" in self.islands:  # what the noise stage makes of the same f0 and noise
            extra += (self._source_spectrum_example(t, valid),)
        if self.noise_inputs:
            phase_init, noise = seeded_noise(valid * self.samples_per_frame, HARMONICS, seed=0)
            extra += (phase_init, F.pad(noise, (0, (t - valid) * self.samples_per_frame)))
        if self.masked:
            extra += (torch.tensor([float(valid)]),)
        return extra

    def _source_spectrum_example(self, t: int, valid: int):
        """A stand-in for the noise stage's har: magnitudes |N(0, 1)|, phases U(-pi, pi),
        zero past the valid frames (as the masked noise stage leaves them)."""
        g = torch.Generator().manual_seed(1)
        bins, rate = spectrum_channels(self.model_config) // 2, spectrum_rate(self.model_config)
        magnitude = torch.randn(1, bins, rate * t + 1, generator=g).abs()
        phase = math.pi * (2 * torch.rand(1, bins, rate * t + 1, generator=g) - 1)
        har = torch.cat([magnitude, phase], dim=1)
        har[..., rate * valid + 1:] = 0.0
        return har

    def outputs(self, sizes):
        t = sizes["frames"]
        if "tail" in self.islands:
            return [TensorSpec("features", (1, body_channels(self.model_config),
                                            spectrum_rate(self.model_config) * t + 1))]
        return [TensorSpec("audio", (1, t * self.samples_per_frame))]

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
        valid = padded_frames(t) if self.masked else t
        g = torch.Generator().manual_seed(seed)
        asr = 0.5 * torch.randn(1, self.model_config["hidden_dim"], t, generator=g)
        steps = torch.linspace(0, 6 * math.pi, 2 * t)
        f0 = 170 + 80 * torch.sin(steps)[None]
        f0[:, (torch.arange(2 * t) % 50) >= 40] = 0.0  # unvoiced stretches
        n = torch.randn(1, 2 * t, generator=g)
        asr[..., valid:], f0[:, 2 * valid:], n[:, 2 * valid:] = 0.0, 0.0, 0.0  # padding
        index = min(t // 4, voice_pack.shape[0] - 1)
        style = voice_pack[index].reshape(1, -1)[:, : self.model_config["style_dim"]].clone()
        return (asr, f0, n, style) + self.extra_examples(t, valid)
