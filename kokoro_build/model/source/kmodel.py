"""Build `kokoro.model.KModel` from a config dict and a flat state dict, strictly.

`import kokoro` runs the package __init__, which imports the G2P pipeline
(misaki, spaCy: 8 s and not installed). KModel itself needs only torch,
transformers, loguru and huggingface_hub, so we load `kokoro.model` under a
bare package module that skips that __init__.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

# The Kokoro-82M v1.0 config.json values (hexgrad/Kokoro-82M's config.json), with the vocab.
BUILTIN_CONFIG_PATH = Path(__file__).parent / "data" / "kokoro-82m.json"


def builtin_config() -> dict:
    return json.loads(BUILTIN_CONFIG_PATH.read_text(encoding="utf-8"))


def import_kokoro_model():
    """Return the `kokoro.model` module without running kokoro/__init__.py."""
    if "kokoro.model" in sys.modules:
        return sys.modules["kokoro.model"]
    if "kokoro" not in sys.modules:
        spec = importlib.util.find_spec("kokoro")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("the `kokoro` package is not installed; run `make build`")
        bare = importlib.util.module_from_spec(
            importlib.machinery.ModuleSpec("kokoro", None, is_package=True))
        bare.__path__ = list(spec.submodule_search_locations)
        sys.modules["kokoro"] = bare
    return importlib.import_module("kokoro.model")


def import_kmodel_class():
    return import_kokoro_model().KModel


def kmodel_shell(config: dict, disable_complex: bool = False):
    """A KModel with its initial (random) weights, built on the current torch device.

    KModel's constructor always loads a checkpoint and silently falls back to
    `strict=False` on mismatch; we hand it an empty one instead.
    """
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.pth"
        torch.save({}, empty)
        return import_kmodel_class()(repo_id="hexgrad/Kokoro-82M", config=config,
                                     model=str(empty), disable_complex=disable_complex)


def build_kmodel(config: dict, state_dict: dict | None, disable_complex: bool = False):
    """A KModel in eval mode with exactly `state_dict` loaded (strict).
    `state_dict=None` keeps the random initialisation (tests)."""
    model = kmodel_shell(config, disable_complex)
    if state_dict is not None:
        result = model.load_state_dict(state_dict, strict=False)
        missing = [k for k in result.missing_keys if not derived_buffer(k)]
        if missing or result.unexpected_keys:
            raise ValueError(f"state dict does not match KModel: missing {missing[:5]}, "
                             f"unexpected {result.unexpected_keys[:5]}")
    return model.eval()


def derived_buffer(key: str) -> bool:
    # CustomSTFT (disable_complex=True) registers its DFT bases as buffers that
    # are computed in __init__, not stored in checkpoints.
    return ".stft." in key
