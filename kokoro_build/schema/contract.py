"""What the stages' artifacts and the chain agree on, in one place: frame
arithmetic, the harmonic source's noise inputs, and the G2P's input ids.
(How padded buckets are kept exact is each kind's padding rule: schema/kinds.py.)

Torch-free to import; `seeded_noise` imports torch when it is called.
"""
from __future__ import annotations

import math

HARMONICS = 9  # kokoro's Generator builds its source with harmonic_num=8: 8 overtones + f0


def samples_per_frame(model_config: dict) -> int:
    """Audio samples per asr frame: 2 * prod(upsample_rates) * hop (600 for Kokoro-82M,
    so one frame is 25 ms at 24 kHz)."""
    ist = model_config["istftnet"]
    return 2 * math.prod(ist["upsample_rates"]) * ist["gen_istft_hop_size"]


def seeded_noise(length: int, harmonics: int = HARMONICS, seed: int = 0):
    """(phase_init [1, harmonics], source_noise [1, harmonics, length]): the noise
    inputs of a stage built with kokoro::deterministic_noise {mode: input}, drawn in
    the order and memory layout kokoro's SineGen draws them, so an unpatched model run
    after torch.manual_seed(seed) sees the same numbers. (SineGen's randn_like keeps
    its input's transposed strides, and torch fills a non-contiguous tensor with a
    different sampler than a contiguous one: draw into the same layout.)"""
    import torch

    g = torch.Generator().manual_seed(seed)
    phase_init = torch.rand(1, harmonics, generator=g)
    noise = torch.empty(1, harmonics, length).transpose(1, 2).normal_(generator=g)
    return phase_init, noise.transpose(1, 2).contiguous()


def word_ids(word: str, graphemes: list[str]) -> list[int]:
    """A lowercase word -> the neural G2P's input ids: letters (others <unk>), then </s>."""
    index = {g: i for i, g in enumerate(graphemes)}
    return [index.get(c, index["<unk>"]) for c in word] + [index["</s>"]]
