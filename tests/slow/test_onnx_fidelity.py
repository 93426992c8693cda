"""KModel with the int8-derived state dict vs onnxruntime on the same ONNX.

The ONNX graph quantizes activations to uint8 on the fly, so the two runs are
not bit-exact; these thresholds are what a correct weight mapping reaches
(a wrong transpose, gate order or weight-norm split lands far below them).
"""
from __future__ import annotations

import unittest.mock

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from kokoro_build.verify.audio import correlation, log_mel  # noqa: E402
from kokoro_build.model.source.kmodel import build_kmodel  # noqa: E402
from kokoro_build.model.surgery import make_pass  # noqa: E402
from kokoro_build.schema.pass_catalog import PRESETS  # noqa: E402

SENTENCES = [  # IPA-like phoneme strings, every character in the Kokoro vocab
    "ðɪs ɪz ə tˈɛst ʌv kˈOkəɹO.",
    "kˈOkəɹO ɪz ən ˈOpən wˈAt mˈɑdᵊl, ænd ɪt sˈaʊndz nˈæʧəɹəl wˌɛn ɪt ɹˈidz"
    " lˈɔŋ sˈɛntənsᵻz ˈaʊt lˈaʊd.",
    "koɲɲiʨiwa, watakɕino namae wa aɾɸa desɨ. kjoː wa tenki ɡa ii no de, koːen e"
    " sampo ni ikimaɕoː. sakɯɾa no hana ɡa totemo kiɾei deɕita.",
]
# Intermediate tensors of the ONNX graph exposed as extra outputs.
ONNX_TAPS = {
    "dur": "/encoder/predictor/ReduceSum_output_0",  # sum of sigmoids (speed 1)
    "round": "/encoder/Round_output_0",
    "F0": "/encoder/Squeeze_output_0",
    "N": "/encoder/Squeeze_1_output_0",
}


@pytest.fixture(scope="module")
def session(onnx_path):
    model = onnx.load(str(onnx_path))
    for name in ONNX_TAPS.values():
        model.graph.output.append(
            onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def _inputs(phonemes, config, voice_pack):
    ids = [config["vocab"][p] for p in phonemes]
    tokens = torch.LongTensor([[0, *ids, 0]])
    style = torch.from_numpy(voice_pack[len(ids) - 1]).float()  # [1, 256]
    return tokens, style


def _run_onnx(session, tokens, style):
    feeds = {"tokens": tokens.numpy(), "style": style.numpy(),
             "speed": np.array([1.0], np.float32)}
    audio, *taps = session.run(None, feeds)
    return audio.ravel(), {k: v.ravel() for k, v in zip(ONNX_TAPS, taps)}


def _run_kmodel(model, tokens, style, durations):
    """KModel.forward_with_tokens with its durations replaced by `durations`.

    A ±1 frame rounding flip at x.5 would misalign all later audio, so the
    decoder gets ONNX's durations; the model's own float durations are
    captured before the swap.  The ONNX graph has no SineGen noise, so
    torch.rand / randn_like return zeros here.
    """
    taps = {}

    def force_durations(module, args, logits):
        taps["dur"] = torch.sigmoid(logits).sum(-1).flatten()
        p = (durations / logits.shape[-1]).clamp(1e-6, 1 - 1e-6)
        return torch.logit(p).reshape(1, -1, 1).expand_as(logits).contiguous()

    def tap(name):
        return lambda module, args, out: taps.__setitem__(name, out.flatten())

    hooks = [model.predictor.duration_proj.register_forward_hook(force_durations),
             model.predictor.F0_proj.register_forward_hook(tap("F0")),
             model.predictor.N_proj.register_forward_hook(tap("N"))]
    torch.manual_seed(0)
    try:
        with unittest.mock.patch("torch.rand", lambda *a, **k: torch.zeros(*a, **k)), \
                unittest.mock.patch("torch.randn_like", torch.zeros_like):
            audio, _ = model.forward_with_tokens(tokens, style, 1)
    finally:
        for hook in hooks:
            hook.remove()
    return audio.flatten(), taps


@pytest.mark.slow
def test_state_dict_is_complete_float32(state_dict, kmodel):
    assert set(state_dict) == set(kmodel.state_dict())
    for key, value in state_dict.items():
        assert value.dtype == torch.float32, key
        assert torch.isfinite(value).all(), key


@pytest.mark.slow
@pytest.mark.parametrize("phonemes", SENTENCES, ids=["short", "english", "japanese"])
def test_matches_onnxruntime(phonemes, config, kmodel, session, voice_pack):
    tokens, style = _inputs(phonemes, config, voice_pack)
    onnx_audio, ref = _run_onnx(session, tokens, style)
    onnx_frames = torch.from_numpy(ref["round"]).clamp(min=1)
    audio, got = _run_kmodel(kmodel, tokens, style, onnx_frames)

    assert correlation(got["dur"], ref["dur"]) >= 0.999
    pred_dur = torch.round(got["dur"]).clamp(min=1)  # as KModel rounds them
    # Durations near x.5 may round the other way: allow ±1 frame on a few tokens.
    assert (pred_dur - onnx_frames).abs().max() <= 1
    assert (pred_dur == onnx_frames).float().mean() >= 0.95
    assert correlation(pred_dur, onnx_frames) >= 0.995
    assert correlation(got["F0"], ref["F0"]) >= 0.999
    assert correlation(got["N"], ref["N"]) >= 0.999

    assert len(audio) == len(onnx_audio)
    assert torch.isfinite(audio).all()
    assert correlation(log_mel(audio), log_mel(onnx_audio)) >= 0.99


@pytest.mark.slow
def test_surgered_vocoder_still_matches_onnxruntime(config, state_dict, session, voice_pack):
    """The default vocoder passes (conv STFT included) keep the audio on the ONNX
    reference; noise from the fixed table (hash), since nothing here feeds inputs."""
    # its own model: the shared one can't be deep-copied once a test ran it with
    # autograd on (weight_norm's weights are then non-leaf tensors)
    model = build_kmodel(config, state_dict)
    options = {"kokoro::deterministic_noise": {"mode": "hash"}}
    for pass_id in PRESETS["coreml-default"]:
        make_pass(pass_id, options.get(pass_id)).apply(model.decoder)
    tokens, style = _inputs(SENTENCES[1], config, voice_pack)
    onnx_audio, ref = _run_onnx(session, tokens, style)
    audio, _ = _run_kmodel(model, tokens, style, torch.from_numpy(ref["round"]).clamp(min=1))
    assert torch.isfinite(audio).all()
    assert correlation(log_mel(audio), log_mel(onnx_audio)) >= 0.99
