"""`packaging: multifunction` end to end on the small random-weight Kokoro: the buckets
become functions of one package with shared weights, every function is verified, the
chain runs them by name, and changing one bucket reconverts only that bucket."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "fixtures" / "tiny-kokoro.json"
PIPELINE = f"""\
version: 1
name: tiny-multi
model:
  source: {{random_seed: 0, config: {TINY}}}
  voices: [test_voice]
target: {{deployment: iOS18}}
# fp32: a whole fp16 vocoder fails its parity gate (README "Verification")
defaults: {{precision: fp32}}
stages:
  duration: {{kind: duration, shapes: {{tokens: {{range: [2, 512]}}}}}}
  prosody: {{kind: prosody, packaging: multifunction, shapes: {{frames: {{buckets: [300, 600]}}}}}}
  vocoder: {{kind: vocoder, packaging: multifunction, shapes: {{frames: {{buckets: [300, 600]}}}}}}
"""


def _doit(config: Path) -> list[str]:
    result = subprocess.run([sys.executable, "-m", "doit", "-f", str(ROOT / "dodo.py"), f"config={config}"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return [line[3:] for line in result.stdout.splitlines() if line.startswith(".  ")]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multi")
    config = tmp / "pipeline.yaml"
    config.write_text(PIPELINE)
    ran = _doit(config)
    return config, tmp / "artifacts" / "tiny-multi", ran


@pytest.mark.slow
def test_buckets_become_functions_of_one_package_with_shared_weights(built):
    _, variant, ran = built
    assert ran.index("vocoder:merge") > ran.index("vocoder:frames_600.convert")
    assert ran.index("vocoder:frames_300.verify") > ran.index("vocoder:merge")
    manifest = json.loads((variant / "manifest.json").read_text())
    vocoder = manifest["stages"]["vocoder"]
    assert vocoder["packaging"] == "multifunction"
    assert vocoder["package"]["path"] == "vocoder/vocoder.mlpackage"
    assert vocoder["package"]["default_function"] == "frames_600"
    assert vocoder["package"]["functions"]["frames_300"]["outputs"][0]["shape"] == [1, 300 * 16]
    assert [(a["function"], a["package"]) for a in vocoder["artifacts"]] == [
        ("frames_300", "vocoder/vocoder.mlpackage"), ("frames_600", "vocoder/vocoder.mlpackage")]
    assert all(a["verify"]["passed"] for s in manifest["stages"].values() for a in s["artifacts"])
    # the device-risk lint names the multifunction package (apple/coremltools #2414, #2351)
    verified = json.loads((variant / vocoder["artifacts"][0]["verify_report"]).read_text())
    assert "multifunction_load" in {f["id"] for f in verified["lint"]}
    assert "multifunction_load" in (variant / "report.md").read_text()
    assert not list((variant / "vocoder").glob("frames_*.mlpackage")), "the buckets ship merged"
    digest = json.loads((variant / "vocoder" / "vocoder.digest.json").read_text())
    assert digest["bytes"] < 0.6 * digest["separate_bytes"], "the functions share their weights"
    import coremltools as ct
    spec = ct.utils.load_spec(str(variant / "vocoder" / "vocoder.mlpackage"))
    assert [f.name for f in spec.description.functions] == ["frames_300", "frames_600"]
    assert spec.description.defaultFunctionName == "frames_600"
    functions = json.loads(spec.description.metadata.userDefined["kokoro_build.functions"])
    assert set(functions) == {"frames_300", "frames_600"} and "kokoro_build.passes" in functions["frames_300"]


@pytest.mark.slow
def test_the_chain_runs_the_functions_by_bucket(built):
    from kokoro_build.runtime import Chain
    from kokoro_build.verify.audio import mel_correlation
    _, variant, _ = built
    torch_chain, mil_chain = Chain(variant, backend="torch"), Chain(variant, backend="mil")
    used = set()
    for text in ("Hi.", "Hello there. " * 3):
        reference = torch_chain.speak(text, voice="test_voice", seed=1)
        spoken = mil_chain.speak(text, voice="test_voice", seed=1)
        used |= {c.buckets["vocoder"] for c in spoken.chunks}
        assert mel_correlation(reference.audio, spoken.audio) > 0.999
    assert used == {300, 600}, "both functions of the one package ran"


@pytest.mark.slow
def test_one_changed_bucket_reconverts_only_that_bucket_then_merges(built):
    config, variant, _ = built
    config.write_text(PIPELINE.replace(
        "vocoder, packaging: multifunction, shapes: {frames: {buckets: [300, 600]}}",
        "vocoder, packaging: multifunction, shapes: {frames: {buckets: [300, 500]}}"))
    ran = _doit(config)
    assert [t for t in ran if t.endswith((".export", ".convert", "merge"))] == [
        "vocoder:frames_500.export", "vocoder:frames_500.convert", "vocoder:merge"]
    assert "vocoder:frames_300.verify" in ran  # the shipped package changed: its functions are re-run
    assert not any(t.startswith("prosody") for t in ran)
    manifest = json.loads((variant / "manifest.json").read_text())
    assert list(manifest["stages"]["vocoder"]["package"]["functions"]) == ["frames_300", "frames_500"]
