"""Shared fixtures: a small random-weight Kokoro (tests/fixtures/tiny-kokoro.json)."""
import json
from pathlib import Path

import pytest
import torch

TINY_CONFIG = Path(__file__).resolve().parent / "fixtures" / "tiny-kokoro.json"
# Session builds that several modules read: under pytest-xdist (`make test` runs two
# workers) every test that reads one runs on the same worker, so it is built once.
SHARED_BUILDS = ("real_default", "tiny_chain")


def pytest_collection_modifyitems(config, items):
    """Group each test for `--dist loadgroup`: by the shared build it reads, else by its
    module, so a module-scoped build is never made on both workers. The slow tests go
    first: a long build started last would leave the other worker idle at the end."""
    for item in items:
        shared = [name for name in SHARED_BUILDS if name in item.fixturenames]
        item.add_marker(pytest.mark.xdist_group(shared[0] if shared else item.module.__name__))
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: keeps file order


@pytest.fixture(scope="session")
def tiny_config() -> dict:
    return json.loads(TINY_CONFIG.read_text())


@pytest.fixture(scope="session")
def tiny_kmodel(tiny_config):
    """Read-only: tests that rewrite it must deepcopy first."""
    from kokoro_build.model.source.kmodel import build_kmodel
    torch.manual_seed(3)
    return build_kmodel(tiny_config, None)


@pytest.fixture(scope="session")
def tiny_voice_pack():
    return 0.3 * torch.randn(510, 1, 256, generator=torch.Generator().manual_seed(5))


@pytest.fixture(scope="session")
def tiny_chain(tmp_path_factory):
    """The chain of a small random-weight Kokoro with every stage (slow: ~1 min to build)."""
    from tests.slow.tiny import CHAIN_PIPELINE, build_chain
    return build_chain(tmp_path_factory, CHAIN_PIPELINE, "tiny-chain")
