"""What a right-padded frame bucket means for a stage: the valid frames' outputs
are those of the unpadded run, and the padding's outputs are zero."""
from __future__ import annotations

import torch.nn.functional as F

from kokoro_build.model.surgery.passes.padding import frames_mask, set_valid_frames


def run_over_valid(stage_module, run, inputs: tuple, rates: tuple, out_rates: tuple,
                   valid_frames):
    """Call `run(*inputs)` for a bucket of which `valid_frames` [1] are real.

    `rates` / `out_rates`: samples per frame on each tensor's last axis (None: no
    time axis). Before kokoro::mask_padding the stage is its own reference: it
    crops to the valid frames, runs, and pads the outputs with zeros (eager only,
    data-dependent). After it, the whole bucket runs with masks (traceable).
    """
    if valid_frames is None:
        if getattr(stage_module, "padding_masked", False):
            set_valid_frames(stage_module, None, 0)  # no stale length from an earlier call
        return run(*inputs)
    bucket = inputs[0].shape[-1] // rates[0]
    if getattr(stage_module, "padding_masked", False):
        set_valid_frames(stage_module, valid_frames, bucket)
        return tuple(out * frames_mask(valid_frames, bucket, out.shape[-1]).to(out.dtype)
                     for out in run(*inputs))
    # Samples past a whole number of frames (an STFT's + 1) stay on the valid side.
    padding = bucket - int(valid_frames.reshape(-1)[0])
    cropped = [x if rate is None or x is None else x[..., : x.shape[-1] - padding * rate]
               for x, rate in zip(inputs, rates)]
    return tuple(F.pad(out, (0, padding * rate)) for out, rate in zip(run(*cropped), out_rates))


def padded_frames(bucket: int) -> int:
    """Valid frames in example inputs: a quarter of the bucket is padding."""
    return max(bucket - bucket // 4, 1)
