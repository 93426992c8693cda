"""Stage kinds on the tiny random-weight Kokoro: interfaces, example inputs, and the
default surgery on each."""
import torch

from kokoro_build.schema.config import StageConfig
from kokoro_build.schema.kinds import KINDS
from kokoro_build.model.stages import get_stage_kind
from kokoro_build.model.surgery import apply_passes

PADDED = [("kokoro::remove_dropout", {}), ("kokoro::fold_weight_norm", {}),
          ("kokoro::unpack_lstm", {"masked": True}), ("kokoro::albert_inputs", {"mask": "additive"})]


def _default_passes(kind, **options):
    shapes = {dim: {"buckets": [8]} for dim in KINDS[kind].dims}
    stage = StageConfig(kind=kind, shapes=shapes, surgery={"options": options})
    return stage.passes()


def test_duration_padded_bucket_equals_the_unpadded_run(tiny_config, tiny_kmodel, tiny_voice_pack):
    stage = get_stage_kind("duration")(tiny_config, PADDED)
    assert [s.name for s in stage.inputs({"tokens": 24})] == ["input_ids", "ref_s", "speed",
                                                               "attention_mask"]
    ids, style, speed, mask = stage.example_inputs({"tokens": 24}, tiny_voice_pack)
    valid = int(mask.sum())
    assert valid == 18 and ids[0, 0] == 0 and ids[0, valid - 1] == 0 and (ids[0, valid:] == 0).all()
    module = stage.build_module(tiny_kmodel)
    with torch.no_grad():
        padded = module(ids, style, speed, mask)
        alone = module(ids[:, :valid], style, speed)
    assert torch.allclose(padded[0][:, :valid], alone[0], atol=1e-5)  # durations
    assert torch.allclose(padded[1][:, :valid], alone[1], atol=1e-5)  # d
    assert torch.allclose(padded[2][..., :valid], alone[2], atol=1e-5)  # t_en
    shapes = [tuple(s.shape) for s in stage.outputs({"tokens": 24})]
    assert shapes == [tuple(t.shape) for t in padded]


def test_duration_default_surgery_is_exact_and_trace_friendly(tiny_config, tiny_kmodel, tiny_voice_pack):
    passes = _default_passes("duration", **{"kokoro::unpack_lstm": {"masked": True},
                                            "kokoro::albert_inputs": {"mask": "additive"}})
    stage = get_stage_kind("duration")(tiny_config, passes)
    inputs = stage.example_inputs({"tokens": 32}, tiny_voice_pack)
    result = apply_passes(stage.build_module(tiny_kmodel), passes, inputs)
    applied = {r.id: r for r in result.records if r.sites}
    assert {"kokoro::unpack_lstm", "kokoro::albert_inputs", "kokoro::fold_weight_norm"} <= set(applied)
    assert all(r.psnr_db >= 60 for r in result.records), result.records
    graph = torch.jit.trace(result.module, inputs, check_trace=False).inlined_graph
    kinds = {n.kind() for n in graph.nodes()}
    assert not {k for k in kinds if "pack_" in k or k.endswith("_")}, kinds


def test_vocoder_noise_inputs_follow_the_noise_mode(tiny_config, tiny_voice_pack):
    vocoder = get_stage_kind("vocoder")
    as_inputs = vocoder(tiny_config, _default_passes("vocoder"))
    names = [s.name for s in as_inputs.inputs({"frames": 8})]
    assert names == ["asr", "f0", "n", "style", "phase_init", "source_noise", "valid_frames"]
    example = as_inputs.example_inputs({"frames": 8}, tiny_voice_pack)
    assert [tuple(t.shape) for t in example] == [tuple(s.shape) for s in as_inputs.inputs({"frames": 8})]
    hashed = vocoder(tiny_config, _default_passes("vocoder", **{"kokoro::deterministic_noise": {"mode": "hash"}}))
    assert [s.name for s in hashed.inputs({"frames": 8})] == ["asr", "f0", "n", "style", "valid_frames"]
    assert len(hashed.example_inputs({"frames": 8}, tiny_voice_pack)) == 5


def test_flexible_shapes_are_described_per_axis(tiny_config):
    from kokoro_build.targets.coreml.export import describe
    prosody = get_stage_kind("prosody")(tiny_config, [])
    ranged = describe(prosody.inputs, {"frames": 400}, {"frames": {"range": [20, 400]}})
    assert ranged[0] == {"name": "en", "shape": [1, 640, 400], "dtype": "float32",
                         "range": [[1, 1], [640, 640], [20, 400]]}
    assert "range" not in ranged[1]  # style does not depend on the frames
    listed = describe(prosody.outputs, {"frames": 200}, {"frames": {"enumerated": [100, 200]}})
    assert listed[0]["enumerated"] == [[1, 200], [1, 400]]


def test_a_materialized_stage_is_described_as_a_range_and_a_shape_per_bucket(tiny_config):
    from kokoro_build.targets.coreml.export import describe, specs_at_bucket
    vocoder = get_stage_kind("vocoder")(tiny_config, [("kokoro::mask_padding", {})])
    flexible = {"frames": {"buckets": [100, 300, 400]}}
    described = describe(vocoder.inputs, {"frames": 400}, flexible)
    f0 = next(d for d in described if d["name"] == "f0")
    assert f0["range"] == [[1, 1], [200, 800]] and f0["buckets"] == [[1, 200], [1, 600], [1, 800]]
    assert "range" not in next(d for d in described if d["name"] == "valid_frames")
    fixed = specs_at_bucket(described, flexible, {"frames": 300})
    assert {s["name"]: s["shape"] for s in fixed}["f0"] == [1, 600]
    assert all(set(s) == {"name", "shape", "dtype"} for s in fixed)  # no range left


def test_shape_points_and_labels():
    from kokoro_build.plan.paths import shape_points
    stage = StageConfig(kind="duration", shapes={"tokens": {"range": [2, 512]}})
    (point,) = shape_points(stage)
    assert (point.label, point.sizes, point.flexible) == ("tokens_range", {"tokens": 512},
                                                          {"tokens": {"range": [2, 512]}})
    buckets = StageConfig(kind="vocoder", shapes={"frames": {"buckets": [8, 16]}})
    assert [p.label for p in shape_points(buckets)] == ["frames_8", "frames_16"]


def test_alignment_stage_equals_the_host_alignment(tiny_config, tiny_voice_pack):
    import numpy as np
    stage = get_stage_kind("alignment")(tiny_config, [])
    sizes = {"tokens": 12, "frames": 40}
    (durations,) = stage.example_inputs(sizes, tiny_voice_pack)
    graph = stage.build_module(None, sizes)(durations)[0].numpy()
    whole = durations[0].long().numpy()
    host = np.zeros((12, 40), np.float32)
    host[np.repeat(np.arange(12), whole), np.arange(whole.sum())] = 1.0
    assert whole.sum() <= 40 and (whole == 0).any(), "the example pads tokens and frames"
    assert np.array_equal(graph, host)
    kinds = {n.kind() for n in torch.jit.trace(stage.build_module(None, sizes), (durations,)).graph.nodes()}
    assert "aten::repeat_interleave" not in kinds and "aten::index_put_" not in kinds
