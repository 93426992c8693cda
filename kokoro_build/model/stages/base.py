"""The stage-kind registry and the interface every kind implements."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import ClassVar

from kokoro_build.schema.kinds import KINDS, kind_row

_KINDS: dict[str, type["StageKind"]] = {}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    def as_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}


class StageKind:
    """One split of the model. Subclasses are registered with @register_stage."""

    kind: ClassVar[str]

    def __init__(self, model_config: dict, passes: list[tuple[str, dict]] = (), flexible: bool = False,
                 options: dict | None = None):
        self.model_config = model_config
        self.options = dict(options or {})  # the kind's own settings from YAML (vocoder: islands)
        self.passes = [(pass_id, dict(options)) for pass_id, options in passes]
        # A range/enumerated artifact runs at the utterance's own length: no padding.
        self.flexible = flexible

    @property
    def masked(self) -> bool:
        """Padded frame buckets: kokoro::mask_padding runs and valid_frames is an input.
        (A flexible stage runs at the utterance's own length: nothing to mask.)"""
        return self.pass_options("kokoro::mask_padding") is not None and not self.flexible

    def pass_options(self, pass_id: str) -> dict | None:
        """The options a surgery pass runs with on this stage, or None if it doesn't run.
        Some passes change a stage's interface (deterministic_noise: input)."""
        return next((options for i, options in self.passes if i == pass_id), None)

    @staticmethod
    def load_source(path: str) -> dict:
        """The weights file a kind's tasks are fed ({config, voices, provenance, ...}):
        Kokoro's `weights/kokoro.pt`, unless a kind brings its own model."""
        from kokoro_build.model.source.weights import load_weights
        return load_weights(path)

    def model_from_source(self, blob: dict):
        """What build_module takes: a KModel built from the weights file."""
        from kokoro_build.model.source.kmodel import build_kmodel
        return build_kmodel(blob["config"], blob["state_dict"])

    def build_module(self, kmodel, sizes: dict[str, int] | None = None):
        """The torch module for this split, taken from a loaded KModel (at `sizes`,
        for a kind whose module depends on them)."""
        raise NotImplementedError

    def inputs(self, sizes: dict[str, int]) -> list[TensorSpec]:
        raise NotImplementedError

    def outputs(self, sizes: dict[str, int]) -> list[TensorSpec]:
        raise NotImplementedError

    def parity_sizes(self, sizes: dict[str, int]) -> dict[str, int]:
        """Sizes for surgery parity checks: big enough for PSNR to mean something,
        small enough to run five times."""
        return sizes

    def example_inputs(self, sizes: dict[str, int], voice_pack, seed: int = 0) -> tuple:
        """Fixed-seed, realistic inputs for tracing and parity."""
        raise NotImplementedError

    def parity_view(self, output: str, value):
        """How an output is compared for parity (PSNR): as it is, unless a kind says
        otherwise (an angle, for one, is compared on the unit circle)."""
        return value


def register_stage(kind: str):
    def decorate(cls):
        if kind in _KINDS:
            raise ValueError(f"stage kind {kind!r} is already registered")
        cls.kind = kind
        _KINDS[kind] = cls
        return cls
    return decorate


def stage_kinds() -> dict[str, type[StageKind]]:
    """Every kind of the table (schema/kinds.py), imported."""
    return {kind: get_stage_kind(kind) for kind in KINDS}


def get_stage_kind(kind: str) -> type[StageKind]:
    """The class of one kind: only its own module is imported (by name from the kind
    table, so a Kokoro stage's build doesn't load, or depend on, the G2P's code)."""
    module = kind_row(kind).module
    if kind not in _KINDS:
        importlib.import_module(module)
    if kind not in _KINDS:
        raise KeyError(f"{module} registers no stage kind {kind!r}")
    return _KINDS[kind]
