"""The chain end to end on a small random-weight Kokoro: 10,000 characters through
misaki, chunking, halving and every stage (the alignment as its own Core ML stage),
plus the refusals."""
import numpy as np
import pytest

from tests.slow.tiny import CHAIN_PIPELINE as PIPELINE, build_chain as _build


# The same weights (same random seed), prosody and vocoder fused, host alignment.
FUSED = PIPELINE.replace("name: tiny-chain", "name: tiny-fused").split("  alignment:")[0] + """\
  synthesizer:
    kind: synthesizer
    shapes: {tokens: {buckets: [512]}, frames: {buckets: [600]}}
"""

# The same weights, the vocoder's source and tail split off as fp32 islands.
ISLANDS = PIPELINE.replace("name: tiny-chain", "name: tiny-islands").replace(
    "  vocoder: {kind: vocoder, shapes: {frames: {buckets: [600]}}}\n", """\
  noise: {kind: noise, precision: fp32, shapes: {frames: {buckets: [600]}}}
  vocoder: {kind: vocoder, islands: [noise, tail], shapes: {frames: {buckets: [600]}}}
  tail: {kind: tail, precision: fp32, shapes: {frames: {buckets: [600]}}}
""")


def _every_op_has_a_kernel(chain) -> None:
    from kokoro_build.verify.mil_eval import MilEvaluator
    for stage in chain.stages.values():
        for artifact in stage.artifacts:
            package = chain.variant_dir / artifact.package
            assert MilEvaluator(package).missing_kernels() == set(), package


@pytest.fixture(scope="module")
def chain(tiny_chain):  # tests/conftest.py: built once per session
    return tiny_chain


@pytest.mark.slow
def test_the_fused_synthesizer_speaks_like_the_split_chain(chain, tmp_path_factory):
    from kokoro_build.verify.audio import mel_correlation
    fused = _build(tmp_path_factory, FUSED, "tiny-fused")
    _every_op_has_a_kernel(fused)  # the synthesizer
    _every_op_has_a_kernel(chain)  # token buckets, the alignment stage
    text = "The committee met on Tuesday to discuss the budget."
    lines = []
    split = chain.speak(text, voice="test_voice", seed=5)
    together = fused.speak(text, voice="test_voice", seed=5, progress=lines.append)
    assert lines and "synthesizer frames_600-tokens_512" in lines[0], lines
    assert [c.frames for c in split.chunks] == [c.frames for c in together.chunks]
    assert all(set(c.buckets) == {"duration", "synthesizer"} for c in together.chunks)
    assert len(split.audio) == len(together.audio)
    assert mel_correlation(split.audio, together.audio) >= 0.999


@pytest.mark.slow
def test_the_islands_chain_speaks_like_the_whole_vocoder(chain, tmp_path_factory):
    islands = _build(tmp_path_factory, ISLANDS, "tiny-islands")
    _every_op_has_a_kernel(islands)
    assert islands.manifest.stages["vocoder"].options == {"islands": ["noise", "tail"]}
    assert islands.manifest.stages["noise"].artifacts[0].precision == "fp32"
    text = "The committee met on Tuesday."
    whole, split = (c.speak(text, voice="test_voice", seed=5) for c in (chain, islands))
    assert len(whole.audio) == len(split.audio)
    assert np.allclose(whole.audio, split.audio, atol=1e-4 * np.abs(whole.audio).max())


@pytest.mark.slow
def test_ten_thousand_characters_are_chunked_and_spoken(chain):
    paragraph = ("The committee met on Tuesday to discuss the budget, the schedule and the new "
                 "library; nobody agreed, so they met again on Wednesday. ")
    text = (paragraph * (10_000 // len(paragraph) + 1))[:10_000]
    lines = []
    # Random weights predict ~20 frames per token; at speed 20 (about one frame per
    # token) the 10,000 characters cost ~16 vocoder runs instead of ~500.
    speech = chain.speak(text, voice="test_voice", speed=20.0, progress=lines.append)
    assert len(speech.chunks) >= 15 and len(lines) == len(speech.chunks)
    assert all(c.frames <= 600 and len(c.tokens) <= 512 for c in speech.chunks)
    assert all(c.buckets["alignment"] == {"tokens": 512, "frames": 600} for c in speech.chunks)
    assert len(speech.audio) == sum(c.frames for c in speech.chunks) * chain.samples_per_frame
    assert np.isfinite(speech.audio).all() and speech.audio.std() > 0


@pytest.mark.slow
def test_long_chunks_are_halved_and_the_same_seed_gives_the_same_audio(chain):
    text = "The committee met on Tuesday to discuss the budget, the schedule and the library."
    first = chain.speak(text, voice="test_voice", seed=3)
    assert len(first.chunks) >= 2, "at ~20 frames per token, 80 phonemes need more than 600 frames"
    assert all(c.frames <= 600 for c in first.chunks)
    assert np.array_equal(first.audio, chain.speak(text, voice="test_voice", seed=3).audio)
    assert not np.array_equal(first.audio, chain.speak(text, voice="test_voice", seed=4).audio)


@pytest.mark.slow
def test_teacher_forcing_runs_the_later_stages_on_the_given_durations(chain):
    """The halved chunks too: the forced side's chunks decide the split."""
    import copy
    text = "The committee met on Tuesday to discuss the budget, the schedule and the library."
    own = chain.speak(text, voice="test_voice", seed=3)
    assert np.array_equal(chain.speak(text, voice="test_voice", seed=3, forced=own).audio, own.audio)
    other = copy.deepcopy(own)
    other.chunks[0].durations = np.maximum(other.chunks[0].durations - 1, 1)  # shorter first chunk
    forced = chain.speak(text, voice="test_voice", seed=3, forced=other)
    assert [c.phonemes for c in forced.chunks] == [c.phonemes for c in own.chunks]
    assert all(np.array_equal(f.durations, o.durations) for f, o in zip(forced.chunks, other.chunks))
    assert len(forced.audio) == sum(c.frames for c in other.chunks) * chain.samples_per_frame < len(own.audio)


@pytest.mark.slow
@pytest.mark.parametrize("kwargs, message", [
    ({"text": "   "}, "empty text"),
    ({"text": "?! ... !"}, "no speakable symbol"),
    ({"text": "hello", "speed": 0}, "speed must be a number > 0"),
    ({"text": "hello", "speed": float("nan")}, "speed must be a number > 0"),
    ({"text": "hello", "voice": "af_nope"}, "unknown voice 'af_nope'; this variant has: test_voice"),
])
def test_bad_input_is_refused_clearly(chain, kwargs, message):
    from kokoro_build.runtime import ChainError
    with pytest.raises(ChainError, match=__import__("re").escape(message)):
        chain.speak(**{"voice": "test_voice", **kwargs})
