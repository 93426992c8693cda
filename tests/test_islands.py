"""The vocoder's fp32 islands: noise -> vocoder body -> tail equals the whole vocoder."""
import pytest
import torch

from kokoro_build.schema.config import StageConfig
from kokoro_build.model.source.kmodel import build_kmodel
from kokoro_build.model.stages import get_stage_kind
from kokoro_build.model.surgery.registry import make_pass


def _passes(kind):
    return StageConfig(kind=kind, shapes={"frames": {"buckets": [8]}}).passes()


def _stages(tiny_config, passes, islands=("noise", "tail")):
    vocoder = get_stage_kind("vocoder")(tiny_config, passes("vocoder"), options={"islands": list(islands)})
    noise = get_stage_kind("noise")(tiny_config, passes("noise"))
    tail = get_stage_kind("tail")(tiny_config, passes("tail"))
    return get_stage_kind("vocoder")(tiny_config, passes("vocoder")), noise, vocoder, tail


def _surgered(stage, kmodel):
    """The stage's module after its passes. (Their parity gates are tested on the real
    weights; the random tiny decoder's padding boundary is too loud for them.)"""
    module = stage.build_module(build_kmodel(stage.model_config, kmodel.state_dict()))
    for pass_id, options in stage.passes:
        make_pass(pass_id, options).apply(module)
    return module


@pytest.mark.parametrize("passes", [lambda kind: [], _passes], ids=["plain", "default-surgery"])
def test_three_islands_in_a_row_equal_the_vocoder(tiny_config, tiny_kmodel, tiny_voice_pack, passes):
    whole, noise, body, tail = _stages(tiny_config, passes)
    assert [s.name for s in body.inputs({"frames": 12})][:5] == ["asr", "f0", "n", "style", "har"]
    assert "phase_init" not in {s.name for s in body.inputs({"frames": 12})}
    assert [s.name for s in body.outputs({"frames": 12})] == ["features"]
    modules = [_surgered(s, tiny_kmodel) for s in (whole, noise, body, tail)]
    inputs = whole.example_inputs({"frames": 12}, tiny_voice_pack)  # padded when masked
    asr, f0, n, style, *extra = inputs
    named = dict(zip([s.name for s in whole.inputs({"frames": 12})][4:], extra))
    valid = (named["valid_frames"],) if "valid_frames" in named else ()
    noise_in = (named["phase_init"], named["source_noise"]) if "phase_init" in named else ()
    with torch.no_grad():
        torch.manual_seed(0)  # without deterministic_noise, both draw the same numbers
        expected = modules[0](*inputs)
        torch.manual_seed(0)
        har = modules[1](f0, *noise_in, *valid)
        features = modules[2](asr, f0, n, style, har, *valid)
        audio = modules[3](features, *valid)
    for stage, tensor in ((noise, har), (body, features), (tail, audio)):
        assert tuple(tensor.shape) == stage.outputs({"frames": 12})[0].shape
    assert torch.allclose(audio, expected, atol=1e-5), (audio - expected).abs().max()


def test_island_inputs_match_their_specs(tiny_config, tiny_voice_pack):
    for stage in _stages(tiny_config, _passes)[1:]:
        example = stage.example_inputs({"frames": 12}, tiny_voice_pack)
        assert [tuple(t.shape) for t in example] == [s.shape for s in stage.inputs({"frames": 12})]
