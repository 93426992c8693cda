"""StageRun: one artifact of one stage, the single value every step of it is given.

The plan (plan/tasks.py) builds one StageRun per stage and shape. Each doit task gets
`run.for_step(step)`: the run with only the fields that step reads, the rest None.
That same value, without its paths, is the task's `config_changed` slice and its
step-cache key, so what an action reads and what makes it stale can't drift apart.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

Step = Literal["export", "convert", "compress", "verify", "lower", "program_verify"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ShapePoint(Strict):
    """The sizes an artifact is traced at (for a flexible dimension: its largest size,
    also its default), and the flexible dimensions with their mode. `buckets` is a
    materialized stage's one conversion: a range over its buckets, traced padded and
    masked, whose functions are then fixed at each bucket."""

    sizes: dict[str, int]
    flexible: dict[str, dict] = {}  # dim -> {"range": [lo, hi]} | {"enumerated": [..]} | {"buckets": [..]}

    @property
    def label(self) -> str:
        return "-".join(f"{dim}_{next(iter(self.flexible[dim]))}" if dim in self.flexible
                        else f"{dim}_{size}" for dim, size in self.sizes.items())


class RunPaths(Strict):
    """Where the artifact's files are (plan/paths.py names them). `converted` is what
    ct.convert writes; `bucket` the bucket's finished package (the converted one, or
    with `compress:` the compressed one); `package` what ships: the bucket, or the
    stage's merged multifunction package."""

    weights: str            # the weights file the stage is built from
    traced: str
    converted: str
    bucket: str
    package: str
    verified: str           # <stage>/<label>.verify.json
    program: str | None = None  # executorch/<stage>_<label>.pte, with the executorch target
    calibration: str | None = None  # _work/calibration.json, for an A8 compress step
    calibration_key: str | None = None  # this package's entry in it
    sensitivity: str | None = None  # _work/sensitivity.npz, for sensitive_kmeans palettes

    @property
    def converted_report(self) -> str:
        return str(report_path(self.converted))

    @property
    def report(self) -> str:
        return str(report_path(self.bucket))

    @property
    def program_report(self) -> str:
        return self.program.removesuffix(".pte") + ".report.json"

    @property
    def program_verified(self) -> str:
        return self.program.removesuffix(".pte") + ".verify.json"

    @property
    def golden(self) -> str:
        return str(golden_path(self.verified))


def golden_path(verified: str | Path) -> Path:
    """`<shape>.golden.npz` beside `<shape>.verify.json`: the golden vectors."""
    path = Path(verified)
    return path.with_name(path.name.removesuffix(".verify.json") + ".golden.npz")


def report_path(package: str | Path) -> Path:
    """`<shape>.report.json` beside `<shape>.mlpackage`: what the conversion wrote."""
    path = Path(package)
    return path.with_name(path.name.removesuffix(".mlpackage") + ".report.json")


def at_own_length(flexible: dict | None) -> bool:
    """A range or enumerated artifact runs at the input's own length, with nothing to
    pad or mask; a materialized stage's conversion (`buckets`) serves padded buckets."""
    return any(mode in ("range", "enumerated") for flex in (flexible or {}).values() for mode in flex)


_MODULE = ("kind", "sizes", "flexible", "passes", "voice", "options")


class StageRun(Strict):
    """What the steps of one artifact compute. `stage` (for messages) and `paths`
    say where, not what: they are in no step's slice."""

    stage: str
    paths: RunPaths
    # the surgered torch module: export, verify, lower and program_verify read these
    kind: str | None = None
    sizes: dict[str, int] | None = None
    flexible: dict[str, dict] | None = None
    passes: list[tuple[str, dict]] | None = None
    voice: str | None = None
    options: dict | None = None
    # conversion
    precision: Literal["fp16", "fp32"] | None = None
    compute_units: str | None = None
    deployment: str | None = None
    compress: dict | None = None
    # checks
    thresholds: dict | None = None
    analyzer: str | None = None
    lint_fail_on: list[str] | None = None  # verify.lint.fail_on
    function: str | None = None  # the bucket's function in a multifunction package
    executorch_export: str | None = None
    executorch_thresholds: dict | None = None

    STEP_FIELDS: ClassVar[dict[str, tuple[str, ...]]] = {
        "export": _MODULE,
        "convert": ("precision", "compute_units", "deployment"),
        "compress": ("compress",),
        "verify": _MODULE + ("precision", "compute_units", "thresholds", "analyzer", "lint_fail_on", "function"),
        "lower": _MODULE + ("executorch_export",),
        "program_verify": _MODULE + ("executorch_export", "executorch_thresholds"),
    }

    @property
    def point(self) -> ShapePoint:
        return ShapePoint(sizes=self.sizes or {}, flexible=self.flexible or {})

    def for_step(self, step: Step) -> "StageRun":
        """This run with only what `step` reads (an action that reaches for more gets None)."""
        keep = {*self.STEP_FIELDS[step], "stage", "paths"}
        return self.model_copy(update={f: None for f in type(self).model_fields if f not in keep})

    def step_slice(self, step: Step) -> dict:
        """The config slice that makes `step` stale: the fields it reads."""
        return self.for_step(step).model_dump(mode="json", include=set(self.STEP_FIELDS[step]))
