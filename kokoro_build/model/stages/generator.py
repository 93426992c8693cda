"""kokoro's iSTFTNet Generator cut into source, body and tail, with the
arithmetic of Generator.forward unchanged (tests/test_islands.py checks that the
three in a row equal the decoder). The islands (islands.py) run the pieces as
separate stages."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def spectrum_rate(model_config: dict) -> int:
    """STFT frames per asr frame in the generator: 2 * prod(upsample_rates). The
    spectra carry one more frame in all (the reflection pad's)."""
    return 2 * math.prod(model_config["istftnet"]["upsample_rates"])


def body_channels(model_config: dict) -> int:
    """Channels entering conv_post: each upsampling halves the initial channels."""
    ist = model_config["istftnet"]
    return ist["upsample_initial_channel"] // 2 ** len(ist["upsample_rates"])


def spectrum_channels(model_config: dict) -> int:
    """Magnitude and phase of n_fft/2 + 1 bins."""
    return model_config["istftnet"]["gen_istft_n_fft"] + 2


def source_spectrum(generator: nn.Module, f0: torch.Tensor) -> torch.Tensor:
    """f0 [1, 2T] (Hz) -> har [1, n_fft + 2, 120T + 1]: the harmonic source, and its STFT."""
    f0_samples = generator.f0_upsamp(f0[:, None]).transpose(1, 2)
    source = generator.m_source(f0_samples)[0].transpose(1, 2).squeeze(1)
    magnitude, phase = generator.stft.transform(source)
    return torch.cat([magnitude, phase], dim=1)


def generator_body(generator: nn.Module, x, style, har) -> torch.Tensor:
    """The upsampling stack, with the source injected at each scale -> [1, C, 120T + 1]."""
    for i, upsample in enumerate(generator.ups):
        x = F.leaky_relu(x, negative_slope=0.1)
        source = generator.noise_res[i](generator.noise_convs[i](har), style)
        x = upsample(x)
        if i == len(generator.ups) - 1:
            x = generator.reflection_pad(x)
        x = x + source
        kernels = generator.num_kernels
        x = sum(block(x, style) for block in generator.resblocks[i * kernels:(i + 1) * kernels]) / kernels
    return x


def generator_tail(generator: nn.Module, x) -> torch.Tensor:
    """[1, C, 120T + 1] -> audio [1, 1, 600T]: conv_post, exp and sin, the iSTFT."""
    x = generator.conv_post(F.leaky_relu(x))
    bins = generator.post_n_fft // 2 + 1
    return generator.stft.inverse(torch.exp(x[:, :bins]), torch.sin(x[:, bins:]))


def decoder_features(decoder: nn.Module, asr, f0, n, style) -> torch.Tensor:
    """kokoro's Decoder.forward up to its generator: -> [1, 256, 2T]."""
    f0_features, n_features = decoder.F0_conv(f0[:, None]), decoder.N_conv(n[:, None])
    x = decoder.encode(torch.cat([asr, f0_features, n_features], dim=1), style)
    residual, concat = decoder.asr_res(asr), True
    for block in decoder.decode:
        if concat:  # until the first upsampling block
            x = torch.cat([x, residual, f0_features, n_features], dim=1)
        x = block(x, style)
        concat = concat and block.upsample_type == "none"
    return x
