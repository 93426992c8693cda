"""One row per stage kind: what the YAML may ask of it, and what the build expects of it.

Torch-free, so the config can validate shapes and the plan can find a kind's code
without importing it. The torch side of a kind is the class registered in `module`
(model/stages/); a test checks that the registry and this table agree.

Adding a stage kind: a row here, its class in model/stages/, and its place in the
chain (runtime/chain.py).
"""
from __future__ import annotations

from dataclasses import dataclass

# Frames: 40 per second of audio (one asr frame is 600 samples at 24 kHz); 2400 = 60 s.
# The 1200-frame decoder already peaks at 3.7 GB while converting (BENCHMARKS.md), so
# larger is refused. Tokens: PL-BERT has 512 positions (kokoro's limit: 510 phonemes
# plus 2 boundary tokens).
FRAMES = (1, 2400)
TOKENS = (1, 512)
ALL_MODES = frozenset({"buckets", "range", "enumerated"})

# How a bucketed stage keeps its zero padding from leaking into the valid part
# (BENCHMARKS.md "Bucket padding": padded InstanceNorm statistics and bidirectional
# LSTMs move the speech, log-mel correlation 0.958 against a 0.997 noise floor).
PADDING_RULES = {
    "none": "no padded input reaches it (flexible shapes only, or its output is sliced)",
    "token_mask": "right-padded tokens: kokoro::unpack_lstm {masked: true} and "
                  "kokoro::albert_inputs {mask: additive} keep the valid tokens exact",
    "valid_frames": "right-padded frames: kokoro::mask_padding adds a valid_frames input; "
                    "masked InstanceNorm/AdaIN statistics and LSTMs see the valid frames only",
    "trim": "the chain trims the padded frames of its output (no statistics span the padding)",
}


@dataclass(frozen=True)
class KindRow:
    module: str                                # model/stages module that registers the kind
    dims: dict[str, tuple[int, int]]           # shape dimension -> (min, max)
    modes: frozenset[str]                      # shape modes it can be built in
    preset: str                                # surgery preset when the YAML names none
    padding: str                               # a key of PADDING_RULES
    # Passes that must rewrite at least one site whenever they run on this kind (the
    # sites were counted on the small test model and the real one); 0 sites means the
    # pass matched nothing, e.g. after kokoro renamed a class it swaps by name.
    expects: frozenset[str] = frozenset()
    expects_in_buckets: frozenset[str] = frozenset()  # the same, for fixed (bucket) shapes only
    takes_voice: bool = True

    def expected_passes(self, flexible: bool) -> frozenset[str]:
        return self.expects if flexible else self.expects | self.expects_in_buckets


_STAGES = "kokoro_build.model.stages"
_DECODER = frozenset({"kokoro::remove_dropout", "kokoro::fold_weight_norm", "kokoro::constant_rsqrt",
                      "kokoro::stft_conv", "kokoro::deterministic_noise", "kokoro::cos_snake"})

KINDS: dict[str, KindRow] = {
    "duration": KindRow(
        f"{_STAGES}.duration", {"tokens": TOKENS}, ALL_MODES, "coreml-default", "token_mask",
        expects=frozenset({"kokoro::remove_dropout", "kokoro::fold_weight_norm", "kokoro::unpack_lstm",
                           "kokoro::albert_inputs"})),
    "prosody": KindRow(
        f"{_STAGES}.prosody", {"frames": FRAMES}, ALL_MODES, "coreml-default", "valid_frames",
        expects=frozenset({"kokoro::remove_dropout", "kokoro::fold_weight_norm", "kokoro::constant_rsqrt",
                           "kokoro::unpack_lstm"}),
        expects_in_buckets=frozenset({"kokoro::mask_padding"})),
    "vocoder": KindRow(
        f"{_STAGES}.vocoder", {"frames": FRAMES}, ALL_MODES, "coreml-default", "valid_frames",
        expects=_DECODER, expects_in_buckets=frozenset({"kokoro::mask_padding"})),
    # the vocoder's fp32 islands (model/stages/islands.py): its source, and conv_post + iSTFT
    "noise": KindRow(
        f"{_STAGES}.islands", {"frames": FRAMES}, ALL_MODES, "coreml-default", "trim",
        expects=frozenset({"kokoro::stft_conv", "kokoro::deterministic_noise"})),
    "tail": KindRow(
        f"{_STAGES}.islands", {"frames": FRAMES}, ALL_MODES, "coreml-default", "valid_frames",
        expects=frozenset({"kokoro::fold_weight_norm", "kokoro::stft_conv"}),
        expects_in_buckets=frozenset({"kokoro::mask_padding"})),
    # Its frame count is an output size with no input to carry it: fixed shapes only.
    "alignment": KindRow(
        f"{_STAGES}.alignment", {"tokens": TOKENS, "frames": FRAMES}, frozenset({"buckets"}), "none", "trim"),
    "synthesizer": KindRow(
        f"{_STAGES}.synthesizer", {"tokens": TOKENS, "frames": FRAMES}, frozenset({"buckets"}),
        "coreml-default", "valid_frames",
        expects=_DECODER | {"kokoro::unpack_lstm"}, expects_in_buckets=frozenset({"kokoro::mask_padding"})),
    # Letters of one word plus its end mark (the neural G2P; longer words are split).
    # Padding would change the GRU encoder's final state: a range only.
    "g2p": KindRow(
        f"{_STAGES}.g2p", {"chars": (2, 64)}, frozenset({"range"}), "none", "none", takes_voice=False),
}
assert all(row.padding in PADDING_RULES for row in KINDS.values())


def kind_row(kind: str) -> KindRow:
    if kind not in KINDS:
        raise KeyError(f"unknown stage kind {kind!r}; known: {', '.join(KINDS)}")
    return KINDS[kind]
