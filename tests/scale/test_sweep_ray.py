"""A sweep of four variants of the small random-weight Kokoro, built on a real
one-machine Ray cluster (`--ray local`, loopback only), then on the local process pool
in a second artifacts folder: each backend builds every package, and they agree byte
for byte, variant by variant."""
import re

import pytest

from kokoro_build.scale.executors import make_executor
from kokoro_build.scale.sweep import run_sweep
from tests.slow.tiny import ISLAND_STAGES, NO_SPEECH_GATES, UP_TO_MANIFEST, header

pytestmark = pytest.mark.slow
pytest.importorskip("ray")

# Only prosody's compression differs (palette bits x which weights): after the first
# build the weights, traces and conversions are cache hits, and each variant's own work is
# its compress, verify and manifest steps. Prosody: its compression takes seconds where
# the tiny model's full-width vocoder's takes 20 (uniform palettes; k-means, minutes).
PROSODY = "prosody: {kind: prosody, "
BASE = header("tiny-sweep") + "stages:\n" + ISLAND_STAGES.replace(
    PROSODY, PROSODY + "compress: {palettize: {nbits: 8, mode: uniform}}, ") + NO_SPEECH_GATES
SWEEP = f"""\
name: tiny
base: base.yaml
grid:
  stages.prosody.compress.palettize.nbits: [8, 6]
variants:
  - name: all          # every weight of at least 2048 elements (the default)
  - name: large        # only those of at least 100,000
    stages.prosody.compress.min_weight_elements: 100000
tasks: {list(UP_TO_MANIFEST)}
"""
# a tiny variant's build: well under the 4 GB a real one is given
RESOURCES = {"num_cpus": 1, "memory": 2**30}


def digests(rows) -> dict[str, dict[str, str]]:
    """variant -> {stage: its package's sha256}."""
    return {row["label"]: {package.split("/")[0]: sha for package, sha in row["packages"].items()}
            for row in rows}


def test_ray_and_the_local_pool_build_the_same_packages(tmp_path):
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "sweep.yaml").write_text(SWEEP)
    lines = []
    on_ray, folder = run_sweep(tmp_path / "sweep.yaml", tmp_path / "ray",
                               make_executor("ray", workers=2, address="local", resources=RESOURCES),
                               log=lines.append)
    assert [row["status"] for row in on_ray] == ["ok"] * 4, [row.get("error") for row in on_ray]
    assert lines[0].startswith("sweep tiny: 4 variants, 4 to build on the ray executor")
    assert sorted(line.split("]")[0] for line in lines[1:5]) == [f"sweep [{n}/4" for n in range(1, 5)]

    # The second folder shares the first one's weights, traces and conversions (its cache
    # entries, as folders on one machine can share artifacts/.cache), not its compressed
    # packages: every compress, verify and manifest step runs again, on the other backend.
    cache = tmp_path / "local" / ".cache"
    cache.mkdir(parents=True)
    for step in ("weights", "export", "convert"):
        (cache / step).symlink_to(tmp_path / "ray" / ".cache" / step)
    on_pool, _ = run_sweep(tmp_path / "sweep.yaml", tmp_path / "local", make_executor("local", workers=2))
    assert [row["status"] for row in on_pool] == ["ok"] * 4, [row.get("error") for row in on_pool]
    logs = "".join(p.read_text() for p in (tmp_path / "local" / "sweeps" / "tiny" / "logs").glob("*.log"))
    assert logs.count("cache hit: convert") == 4 * 4 and ": tracing" not in logs
    compressed = re.findall(r"compress (\w+) \{'frames': 24\}: [\d.]+ -> [\d.]+ MB", logs)
    assert compressed == ["prosody"] * 4  # each variant's own setting, anew

    ray, pool = digests(on_ray), digests(on_pool)
    assert ray == pool
    labels = ["all-nbits8", "all-nbits6", "large-nbits8", "large-nbits6"]
    assert list(ray) == labels and set(ray["all-nbits8"]) == {"prosody", "noise", "vocoder", "tail"}
    assert len({ray[label]["prosody"] for label in labels}) == 4  # each sets prosody its own way
    for stage in ("noise", "vocoder", "tail"):  # and nothing else
        assert len({ray[label][stage] for label in labels}) == 1
    for path in (tmp_path / "ray" / "tiny-large-nbits6", tmp_path / "local" / "tiny-large-nbits6"):
        assert (path / "manifest.json").is_file()
    mb = {row["label"]: row["mb"] for row in on_ray}
    assert mb["all-nbits6"] < mb["all-nbits8"] < mb["large-nbits8"] and mb["all-nbits6"] < mb["large-nbits6"]
    assert all(0.0 <= share <= 1.0 for row in on_ray for share in row["ane"].values())
    table = (folder / "results.md").read_text()
    assert "| all-nbits8 | ok |" in table and "No plot: no variant was built through its report" in table
