"""The ExecuTorch target end to end on the small random-weight Kokoro: real doit, real
torch.export + XNNPACK lowering, every .pte run by the ExecuTorch runtime against its
torch twin, and the chain speaking from the programs."""
import json
import subprocess
import sys

import numpy as np
import pytest

from kokoro_build.store.package import artifact_problems, digest_path
from tests.slow.tiny import ROOT, UP_TO_MANIFEST, header, run_doit

# duration over a token range (a torch.export Dim; its LSTMs as scan loops); the
# vocoder with its fp32 islands, a frame bucket each; fp32, as the chain tests
PIPELINE = header("tiny-et") + """\
defaults: {precision: fp32}
targets: [coreml, executorch]
stages:
  duration: {kind: duration, shapes: {tokens: {range: [2, 512]}}}
  prosody: {kind: prosody, shapes: {frames: {buckets: [600]}}}
  noise: {kind: noise, shapes: {frames: {buckets: [600]}}}
  vocoder: {kind: vocoder, islands: [noise, tail], shapes: {frames: {buckets: [600]}}}
  tail: {kind: tail, shapes: {frames: {buckets: [600]}}}
verify: {audio: {min_pesq: null, max_mcd_db: null, min_mel_correlation: null}}
"""
TEXT = "The committee met on Tuesday to discuss the budget."


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-et")
    (folder / "pipeline.yaml").write_text(PIPELINE)
    log = run_doit(folder / "pipeline.yaml", *UP_TO_MANIFEST)
    return folder, folder / "artifacts" / "tiny-et", log


@pytest.mark.slow
def test_every_artifact_has_a_program_that_matches_its_twin(built):
    _, variant, _ = built
    manifest = json.loads((variant / "manifest.json").read_text())
    programs = [a["executorch"] for s in manifest["stages"].values() for a in s["artifacts"]]
    assert len(programs) == 5
    for program in programs:
        path = variant / program["program"]
        assert path.parent.name == "executorch" and path.suffix == ".pte"
        assert artifact_problems(digest_path(path)) == []
        assert program["verify"]["passed"] and min(program["verify"]["psnr_db"].values()) >= 35
        report = json.loads((variant / program["verify_report"]).read_text())
        assert report["ops"]["delegated_ops"] > 0 and report["verify"]["runtime"] == "executorch"
        assert all(o["finite"] for o in report["verify"]["outputs"].values())
    duration = json.loads((variant / "executorch" / "duration_tokens_range.verify.json").read_text())
    assert duration["flexible"] == {"tokens": {"range": [2, 512]}}
    assert duration["verify"]["sizes"] != {"tokens": 512}  # checked at another length than traced
    assert duration["ops"]["portable"]["scan"] == 6  # 3 bidirectional LSTMs, a loop per direction
    passes = json.loads(digest_path(variant / "executorch" / "duration_tokens_range.pte").read_text())["passes"]
    assert passes[-1]["id"] == "executorch::recurrent_scan" and passes[-1]["sites"] == 3


@pytest.mark.slow
def test_the_executorch_chain_speaks_like_the_torch_chain(built):
    from kokoro_build.runtime import Chain
    from kokoro_build.verify.audio import mel_correlation
    _, variant, _ = built
    torch_speech = Chain(variant, backend="torch").speak(TEXT, voice="test_voice", seed=3)
    et_speech = Chain(variant, backend="executorch").speak(TEXT, voice="test_voice", seed=3)
    assert [c.frames for c in et_speech.chunks] == [c.frames for c in torch_speech.chunks]
    assert len(et_speech.audio) == len(torch_speech.audio) > 0
    assert np.isfinite(et_speech.audio).all()
    assert mel_correlation(torch_speech.audio, et_speech.audio) >= 0.99


@pytest.mark.slow
def test_speak_backend_executorch_writes_a_wav(built, tmp_path):
    _, variant, _ = built
    out = tmp_path / "et.wav"
    result = subprocess.run([sys.executable, "-m", "kokoro_build.cli", "speak", TEXT, "-o", str(out),
                             "--variant", variant.name, "--artifacts", str(variant.parent),
                             "--voice", "test_voice", "--backend", "executorch"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.stat().st_size > 44 and "executorch backend" in result.stderr


@pytest.mark.slow
def test_a_stricter_gate_reruns_only_the_checks_and_fails_them_by_name(built):
    folder, variant, _ = built
    config = folder / "pipeline.yaml"
    config.write_text(PIPELINE.replace("verify: {", "verify: {executorch: {outputs: {f0: 300}}, "))
    result = subprocess.run([sys.executable, "-m", "doit", "-f", str(ROOT / "dodo.py"), f"config={config}",
                             *UP_TO_MANIFEST], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode != 0
    log = result.stdout + result.stderr
    assert "prosody_frames_600.pte: the ExecuTorch program doesn't match its torch twin: f0" in log
    assert "torch.export" not in log and "ct.convert" not in log  # nothing rebuilt
    assert not json.loads((variant / "executorch" / "prosody_frames_600.verify.json").read_text())["verify"]["passed"]
    config.write_text(PIPELINE)
    log = run_doit(config, *UP_TO_MANIFEST)
    assert "-- prosody:frames_600.pte\n" in log and ".  prosody:frames_600.pte_verify\n" in log
