"""Stage kinds: which part of KModel a split holds, its I/O and example inputs."""
from kokoro_build.model.stages.base import StageKind, TensorSpec, get_stage_kind, register_stage, stage_kinds

__all__ = ["StageKind", "TensorSpec", "get_stage_kind", "register_stage", "stage_kinds"]
