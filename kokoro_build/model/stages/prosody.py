"""The prosody split: the predictor's F0 and energy (N) heads over aligned frames."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kokoro_build.model.stages.base import StageKind, TensorSpec, register_stage
from kokoro_build.model.stages.frames import padded_frames, run_over_valid


class ProsodyModule(nn.Module):
    accepts_valid_frames = True  # kokoro::mask_padding applies

    def __init__(self, predictor: nn.Module, extra_inputs: tuple[str, ...]):
        super().__init__()
        self.predictor = predictor
        self.extra_inputs = extra_inputs

    def forward(self, en, style, *extra):
        """en [1, 640, F] (the duration encoder's d, aligned: d^T @ alignment),
        style [1, 128] (the predictor half of ref_s) -> f0 [1, 2F] (Hz), n [1, 2F].
        With mask_padding, valid_frames [1]: frames past it are padding."""
        named = dict(zip(self.extra_inputs, extra))
        return run_over_valid(self, self.predictor.F0Ntrain, (en, style), (1, None), (2, 2),
                              named.get("valid_frames"))


@register_stage("prosody")
class Prosody(StageKind):
    @property
    def channels(self) -> int:
        return self.model_config["hidden_dim"] + self.model_config["style_dim"]

    def build_module(self, kmodel, sizes=None) -> nn.Module:
        extra = ("valid_frames",) if self.masked else ()
        module = ProsodyModule(kmodel.predictor, extra)
        module.accepts_valid_frames = self.masked
        return module.eval()

    def inputs(self, sizes):
        t = sizes["frames"]
        specs = [TensorSpec("en", (1, self.channels, t)),
                 TensorSpec("style", (1, self.model_config["style_dim"]))]
        return specs + ([TensorSpec("valid_frames", (1,))] if self.masked else [])

    def outputs(self, sizes):
        t = sizes["frames"]
        return [TensorSpec("f0", (1, 2 * t)), TensorSpec("n", (1, 2 * t))]

    def parity_sizes(self, sizes):
        return {"frames": 120}

    def example_inputs(self, sizes, voice_pack, seed=0):
        """Token features ~ N(0, 1) held for 2-8 frames each (what alignment does),
        the style in the last 128 channels as the duration encoder appends it,
        and the predictor half of a real voice's style."""
        t = sizes["frames"]
        valid = padded_frames(t) if self.masked else t
        g = torch.Generator().manual_seed(seed)
        style_dim = self.model_config["style_dim"]
        style = voice_pack[min(t // 8, voice_pack.shape[0] - 1)].reshape(1, -1)[:, style_dim:].clone()
        durations = torch.randint(2, 9, (valid,), generator=g)
        tokens = torch.randn(self.model_config["hidden_dim"], valid, generator=g)
        features = torch.repeat_interleave(tokens, durations, dim=1)[:, :valid]
        en = torch.cat([features, style.T.expand(-1, valid)], dim=0)[None]
        en = F.pad(en, (0, t - valid))
        return (en, style) + ((torch.tensor([float(valid)]),) if self.masked else ())
