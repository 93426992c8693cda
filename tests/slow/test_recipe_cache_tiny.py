"""A recipe that changes only compression rebuilds no trace and no conversion: its
weights, exports and conversions come from the cache its base filled (counted from
doit's output), on the small random-weight Kokoro."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "fixtures" / "tiny-kokoro.json"
BASE = f"""\
version: 1
name: tiny-base
model:
  source: {{random_seed: 0, config: {TINY}}}
  voices: [test_voice]
stages:
  duration: {{kind: duration, shapes: {{tokens: {{range: [2, 128]}}}}}}
  prosody: {{kind: prosody, shapes: {{frames: {{buckets: [24, 48]}}}}}}
  noise: {{kind: noise, precision: fp32, shapes: {{frames: {{buckets: [24, 48]}}}}}}
  vocoder: {{kind: vocoder, islands: [noise, tail], shapes: {{frames: {{buckets: [24, 48]}}}}}}
  tail: {{kind: tail, precision: fp32, shapes: {{frames: {{buckets: [24, 48]}}}}}}
verify: {{audio: {{min_pesq: null, max_mcd_db: null, min_mel_correlation: null}}}}
"""
RECIPE = """\
extends: base.yaml
name: tiny-w8
stages:
  vocoder:
    compress: {linear: {}}
"""


def _doit(config: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "doit", "-f", str(ROOT / "dodo.py"), f"config={config}"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_a_compression_recipe_reuses_its_bases_traces_and_conversions(tmp_path):
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "w8.yaml").write_text(RECIPE)
    base = _doit(tmp_path / "base.yaml")
    shapes = 1 + 4 * 2  # duration's range, and prosody, noise, vocoder, tail at two buckets
    assert base.count(": tracing") == shapes and base.count(": ct.convert") == shapes
    recipe = _doit(tmp_path / "w8.yaml")
    assert recipe.count(": tracing") == 0 and recipe.count(": ct.convert") == 0
    assert recipe.count("cache hit: export") == shapes and recipe.count("cache hit: convert") == shapes
    assert recipe.count("cache hit: weights") == 1
    assert recipe.count("compress vocoder") == 2 * 2  # the only new work: two buckets (start, end lines)
    assert (tmp_path / "artifacts" / "tiny-w8" / "manifest.json").is_file()
