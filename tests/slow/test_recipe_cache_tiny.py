"""A recipe that changes only compression rebuilds no trace and no conversion: its
weights, exports and conversions come from the cache its base filled (counted from
doit's output), on the small random-weight Kokoro."""
import pytest

from tiny import ISLAND_STAGES, NO_SPEECH_GATES, UP_TO_MANIFEST, header, run_doit

BASE = header("tiny-base") + """stages:
  duration: {kind: duration, shapes: {tokens: {range: [2, 128]}}}
""" + ISLAND_STAGES + NO_SPEECH_GATES
RECIPE = """\
extends: base.yaml
name: tiny-w8
stages:
  vocoder:
    compress: {linear: {}}
"""


@pytest.mark.slow
def test_a_compression_recipe_reuses_its_bases_traces_and_conversions(tmp_path):
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "w8.yaml").write_text(RECIPE)
    base = run_doit(tmp_path / "base.yaml", *UP_TO_MANIFEST)
    shapes = 1 + 4  # duration's range, and prosody, noise, vocoder, tail at one bucket
    assert base.count(": tracing") == shapes and base.count(": ct.convert") == shapes
    recipe = run_doit(tmp_path / "w8.yaml", *UP_TO_MANIFEST)
    assert recipe.count(": tracing") == 0 and recipe.count(": ct.convert") == 0
    assert recipe.count("cache hit: export") == shapes and recipe.count("cache hit: convert") == shapes
    assert recipe.count("cache hit: weights") == 1
    assert recipe.count("compress vocoder") == 2  # the only new work: its bucket (start, end lines)
    assert (tmp_path / "artifacts" / "tiny-w8" / "manifest.json").is_file()
