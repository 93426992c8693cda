"""Untrusted inputs: YAML can't construct objects, names can't leave artifacts/,
pickled code in a weights file is refused without running, and a weights or voice
file of the wrong shape or hash gets a clear error."""
import hashlib
import os
from pathlib import Path

import pytest
import torch

from kokoro_build.schema.config import ConfigError, load_config
from kokoro_build.model.source.weights import WeightsError, build_weights, load_weights
from kokoro_build.plan.paths import artifacts_dir

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "fixtures" / "tiny-kokoro.json"
HEADER = f"version: 1\nname: {{name}}\nmodel:\n  source: {{{{random_seed: 0, config: {TINY}}}}}\n" \
         "  voices: [v]\nstages:\n  {stage}: {{kind: vocoder, shapes: {{frames: {{buckets: [8]}}}}}}\n"


def _config(tmp_path, name="ok", stage="vocoder", extra=""):
    path = tmp_path / "pipeline.yaml"
    path.write_text(HEADER.format(name=name, stage=stage) + extra)
    return path


@pytest.mark.parametrize("name", ["../escape", "/etc", "a/b", "..", ".hidden", "a\\b", "x" * 65])
def test_a_variant_name_cannot_leave_artifacts(tmp_path, name):
    with pytest.raises(ConfigError, match=r"pipeline\.yaml:2: name: "):
        load_config(_config(tmp_path, name=f'"{name}"'))


@pytest.mark.parametrize("stage", ["../up", "a/b", "'/abs'", "'..'"])
def test_a_stage_name_cannot_leave_the_variant(tmp_path, stage):
    with pytest.raises(ConfigError, match=r"pipeline\.yaml:\d+: stages: "):
        load_config(_config(tmp_path, stage=stage))


def test_every_accepted_name_builds_inside_artifacts(tmp_path):
    config = load_config(_config(tmp_path, name="v1.2_a-b"))
    out = artifacts_dir(config, tmp_path / "pipeline.yaml")
    assert out.parent == tmp_path / "artifacts" and out.name == "v1.2_a-b"


def test_yaml_tags_construct_nothing(tmp_path):
    marker = tmp_path / "ran"
    path = _config(tmp_path, extra=f"evil: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError, match=r"pipeline\.yaml:\d+: .*tag"):
        load_config(path)
    assert not marker.exists()


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _tiny_source(tmp_path, **extra):
    """An official-layout checkpoint of the tiny config, and a voice."""
    weights = tmp_path / "random.pt"
    build_weights({"source": {"kind": "random", "random_seed": 3, "config": str(TINY)}, "voices": ["v"]},
                  str(weights))
    blob = load_weights(str(weights))
    parts = {}
    for key, value in blob["state_dict"].items():
        part, rest = key.split(".", 1)
        parts.setdefault(part, {})[rest] = value
    (tmp_path / "voices").mkdir()
    torch.save(parts, tmp_path / "kokoro.pth")
    torch.save(blob["voices"]["v"], tmp_path / "voices" / "v.pt")
    return {"kind": "file", "path": str(tmp_path / "kokoro.pth"), "config": str(TINY), **extra}


@pytest.fixture
def source(tmp_path):
    return _tiny_source(tmp_path)


def _build(source, tmp_path):
    out = tmp_path / "out" / "kokoro.pt"
    build_weights({"source": source, "voices": ["v"]}, str(out))
    return out


def test_the_file_source_builds_and_a_pinned_sha256_is_checked(source, tmp_path):
    good = hashlib.sha256(Path(source["path"]).read_bytes()).hexdigest()
    assert _build({**source, "sha256": good}, tmp_path).is_file()
    with pytest.raises(WeightsError, match=r"kokoro\.pth: sha256 is [0-9a-f]{64}, the config's "
                                           r"model\.source\.sha256 says 0{64}: not the file you pinned"):
        _build({**source, "sha256": "0" * 64}, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_a_pickle_that_runs_code_is_refused_unrun(source, tmp_path):
    marker = tmp_path / "ran"
    torch.save({"decoder": _RunsCode(marker)}, source["path"])
    with pytest.raises(WeightsError, match=r"kokoro\.pth: can't load the weights as tensors"):
        _build(source, tmp_path)
    assert not marker.exists()


def test_a_tensor_of_the_wrong_shape_is_named(source, tmp_path):
    parts = torch.load(source["path"], weights_only=True)
    key = next(iter(parts["decoder"]))
    parts["decoder"][key] = torch.zeros(3, 3)
    torch.save(parts, source["path"])
    with pytest.raises(WeightsError, match=rf"decoder\.{key} is \(3, 3\), the config's model has \("):
        _build(source, tmp_path)


@pytest.mark.parametrize("voice, message", [
    (torch.zeros(510, 256), r"voice 'v' is \(510, 256\); a Kokoro voice pack is \(510, 1, 256\)"),
    (torch.full((510, 1, 256), float("nan")), "voice 'v' holds NaN or infinite values"),
    ({"not": "a tensor"}, r"voice 'v' is dict; a Kokoro voice pack is \(510, 1, 256\)"),
])
def test_a_wrong_voice_pack_is_refused(source, tmp_path, voice, message):
    torch.save(voice, Path(source["path"]).parent / "voices" / "v.pt")
    with pytest.raises(WeightsError, match=message):
        _build(source, tmp_path)


def test_a_truncated_weights_file_is_a_clear_error(source, tmp_path):
    data = Path(source["path"]).read_bytes()
    Path(source["path"]).write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match=r"kokoro\.pth: can't load the weights as tensors"):
        _build(source, tmp_path)


def test_sha256_only_goes_with_a_file_source(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text(HEADER.format(name="x", stage="vocoder").replace(
        "random_seed: 0,", f"random_seed: 0, sha256: {'a' * 64},"))
    with pytest.raises(ConfigError, match=r"pipeline\.yaml:4: model\.source: `sha256` checks a `path` source.s file"):
        load_config(path)
