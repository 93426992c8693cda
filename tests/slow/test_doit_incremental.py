"""Real doit staleness on a small random-weight Kokoro: real trace, real ct.convert."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "fixtures" / "tiny-kokoro.json"

PIPELINE = f"""\
version: 1
name: tiny
model:
  source: {{random_seed: 0, config: {TINY}}}
  voices: [test_voice]
# This test is about staleness. fp32: a whole vocoder in fp16 fails its parity gate (the
# harmonic source in fp16, README "Verification"). 20 dB: in the random-weight model's
# source STFT, phases of bins near the atan2 branch cut flip between +pi and -pi with
# rounding, and the whole vocoder reads them raw (33.7 dB at 16 frames, 93 dB at 8).
defaults: {{precision: fp32}}
verify: {{parity: {{min_psnr_db: 20}}}}
stages:
  vocoder:
    kind: vocoder
    shapes: {{frames: {{buckets: [8, 16]}}}}
"""


def doit(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "doit", "-f", str(ROOT / "dodo.py"), *args,
                           f"config={config}"], cwd=ROOT, capture_output=True, text=True)


def ran(result: subprocess.CompletedProcess) -> list[str]:
    """Tasks doit executed: it prints '.  name' for those and '-- name' for up-to-date ones."""
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return [line[3:] for line in result.stdout.splitlines() if line.startswith(".  ")]


@pytest.mark.slow
def test_build_noop_rebuild_one_bucket_list_and_clean(tmp_path):
    config = tmp_path / "pipeline.yaml"
    config.write_text(PIPELINE)
    out = tmp_path / "artifacts" / "tiny"

    assert ran(doit(config)) == ["weights", "runtime", "vocoder:frames_8.export", "vocoder:frames_8.convert",
                                 "vocoder:frames_8.verify", "vocoder:frames_16.export",
                                 "vocoder:frames_16.convert", "vocoder:frames_16.verify",
                                 "manifest", "report"]
    for frames in (8, 16):
        assert (out / "vocoder" / f"frames_{frames}.mlpackage" / "Manifest.json").is_file()
        report = json.loads((out / "vocoder" / f"frames_{frames}.report.json").read_text())
        assert report["outputs"] == [{"name": "audio", "shape": [1, frames * 16], "dtype": "float32"}]
        assert report["inputs"][-1] == {"name": "valid_frames", "shape": [1], "dtype": "float32"}
        applied = [p["id"] for p in report["passes"] if p["sites"]]
        assert applied[-3:] == ["kokoro::stft_conv", "kokoro::deterministic_noise",
                                "kokoro::mask_padding"], applied
        assert report["op_census"]["conv"] > 0 and report["bytes"] > 1_000_000
        assert not {op for op in report["op_census"] if "complex" in op or "fft" in op}
        digest = json.loads((out / "vocoder" / f"frames_{frames}.digest.json").read_text())
        assert digest["sha256"] == report["sha256"]
    assert not list(out.rglob(".*.tmp-*")), "no temporaries left behind"
    manifest = json.loads((out / "manifest.json").read_text())
    assert [a["sizes"] for a in manifest["stages"]["vocoder"]["artifacts"]] == [{"frames": 8}, {"frames": 16}]

    assert ran(doit(config)) == [], "a second run does nothing"

    config.write_text(PIPELINE.replace("[8, 16]", "[8, 24]"))
    before = (out / "vocoder" / "frames_8.digest.json").stat().st_mtime_ns
    assert ran(doit(config)) == ["vocoder:frames_24.export", "vocoder:frames_24.convert",
                                 "vocoder:frames_24.verify", "manifest", "report"]
    assert (out / "vocoder" / "frames_8.digest.json").stat().st_mtime_ns == before

    listing = doit(config, "list", "--all")
    assert listing.returncode == 0
    names = [line.split()[0] for line in listing.stdout.splitlines()]
    assert "vocoder:frames_24.convert" in names and "weights" in names

    cleaned = doit(config, "clean")
    assert cleaned.returncode == 0, cleaned.stderr
    assert not (out / "vocoder" / "frames_24.mlpackage").exists()
    assert not (out / "weights" / "kokoro.pt").exists()


def test_invalid_config_stops_doit_with_a_located_message(tmp_path):
    config = tmp_path / "pipeline.yaml"
    config.write_text(PIPELINE.replace("[8, 16]", "[16, 8]"))
    result = doit(config)
    assert result.returncode != 0
    line = 1 + next(i for i, text in enumerate(PIPELINE.splitlines()) if "buckets" in text)
    assert f"{config}:{line}: stages.vocoder.shapes.frames.buckets: must be strictly increasing" in result.stderr
