"""The typed manifest (schema/manifest.py): what every reader of manifest.json gets."""
import pytest

from kokoro_build.schema.manifest import FORMAT, RELEASE_FORMAT, ManifestError, parse_manifest
from tests import manifests


def _one_stage():
    return manifests.manifest("v", {"vocoder": {"kind": "vocoder", "artifacts": [
        manifests.artifact("vocoder/frames_120.mlpackage", "vocoder/frames_120.verify.json")]}})


def test_the_json_reads_back_as_the_same_manifest():
    typed = _one_stage()
    data = typed.as_json()
    assert data["format"] == FORMAT and "function" not in data["stages"]["vocoder"]["artifacts"][0]
    assert parse_manifest(data) == typed
    assert [(stage, a.package) for stage, a in typed.artifacts()] == [("vocoder", "vocoder/frames_120.mlpackage")]
    assert typed.stage_of_kind("vocoder") is typed.stages["vocoder"] and typed.stage_of_kind("g2p") is None


def test_a_release_manifest_is_read_through_its_chain_entry():
    data = _one_stage().as_json()
    assert parse_manifest({"format": RELEASE_FORMAT, "chain": data}).name == "v"


def test_a_key_no_reader_knows_is_refused_with_its_place():
    data = _one_stage().as_json()
    data["stages"]["vocoder"]["artifacts"][0]["latency_ms"] = 3
    with pytest.raises(ManifestError, match=r"m.json: stages.vocoder.artifacts.0.latency_ms: Extra inputs"):
        parse_manifest(data, "m.json")


def test_a_missing_field_and_another_format_are_clear_errors():
    data = _one_stage().as_json()
    del data["stages"]["vocoder"]["artifacts"][0]["sha256"]
    with pytest.raises(ManifestError, match=r"stages.vocoder.artifacts.0.sha256: Field required"):
        parse_manifest(data)
    with pytest.raises(ManifestError, match=r"format 'kokoro-build-manifest/1', expected .*rebuild it"):
        parse_manifest({**data, "format": "kokoro-build-manifest/1"})
