"""Shared fixtures: a small random-weight Kokoro (tests/fixtures/tiny-kokoro.json)."""
import json
from pathlib import Path

import pytest
import torch

TINY_CONFIG = Path(__file__).resolve().parent / "fixtures" / "tiny-kokoro.json"


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


# make test's two workers (tests/scheduling.py): hooks, imported so pytest finds them
from tests.scheduling import (  # noqa: E402,F401
    pytest_collection_modifyitems, pytest_configure, pytest_configure_node, pytest_xdist_make_scheduler)
