"""Frame buckets that pad without changing the valid frames' result."""
from __future__ import annotations

import torch
from torch import nn

from kokoro_build.model.surgery.registry import SurgeryPass, register_pass
from kokoro_build.model.surgery.rewrite import swap_forward
from kokoro_build.model.surgery.passes.lstm import MaskedBiLSTM


def set_valid_frames(module, valid_frames, bucket_frames: int) -> None:
    """Tell every masking site in `module` how many of the bucket's frames are real."""
    for child in module.modules():
        if getattr(child, "masks_padding", False):
            child.valid_frames, child.bucket_frames = valid_frames, bucket_frames


def frames_mask(valid_frames, bucket_frames: int, length: int):
    """[length] bool, True on the valid prefix, for a tensor at any multiple of the
    frame rate: (bucket - valid) frames times the rate are padding, and any extra
    samples (a reflection pad, an STFT's +1 frame) sit on the valid side.

    Built per frame, then repeated: in an fp16 program, an index ramp over the
    144,001 samples of a 30 s bucket would hold integers above 2048 (inexact) and
    65504 (inf). The MIL evaluator found exactly that in the 1200-frame vocoder.
    The bucket stays a traced shape value (a fixed-shape conversion folds it into a
    constant), so one trace serves every bucket of a materialized stage; the rate and
    the extra samples are the same in every bucket of a site, so they are constants.
    (Traced, a sample count went through fp16 in an fp16 program: 13,441 samples came
    out as 13,440, and the extra sample was lost.)"""
    rate, extra = _rate_and_extra(length, bucket_frames)
    keep = (torch.arange(bucket_frames, dtype=valid_frames.dtype) < valid_frames).to(valid_frames.dtype)
    keep = (keep[:, None] * torch.ones(1, rate, dtype=keep.dtype)).reshape(-1)
    if extra:
        keep = torch.cat([torch.ones(extra, dtype=keep.dtype), keep])
    return keep > 0.5


def _rate_and_extra(length, bucket_frames) -> tuple[int, int]:
    """Samples per frame, and the samples past a whole number of frames (an STFT's + 1),
    as Python ints: what a site's length is made of, whatever the bucket."""
    import warnings
    with warnings.catch_warnings():  # int() of a traced size: the result is bucket-independent
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        length, bucket_frames = int(length), int(bucket_frames)
    rate = length // bucket_frames
    return rate, length - rate * bucket_frames


def valid_fraction(valid_frames, bucket_frames: int, length: int):
    """The share of `length` that frames_mask keeps, without forming the count (a
    count of samples overflows fp16): (valid * rate + extra) / length, as
    (valid + e) / (bucket + e) with e = extra / rate, so that only the bucket (at most
    a few thousand frames, exact in fp16) is a traced size."""
    rate, extra = _rate_and_extra(length, bucket_frames)
    share = extra / rate
    return (valid_frames + share) / (bucket_frames + share)


def valid_mask(site, length: int):
    """The mask for a masking site, or None when no valid length was supplied."""
    valid = getattr(site, "valid_frames", None)
    return None if valid is None else frames_mask(valid, site.bucket_frames, length)


# Centred values are scaled by this before squaring, so that squares stay below fp16's
# 65504 for |x - mean| up to 4096.
_VARIANCE_SCALE = 1 / 16


def _masked_adain_forward(self, x, s):
    """AdaIN1d with InstanceNorm statistics over the valid frames.
    fp16-safe: means, not sums (a sum over hundreds of frames overflows fp16, as the
    MIL evaluator found in the fp16 vocoder), and scaled squares.
    Eight full-size elementwise passes where the first version had thirteen (the
    vocoder's 24 AdaINs at 120x the frame rate dominate its non-conv time, and no
    backend fuses them on a CPU): the norm's affine, the style's gamma and beta and
    1/std fold into one per-channel scale and shift, the square's scale into the
    mask, and the output is not masked again, because every consumer of an AdaIN
    is a masked conv, a pointwise op, or another AdaIN, which masks its input."""
    gamma, beta = self.fc(s)[..., None].chunk(2, dim=1)
    keep = valid_mask(self, x.shape[-1])
    if keep is None:
        return (1 + gamma) * self.norm(x) + beta
    keep = keep.to(x.dtype)
    share = valid_fraction(self.valid_frames, self.bucket_frames, x.shape[-1])
    mean = (x * keep).mean(-1, keepdim=True) / share
    scaled = (x - mean) * (keep * _VARIANCE_SCALE)  # zero on the padding
    var = (scaled * scaled).mean(-1, keepdim=True) / share
    scale = (1 + gamma) * self.norm.weight[:, None] / torch.sqrt(var + self.norm.eps * _VARIANCE_SCALE ** 2)
    shift = (1 + gamma) * self.norm.bias[:, None] + beta
    return scaled * scale + shift


class MaskedInput(nn.Module):
    """Zeroes a conv's input beyond the valid frames, so its kernel sees at the
    boundary what it sees at the end of an unpadded run: zero padding."""

    masks_padding = True

    def __init__(self, conv: nn.Module):
        super().__init__()
        self.conv = conv

    def forward(self, x):
        keep = valid_mask(self, x.shape[-1])
        return self.conv(x if keep is None else x * keep.to(x.dtype))


class FrameMaskedBiLSTM(MaskedBiLSTM):
    """MaskedBiLSTM whose padding comes from the valid frame count; returns
    (output, None) like nn.LSTM, for kokoro's `x, _ = self.shared(x)` call."""

    masks_padding = True

    def forward(self, x):
        keep = valid_mask(self, x.shape[1])
        if keep is None:
            keep = torch.ones(x.shape[1], dtype=torch.bool)
        return super().forward(x, ~keep[None]), None


@register_pass("kokoro::mask_padding")
class MaskPadding(SurgeryPass):
    """Before: a frame bucket zero-padded past the utterance changes the valid
    frames too: InstanceNorm statistics (AdaIN1d) average over the padding,
    convs read whatever the padding became, the prosody LSTM (`shared`) runs
    backward through it. Measured on this machine (round 1, int8-derived weights,
    jf_alpha, 132 frames padded to 211): log-spectrogram correlation 0.958 against
    the unpadded run, where a different noise seed alone gives 0.997.
    After:  AdaIN1d normalises over the valid frames (its output past them is
    a per-channel constant that nothing reads unmasked); every conv with a
    kernel wider than 1 reads its input zeroed past the valid frames;
    bidirectional LSTMs become MaskedBiLSTM. The stage feeds `valid_frames`.
    The stage's reference (before this pass) crops to the valid frames, runs,
    and pads the outputs with zeros: parity is against the unpadded run.
    Residual boundary effects: the source STFT's last frame and the iSTFT's
    last overlap see padding instead of reflection (< 1 ms of audio)."""

    # Must know the noise the source uses: a cropped reference would draw different
    # random numbers than the full bucket.
    requires = ("kokoro::deterministic_noise",)
    # Measured on the real stages with a quarter of the bucket padded: see the README.
    min_psnr_db = 40.0

    def apply(self, module) -> int:
        if not getattr(module, "accepts_valid_frames", False):
            return 0  # a stage without frame buckets (duration has its own mask)
        sites = 0
        for parent in list(module.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, (nn.Conv1d, nn.ConvTranspose1d)) and child.kernel_size[0] > 1:
                    setattr(parent, name, MaskedInput(child))
                elif isinstance(child, nn.LSTM) and child.bidirectional:
                    setattr(parent, name, FrameMaskedBiLSTM(child))
                else:
                    continue
                sites += 1
        for child in module.modules():
            if type(child).__name__ == "AdaIN1d":
                child.masks_padding = True
        sites += swap_forward(module, "AdaIN1d", _masked_adain_forward, "Masked")
        module.padding_masked = True
        return sites
