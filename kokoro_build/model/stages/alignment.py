"""The alignment split (`where: graph`): durations to a token-by-frame alignment."""
from __future__ import annotations

import torch
from torch import nn

from kokoro_build.model.stages.base import StageKind, TensorSpec, register_stage


class AlignmentModule(nn.Module):
    def __init__(self, frames: int):
        super().__init__()
        self.frames = frames

    def forward(self, durations):
        """durations [1, N] (whole frames per token, rounded; 0 for padding tokens) ->
        alignment [1, N, F]: 1 where frame f belongs to token n. Frames past the sum
        are all-zero columns, i.e. padding for prosody and the vocoder.

        KModel builds it with repeat_interleave and an index write (scatter); here it
        is a cumsum and two comparisons.
        """
        ends = torch.cumsum(durations, dim=-1)[..., None]
        starts = ends - durations[..., None]
        frame = torch.arange(self.frames, dtype=durations.dtype)[None, None, :]
        return ((frame >= starts) & (frame < ends)).to(durations.dtype)


@register_stage("alignment")
class Alignment(StageKind):
    def build_module(self, kmodel, sizes=None) -> nn.Module:
        # No weights; the frame count is the bucket's (an output size, baked in).
        return AlignmentModule(sizes["frames"]).eval()

    def inputs(self, sizes):
        return [TensorSpec("durations", (1, sizes["tokens"]))]

    def outputs(self, sizes):
        return [TensorSpec("alignment", (1, sizes["tokens"], sizes["frames"]))]

    def example_inputs(self, sizes, voice_pack, seed=0):
        """Durations of 1-8 frames, cut so they fit the frame bucket, and zero-padded tokens."""
        g = torch.Generator().manual_seed(seed)
        durations = torch.randint(1, 9, (sizes["tokens"],), generator=g).float()
        fits = torch.cumsum(durations, 0) <= sizes["frames"]
        return ((durations * fits)[None],)
