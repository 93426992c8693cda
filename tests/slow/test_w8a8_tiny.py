"""W8A8 end to end on the small random-weight Kokoro: the calibration step speaks its
texts through the converted packages, the A8 stages get quantize/dequantize pairs
with those ranges, and every artifact still passes its verify gate."""
import json

import pytest

from tiny import NO_SPEECH_GATES, UP_TO_MANIFEST, header, run_doit

PIPELINE = header("tiny-w8a8") + """\
calibration:
  texts: ["Hello there, how are you?", "It is a quiet day.", "Not this one."]
  count: 2
stages:
  duration:
    kind: duration
    compress: {linear: {}, activations: {}}
    shapes: {tokens: {range: [2, 128]}}
  prosody:
    kind: prosody
    compress: {linear: {}, activations: {}}
    shapes: {frames: {range: [1, 400]}}
  noise: {kind: noise, precision: fp32, shapes: {frames: {range: [1, 400]}}}
  vocoder:
    kind: vocoder
    compress: {activations: {mode: linear}}
    islands: [noise, tail]
    shapes: {frames: {range: [1, 400]}}
  tail: {kind: tail, precision: fp32, shapes: {frames: {range: [1, 400]}}}
""" + NO_SPEECH_GATES


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("w8a8")
    config = tmp / "pipeline.yaml"
    config.write_text(PIPELINE)
    assert "calibrate 2/2" in run_doit(config, *UP_TO_MANIFEST)
    return config, tmp / "artifacts" / "tiny-w8a8"


@pytest.mark.slow
def test_a8_stages_carry_calibrated_quantize_pairs_and_verify(built):
    _, variant = built
    calibration = json.loads((variant / "_work" / "calibration.json").read_text())
    assert calibration["texts"] == ["Hello there, how are you?", "It is a quiet day."]
    packages = calibration["packages"]
    assert {p.split("/")[-3] if "converted" in p else p.split("/")[0] for p in packages} == \
        {"duration", "prosody", "vocoder", "noise", "tail"}
    assert all(p["runs"] >= 2 for p in packages.values())  # once per chunk (a text may be split)
    manifest = json.loads((variant / "manifest.json").read_text())
    for stage in ("duration", "prosody", "vocoder"):
        artifact = manifest["stages"][stage]["artifacts"][0]
        assert artifact["verify"]["passed"], stage
        assert artifact["compress"]["activations"] is not None
        report = json.loads((variant / stage / "frames_range.report.json").read_text()) \
            if stage != "duration" else json.loads((variant / stage / "tokens_range.report.json").read_text())
        assert report["activations"]["quantized_tensors"] > 0 and report["op_census"]["quantize"] > 0, stage
        assert report["op_census"]["quantize"] == report["activations"]["quantized_tensors"]
    # the vocoder's weights stay fp16 (activations only): no constexpr op
    vocoder = json.loads((variant / "vocoder" / "frames_range.report.json").read_text())
    assert not any(op.startswith("constexpr") for op in vocoder["op_census"])


@pytest.mark.slow
def test_a_package_no_text_reaches_is_a_clear_error(built, tmp_path):
    from kokoro_build.targets.coreml.calibrate import CalibrationError, calibrate
    from kokoro_build.schema.config import load_config
    from kokoro_build.plan.tasks import generate_tasks
    config_path, variant = built
    task = next(t for t in generate_tasks(load_config(config_path), config_path) if t["basename"] == "calibration")
    plan, _ = task["actions"][0][1]
    unreached = str(variant / "_work" / "vocoder" / "converted" / "frames_9.mlpackage")
    with pytest.raises(CalibrationError, match="no calibration text ran through _work/vocoder/converted/frames_9"):
        calibrate({**plan, "texts": ["Hi."], "required": [unreached]}, str(tmp_path / "c.json"))
    assert not (tmp_path / "c.json").exists()
