"""The chain (torch backend: the surgered, traced fp32 twins, padded buckets) against
the monolithic KModel.forward_with_tokens on the same chunks, with the same noise.

The reference is kokoro's own KModel, untouched: the chain draws its source noise
with `seeded_noise(..., seed)`, which equals what KModel's SineGen draws after
torch.manual_seed(seed).
"""
import numpy as np
import pytest
import torch

from kokoro_build.verify.audio import audio_metrics, mel_correlation

TEXTS = [
    "Hello! This is a test of the Kokoro chain.",
    "The quick brown fox jumps over the lazy dog, twice.",
    "Kokoro is an open-weight text to speech model with eighty two million parameters.",
    "Is it working? Yes; it reads numbers like 42 and 3.5, too.",
    # Long enough for more than 510 tokens: chunked at sentence ends.
    " ".join(["Once upon a time, in a quiet village by the sea, there lived an old "
              "clockmaker who repaired every clock in town, and he never once asked for "
              "payment, because he believed that time belonged to everyone."] * 3),  # 602 phonemes
]


@pytest.fixture(scope="module")
def variant(real_default):
    """The default pipeline (duration: RangeDim) with fewer frame buckets (conftest.py)."""
    return real_default


@pytest.fixture(scope="module")
def chain(variant):
    from kokoro_build.runtime import Chain
    return Chain(variant, backend="torch")


@pytest.fixture(scope="module")
def monolithic(variant):
    from kokoro_build.model.source.kmodel import build_kmodel
    from kokoro_build.model.source.weights import load_weights
    blob = load_weights(str(variant / "weights" / "kokoro.pt"))
    return build_kmodel(blob["config"], blob["state_dict"])


@pytest.mark.slow
@pytest.mark.parametrize("text", TEXTS, ids=[f"text{i}" for i in range(len(TEXTS))])
def test_chain_matches_monolithic_kokoro(text, chain, monolithic):
    speech = chain.speak(text, voice="jf_alpha", speed=1.0, seed=11)
    if len(text) > 400:
        assert sum(len(c.tokens) - 2 for c in speech.chunks) > 510 and len(speech.chunks) >= 2
    assert len(speech.audio) == sum(len(c.audio) for c in speech.chunks)
    for chunk in speech.chunks:
        ref_s = torch.from_numpy(chain.voice_pack("jf_alpha")[len(chunk.phonemes) - 1].reshape(1, -1))
        torch.manual_seed(chunk.noise_seed)
        with torch.no_grad():
            audio, pred_dur = monolithic.forward_with_tokens(torch.LongTensor([chunk.tokens]), ref_s, 1.0)
        assert np.array_equal(chunk.durations, pred_dur.numpy()), "durations must be identical"
        assert len(chunk.audio) == len(audio), "same length after trim"
        assert mel_correlation(chunk.audio, audio.numpy()) >= 0.999


@pytest.mark.slow
@pytest.mark.parametrize("text", TEXTS[:3], ids=[f"text{i}" for i in range(3)])
def test_the_saved_artifacts_speak_like_the_torch_chain(text, chain, variant):
    """`--backend mil`: the .mlpackage files themselves (fp16 and the fp32 islands)
    through the MIL evaluator, against the torch twins."""
    from kokoro_build.runtime import Chain
    saved = Chain(variant, backend="mil", g2p=chain._g2p)
    reference = chain.speak(text, voice="jf_alpha", seed=3)
    spoken = saved.speak(text, voice="jf_alpha", seed=3)
    assert [c.frames for c in spoken.chunks] == [c.frames for c in reference.chunks]
    metrics = audio_metrics(reference.audio, spoken.audio)
    # the same frames on both sides, so these are also the teacher-forced values that
    # pipeline.yaml gates (the fp16 chain measured PESQ 4.35, MCD 0.97 dB)
    assert metrics["mel_correlation"] >= 0.99
    assert metrics["pesq"] >= 4.0 and metrics["mcd_db"] <= 1.5, metrics
