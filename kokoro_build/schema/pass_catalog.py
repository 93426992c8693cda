"""What passes exist, their options and the presets, as pure data.

No torch here: `config.py` validates a stage's `surgery:` section against this
catalog (with file:line errors) without loading any model code. The pass
implementations in `passes/` register under the same ids; a test checks that
the two agree.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoiseOptions(NoOptions):
    # input: noise tensors become model inputs (exact); zero: no noise;
    # hash: a fixed noise table baked into the model.
    mode: Literal["input", "zero", "hash"] = "input"


class UnpackLstmOptions(NoOptions):
    # true: exact on the valid steps of right-padded token buckets (adds a gather
    # per LSTM); false: exact only without padding.
    masked: bool = False


class AlbertOptions(NoOptions):
    # none: no attention mask (batch 1, no padding); additive: (1 - mask) * -1e4.
    mask: Literal["none", "additive"] = "none"


class LinearToConvOptions(NoOptions):
    # Linears with fewer inputs stay as they are (tiny projections gain nothing).
    min_features: int = Field(16, ge=1)


# id -> options model. Every built-in pass is listed here.
PASS_OPTIONS: dict[str, type[BaseModel]] = {
    "kokoro::remove_dropout": NoOptions,
    "kokoro::fold_weight_norm": NoOptions,
    "kokoro::constant_rsqrt": NoOptions,
    "kokoro::stft_conv": NoOptions,
    "kokoro::deterministic_noise": NoiseOptions,
    "kokoro::unpack_lstm": UnpackLstmOptions,
    "kokoro::albert_inputs": AlbertOptions,
    "kokoro::cos_snake": NoOptions,
    "kokoro::linear_to_conv": LinearToConvOptions,
    "kokoro::mask_padding": NoOptions,
}

# The minimum for ct.convert to succeed and be right (the blockers seen here with
# coremltools 9.0: README "Surgery passes"). A pass that
# finds nothing to rewrite in a stage records 0 sites and costs nothing.
COREML_DEFAULT = ("kokoro::remove_dropout", "kokoro::fold_weight_norm", "kokoro::constant_rsqrt",
                  "kokoro::stft_conv", "kokoro::deterministic_noise", "kokoro::unpack_lstm",
                  "kokoro::albert_inputs", "kokoro::mask_padding")

# Named, ordered pass lists a stage starts from (`surgery: {preset: ...}`).
PRESETS: dict[str, tuple[str, ...]] = {
    "coreml-default": COREML_DEFAULT,
    # plus the rewrites that target the Neural Engine's ops and layout
    "ane": COREML_DEFAULT + ("kokoro::cos_snake", "kokoro::linear_to_conv"),
    "none": (),
}
