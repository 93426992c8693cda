"""The step cache on the small random-weight Kokoro, counted from doit's output:
- a recipe that changes only compression rebuilds no trace and no conversion: its
  weights, exports and conversions come from the local cache its base filled;
- a second machine (a fresh folder, an empty local cache) that shares only the remote
  cache with the first (an S3 server on loopback: moto) traces and converts nothing,
  and makes the same packages."""
import json
import shutil

import pytest

from tiny import ISLAND_STAGES, NO_SPEECH_GATES, UP_TO_MANIFEST, header, run_doit

STAGES = """stages:
  duration: {kind: duration, shapes: {tokens: {range: [2, 128]}}}
""" + ISLAND_STAGES + NO_SPEECH_GATES
RECIPE = """\
extends: base.yaml
name: tiny-w8
stages:
  vocoder:
    compress: {linear: {}}
"""
SHAPES = 1 + 4  # duration's range, and prosody, noise, vocoder, tail at one bucket


@pytest.fixture(scope="module")
def first_machine(tmp_path_factory):
    """The base built once with a remote cache on a local S3 server; yields
    (folder, base's doit output, the server's endpoint) while the server runs."""
    from tests.scale.s3_server import BUCKET, s3_server
    folder = tmp_path_factory.mktemp("first")
    with pytest.MonkeyPatch.context() as patch, s3_server(patch) as (endpoint, client, _):
        base = header("tiny-base") + f"cache: {{url: 's3://{BUCKET}/steps', endpoint_url: '{endpoint}'}}\n" + STAGES
        (folder / "base.yaml").write_text(base)
        yield folder, run_doit(folder / "base.yaml", *UP_TO_MANIFEST), client


def package_digests(variant_dir) -> dict:
    manifest = json.loads((variant_dir / "manifest.json").read_text())
    return {name: [a["sha256"] for a in stage["artifacts"]] for name, stage in manifest["stages"].items()}


@pytest.mark.slow
def test_a_compression_recipe_reuses_its_bases_traces_and_conversions(first_machine):
    folder, base, _ = first_machine
    assert base.count(": tracing") == SHAPES and base.count(": ct.convert") == SHAPES
    (folder / "w8.yaml").write_text(RECIPE)
    recipe = run_doit(folder / "w8.yaml", *UP_TO_MANIFEST)
    assert recipe.count(": tracing") == 0 and recipe.count(": ct.convert") == 0
    assert recipe.count("cache hit: export") == SHAPES and recipe.count("cache hit: convert") == SHAPES
    assert recipe.count("cache hit: weights") == 1
    assert recipe.count("compress vocoder") == 2  # the only new work: its bucket (start, end lines)
    assert (folder / "artifacts" / "tiny-w8" / "manifest.json").is_file()


@pytest.mark.slow
def test_a_second_machine_converts_nothing_with_the_shared_remote_cache(first_machine, tmp_path):
    folder, base, client = first_machine
    # weights, an export and a conversion per shape were uploaded, under their final keys
    assert base.count("cache upload:") == 1 + 2 * SHAPES
    second = tmp_path / "second"
    second.mkdir()
    shutil.copy(folder / "base.yaml", second / "base.yaml")  # the same file, nothing else
    output = run_doit(second / "base.yaml", *UP_TO_MANIFEST)
    assert output.count(": tracing") == 0 and output.count(": ct.convert") == 0
    assert output.count("cache hit (remote): convert") == SHAPES
    assert output.count("cache hit (remote): export") == SHAPES
    assert output.count("cache hit (remote): weights") == 1 and "cache upload:" not in output
    assert package_digests(second / "artifacts" / "tiny-base") == \
        package_digests(folder / "artifacts" / "tiny-base")
