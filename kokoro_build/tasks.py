"""pipeline.yaml -> doit task dicts. Describes work only: no torch/coremltools here.

Per stage and shape, three steps (each a task):
  <stage>:<shape>.export   surgery + trace   -> _work/<stage>/<shape>.traced.pt (+ digest)
  <stage>:<shape>.convert  ct.convert        -> <stage>/<shape>.mlpackage (+ digest, report)
  <stage>:<shape>.verify   MIL evaluator vs torch twin, ANE analyzer -> <stage>/<shape>.verify.json
fed by one `weights` task. Each task's `uptodate` watches only the config
slice it reads, and its `file_dep` lists upstream digests plus the code it runs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from doit.tools import config_changed

from .config import PipelineConfig, StageConfig
from .manifest import verify_path
from .package import digest_path, remove_targets

PACKAGE_DIR = Path(__file__).resolve().parent
LOCK_FILES = [PACKAGE_DIR.parent / "requirements" / n for n in ("lock.txt", "nodeps.txt")]


def code_files(*patterns: str) -> list[str]:
    """Source files (globs relative to kokoro_build/) a step runs, plus the dependency pins."""
    files = {p for pattern in patterns for p in PACKAGE_DIR.glob(pattern) if p.is_file()}
    files |= {PACKAGE_DIR / "package.py", PACKAGE_DIR / "memory.py"} | {p for p in LOCK_FILES if p.exists()}
    return sorted(str(p) for p in files)


WEIGHTS_CODE = ("source/*.py", "source/data/*.json")
EXPORT_CODE = ("export.py", "stages/*.py", "surgery/*.py", "surgery/passes/*.py",
               "source/kmodel.py", "source/weights.py")
CONVERT_CODE = ("convert.py", "surgery/aten_aliases.py")
REPORT_CODE = ("report/*.py", "runtime/*.py", "verify/*.py", "verify/kernels/*.py")
VERIFY_CODE = ("verify/*.py", "verify/kernels/*.py", "stages/*.py", "report/audio.py", "manifest.py",
               "source/weights.py")


def artifacts_dir(config: PipelineConfig, config_path: str | Path) -> Path:
    """`artifacts/<name>/` beside the pipeline file; a file in `recipes/` builds into
    the project's `artifacts/` (one folder up), beside the default variant."""
    folder = Path(config_path).resolve().parent
    if folder.name == "recipes":
        folder = folder.parent
    return folder / "artifacts" / config.name


@dataclass(frozen=True)
class ShapePoint:
    """One artifact of a stage: the sizes it is traced at (and, for a flexible
    dimension, its default), and the flexible dimensions with their mode."""

    sizes: dict[str, int]
    flexible: dict[str, dict] = field(default_factory=dict)  # dim -> {"range": [lo, hi]} | {"enumerated": [..]}

    @property
    def label(self) -> str:
        return "-".join(f"{dim}_{next(iter(self.flexible[dim]))}" if dim in self.flexible
                        else f"{dim}_{size}" for dim, size in self.sizes.items())


def shape_points(stage: StageConfig) -> list[ShapePoint]:
    """Buckets give one artifact each; a range or enumerated dimension gives one
    artifact for all its sizes, traced at its largest size (also its default)."""
    points = [ShapePoint({})]
    for dim, spec in stage.shapes.items():
        if spec.mode == "buckets":
            points = [ShapePoint({**p.sizes, dim: size}, p.flexible) for p in points for size in spec.sizes]
        else:
            flexible = {spec.mode: list(spec.sizes)}
            points = [ShapePoint({**p.sizes, dim: max(spec.sizes)}, {**p.flexible, dim: flexible})
                      for p in points]
    return points


def generate_tasks(config: PipelineConfig, config_path: str | Path) -> Iterator[dict]:
    out = artifacts_dir(config, config_path)
    weights = out / "weights" / "kokoro.pt"
    model_slice = config.model.model_dump(mode="json")
    yield {
        "basename": "weights",
        "doc": f"Kokoro weights from source {config.model.source.kind} -> {weights.relative_to(out)}",
        "actions": [(_action("kokoro_build.source.weights:build_weights"), [model_slice, str(weights)])],
        "file_dep": code_files(*WEIGHTS_CODE),
        "targets": [str(weights), str(digest_path(weights))],
        "uptodate": [config_changed(model_slice)],
        "clean": [remove_targets],
    }
    manifest_stages = {}
    for stage_name, stage in config.stages.items():
        if not stage.builds_artifacts:  # the chain does this step on the host
            manifest_stages[stage_name] = {"kind": stage.kind, "where": "host", "artifacts": []}
            continue
        yield from _stage_tasks(config, stage_name, stage, out, weights)
        manifest_stages[stage_name] = {"kind": stage.kind, "options": stage.kind_options, "artifacts": [
            (point.sizes, str(package), str(traced))
            for point, traced, package in _stage_paths(out, stage_name, stage)]}
    manifest = out / "manifest.json"
    packages = [a[1] for s in manifest_stages.values() for a in s["artifacts"]]
    yield {
        "basename": "manifest",
        "doc": "manifest.json: every artifact with its I/O and digest (what the chain reads)",
        "actions": [(_action("kokoro_build.manifest:write_manifest"),
                     [config.name, str(out), str(weights), manifest_stages, str(manifest)])],
        "file_dep": [str(digest_path(weights))] + [str(digest_path(p)) for p in packages] +
                    [str(verify_path(p)) for p in packages] + code_files("manifest.py"),
        "targets": [str(manifest)],
        "uptodate": [config_changed(manifest_stages)],
        "clean": [remove_targets],
    }
    yield {
        "basename": "report",
        "doc": "report.md + report.html: parity, ANE verdicts, one sentence through the chain",
        "actions": [(_action("kokoro_build.report.variant:write_variant_report"),
                     [str(out), config.model.voices[0], str(out / "report.md"), str(out / "report.html")])],
        "file_dep": [str(manifest)] + code_files(*REPORT_CODE),
        "targets": [str(out / "report.md"), str(out / "report.html")],
        "uptodate": [config_changed({"voice": config.model.voices[0]})],
        "clean": [remove_targets],
    }


def _stage_paths(out: Path, stage_name: str, stage: StageConfig):
    """(shape point, traced path, package path) per artifact of a stage."""
    for point in shape_points(stage):
        yield (point, out / "_work" / stage_name / f"{point.label}.traced.pt",
               out / stage_name / f"{point.label}.mlpackage")


def _stage_tasks(config, stage_name, stage, out, weights) -> Iterator[dict]:
    yield {"basename": stage_name, "name": None, "doc": f"build every shape of stage {stage_name}"}
    passes = stage.passes()
    voice = config.model.voices[0]
    for point, traced, package in _stage_paths(out, stage_name, stage):
        label, sizes = point.label, point.sizes
        report = out / stage_name / f"{label}.report.json"
        export_slice = {"kind": stage.kind, "sizes": sizes, "flexible": point.flexible,
                        "passes": passes, "voice": voice, "options": stage.kind_options}
        yield {
            "basename": stage_name, "name": f"{label}.export",
            "doc": f"surgery + trace {stage_name} at {label}",
            "actions": [(_action("kokoro_build.export:export_stage"),
                         [str(weights), stage.kind, sizes, passes, voice, str(traced), point.flexible,
                          stage.kind_options])],
            "file_dep": [str(digest_path(weights))] + code_files(*EXPORT_CODE),
            "targets": [str(traced), str(digest_path(traced))],
            "uptodate": [config_changed(export_slice)],
            "clean": [remove_targets],
        }
        convert_slice = {"precision": config.stage_precision(stage_name),
                         "compute_units": config.stage_compute_units(stage_name),
                         "deployment": config.target.deployment}
        yield {
            "basename": stage_name, "name": f"{label}.convert",
            "doc": f"ct.convert {stage_name} at {label} -> {package.relative_to(out)}",
            "actions": [(_action("kokoro_build.convert:convert_stage"),
                         [str(traced), convert_slice["precision"], convert_slice["compute_units"],
                          convert_slice["deployment"], str(package), str(report)])],
            "file_dep": [str(digest_path(traced))] + code_files(*CONVERT_CODE),
            "targets": [str(package), str(report), str(digest_path(package))],
            "uptodate": [config_changed(convert_slice)],
            "clean": [remove_targets],
        }
        verify_slice = {"precision": convert_slice["precision"],
                        "thresholds": config.stage_thresholds(stage_name),
                        "analyzer": config.verify.ane.analyzer, "run": export_slice}
        verified = verify_path(package)
        yield {
            "basename": stage_name, "name": f"{label}.verify",
            "doc": f"run {package.relative_to(out)} with the MIL evaluator against its twin",
            "actions": [(_action("kokoro_build.verify.task:verify_artifact"),
                         [str(weights), stage.kind, sizes, passes, voice, point.flexible,
                          stage.kind_options, str(traced), str(package), convert_slice["precision"],
                          convert_slice["compute_units"], verify_slice["thresholds"],
                          verify_slice["analyzer"], str(verified)])],
            "file_dep": [str(digest_path(package)), str(digest_path(traced)),
                         str(digest_path(weights))] + code_files(*VERIFY_CODE),
            "targets": [str(verified)],
            "uptodate": [config_changed(verify_slice)],
            "clean": [remove_targets],
        }


def _action(target: str):
    """A doit python-action that imports its (heavy) module only when it runs."""
    module_name, func_name = target.split(":")

    def run(*args):
        import importlib

        from .memory import map_large_buffers
        map_large_buffers()  # before the first big tensor: see memory.py
        getattr(importlib.import_module(module_name), func_name)(*args)
    run.__name__ = func_name
    return run
