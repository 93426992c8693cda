"""pipeline.yaml -> doit task dicts. Describes work only: no torch/coremltools here.

Per stage and shape, three steps (each a task):
  <stage>:<shape>.export   surgery + trace   -> _work/<stage>/<shape>.traced.pt (+ digest)
  <stage>:<shape>.convert  ct.convert        -> <stage>/<shape>.mlpackage (+ digest, report)
  <stage>:<shape>.verify   MIL evaluator vs torch twin, ANE analyzer -> <stage>/<shape>.verify.json
With a `compress:` block, conversion goes to `_work/<stage>/converted/` and
  <stage>:<shape>.compress coremltools.optimize -> <stage>/<shape>.mlpackage
runs before verify.
With `packaging: multifunction`, the buckets' packages go to `_work/<stage>/functions/` and
  <stage>:merge                one package, a function per bucket -> <stage>/<stage>.mlpackage
runs before the verify steps, which then run each function of the merged package.
With `compress: {activations: ...}` (A8) on some stage, one
  calibration               the chain speaks calibration.texts through every stage's
                            converted package (MIL evaluator) -> _work/calibration.json
feeds those stages' compress steps.
With `targets: [coreml, executorch]`, each shape also gets
  <stage>:<shape>.pte          torch.export + XNNPACK -> executorch/<stage>_<shape>.pte (+ digest, report)
  <stage>:<shape>.pte_verify   ExecuTorch runtime vs torch twin -> executorch/<stage>_<shape>.verify.json
All of it is fed by one `weights` task. Each task's `uptodate` watches only the config
slice it reads, and its `file_dep` lists upstream digests plus the code it runs.
The weights, export and convert steps go through a cache shared by every variant in
the same `artifacts/` (cache.py): another recipe with the same inputs links their
outputs instead of redoing them.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from doit.exceptions import TaskFailed
from doit.tools import config_changed

from kokoro_build.spec.config import PipelineConfig, StageConfig
from kokoro_build.errors import BuildError
from kokoro_build.store.manifest import report_path
from kokoro_build.store.package import DIGEST_SUFFIX, digest_path, outputs_intact, remove_targets, write_error

PACKAGE_DIR = Path(__file__).resolve().parent
LOCK_FILES = [PACKAGE_DIR.parent / "requirements" / n for n in ("lock.txt", "nodeps.txt")]


def code_files(*patterns: str, exclude: tuple[str, ...] = ()) -> list[str]:
    """Source files (globs relative to kokoro_build/) a step runs, plus the dependency pins."""
    files = {p for pattern in patterns for p in PACKAGE_DIR.glob(pattern) if p.is_file()}
    files -= {PACKAGE_DIR / name for name in exclude}
    files |= {PACKAGE_DIR / "package.py", PACKAGE_DIR / "memory.py"} | {p for p in LOCK_FILES if p.exists()}
    return sorted(str(p) for p in files)


WEIGHTS_CODE = ("source/*.py", "source/data/*.json")
# Code only the g2p stage runs: a change to it rebuilds nothing of Kokoro's.
G2P_ONLY = ("source/g2p_en.py", "source/lexicon.py", "stages/g2p.py")
EXPORT_CODE = ("export.py", "stages/*.py", "surgery/*.py", "surgery/passes/*.py",
               "source/kmodel.py", "source/weights.py", "source/g2p_en.py")
CONVERT_CODE = ("convert.py", "surgery/aten_aliases.py", "reproducible.py")
REPORT_CODE = ("report/*.py", "runtime/*.py", "verify/*.py", "verify/kernels/*.py")
EXECUTORCH_CODE = EXPORT_CODE + ("executorch/lower.py",)
PROGRAM_VERIFY_CODE = ("executorch/program.py", "executorch/verify.py", "verify/task.py", "stages/*.py",
                       "source/weights.py", "source/g2p_en.py")
VERIFY_CODE = ("verify/*.py", "verify/kernels/*.py", "stages/*.py", "manifest.py",
               "source/weights.py", "source/g2p_en.py")


def recipe_path(name: str) -> str:
    """`doit recipe=NAME` -> recipes/NAME.yaml (a path or a file name is taken as given)."""
    return name if name.endswith((".yaml", ".yml")) else f"recipes/{name}.yaml"


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
    """Every task; one whose targets include a digest is also stale when an output no
    longer matches that digest (edited, truncated, deleted: package.outputs_intact)."""
    for task in _pipeline_tasks(config, config_path):
        if any(str(t).endswith(DIGEST_SUFFIX) for t in task.get("targets", [])):
            task = {**task, "uptodate": [*task.get("uptodate", []), outputs_intact]}
        yield task


def _pipeline_tasks(config: PipelineConfig, config_path: str | Path) -> Iterator[dict]:
    out = artifacts_dir(config, config_path)
    weights = out / "weights" / "kokoro.pt"
    model_slice = config.model.model_dump(mode="json")
    yield _cached({
        "basename": "weights",
        "doc": f"Kokoro weights from source {config.model.source.kind} -> {weights.relative_to(out)}",
        "actions": [(_action("kokoro_build.model.source.weights:build_weights"), [model_slice, str(weights)])],
        "file_dep": code_files(*WEIGHTS_CODE, exclude=G2P_ONLY),
        "targets": [str(weights), str(digest_path(weights))],
        "uptodate": [config_changed(model_slice)],
        "clean": [remove_targets],
    }, out, "weights", model_slice)
    manifest_stages = {}
    calibration = calibration_path(out) if config.activation_stages else None
    for stage_name, stage in config.stages.items():
        if not stage.builds_artifacts:  # the chain does this step on the host
            manifest_stages[stage_name] = {"kind": stage.kind, "where": "host", "artifacts": []}
            continue
        yield from _stage_tasks(config, stage_name, stage, out, weights, calibration)
        executorch = "executorch" in config.stage_targets(stage_name)
        manifest_stages[stage_name] = {
            "kind": stage.kind, "options": stage.kind_options, "packaging": stage.packaging,
            "artifacts": [paths.manifest_entry() for paths in _stage_paths(out, stage_name, stage, executorch)]}
        if stage.kind == "g2p":
            manifest_stages[stage_name].update(lexicon=str(lexicon_path(out, stage_name)),
                                               checkpoint=str(g2p_checkpoint(out)))
    if calibration is not None:
        yield _calibration_task(config, out, weights, calibration)
    manifest = out / "manifest.json"
    config_dump = config.model_dump(mode="json")
    artifacts = [a for s in manifest_stages.values() for a in s["artifacts"]]
    packages = sorted({a["package"] for a in artifacts})
    programs = [a["executorch"] for a in artifacts if "executorch" in a]
    yield {
        "basename": "manifest",
        "doc": "manifest.json: every artifact with its I/O and digest (what the chain reads)",
        "actions": [(_action("kokoro_build.store.manifest:write_manifest"),
                     [config.name, str(out), str(weights), manifest_stages, str(manifest), config_dump])],
        "file_dep": [str(digest_path(weights))] + [str(digest_path(p)) for p in packages] +
                    [a["verify"] for a in artifacts] + code_files("manifest.py") +
                    [f for p in programs for f in (str(digest_path(p["program"])), p["verify"])] +
                    [str(digest_path(s[key])) for s in manifest_stages.values()
                     for key in ("lexicon", "checkpoint") if key in s],
        "targets": [str(manifest)],
        "uptodate": [config_changed({"stages": manifest_stages, "config": config_dump})],
        "clean": [remove_targets],
    }
    audio_gates = config.verify.audio.model_dump()
    yield {
        "basename": "report",
        "doc": "report.md + report.html: parity, ANE verdicts, one sentence through the chain "
               "(PESQ, MCD and log-mel correlation gated by verify.audio)",
        "actions": [(_action("kokoro_build.report.variant:write_variant_report"),
                     [str(out), config.model.voices[0], str(out / "report.md"), str(out / "report.html"),
                      audio_gates])],
        "file_dep": [str(manifest)] + code_files(*REPORT_CODE),
        "targets": [str(out / "report.md"), str(out / "report.html")],
        "uptodate": [config_changed({"voice": config.model.voices[0], "audio": audio_gates})],
        "clean": [remove_targets],
    }


@dataclass(frozen=True)
class ArtifactPaths:
    """Where one artifact of a stage is built. `converted` is what ct.convert writes;
    `bucket` is the bucket's finished package: the same, or with `compress:` the
    compressed one; `package` is what ships: the bucket, or with `packaging:
    multifunction` the stage's merged package, in which the bucket is `function`."""

    point: ShapePoint
    traced: Path
    converted: Path
    bucket: Path
    package: Path
    function: str | None
    verified: Path  # <stage>/<label>.verify.json
    program: Path | None = None  # executorch/<stage>_<label>.pte, with the executorch target

    @property
    def report(self) -> Path:
        return report_path(self.bucket)

    @property
    def program_report(self) -> Path:
        return self.program.with_suffix(".report.json")

    @property
    def program_verified(self) -> Path:
        return self.program.with_suffix(".verify.json")

    def manifest_entry(self) -> dict:
        entry = {"sizes": self.point.sizes, "traced": str(self.traced), "package": str(self.package),
                 "function": self.function, "report": str(self.report), "verify": str(self.verified)}
        if self.program is not None:
            entry["executorch"] = {"program": str(self.program), "report": str(self.program_report),
                                   "verify": str(self.program_verified)}
        return entry


def merged_package(out: Path, stage_name: str) -> Path:
    return out / stage_name / f"{stage_name}.mlpackage"


def _stage_paths(out: Path, stage_name: str, stage: StageConfig, executorch: bool = False) -> list[ArtifactPaths]:
    merged = stage.packaging == "multifunction"
    paths = []
    for point in shape_points(stage):
        work = out / "_work" / stage_name
        # a merged stage's buckets are intermediates (their own folder: a digest is
        # named by the stem, and the traced twin's is `<label>.digest.json` already)
        bucket = (work / "functions" if merged else out / stage_name) / f"{point.label}.mlpackage"
        converted = work / "converted" / f"{point.label}.mlpackage" if stage.compress else bucket
        paths.append(ArtifactPaths(
            point, work / f"{point.label}.traced.pt", converted, bucket,
            merged_package(out, stage_name) if merged else bucket,
            point.label if merged else None, out / stage_name / f"{point.label}.verify.json",
            out / "executorch" / f"{stage_name}_{point.label}.pte" if executorch else None))
    return paths


def g2p_checkpoint(out: Path) -> Path:
    return out / "weights" / "g2p_en.pt"


def lexicon_path(out: Path, stage_name: str) -> Path:
    return out / stage_name / "lexicon.tsv"


def _g2p_source_tasks(stage_name: str, stage: StageConfig, out: Path) -> Iterator[dict]:
    """A g2p stage's own inputs: g2p-en's checkpoint (its model's weights) and the lexicon."""
    from kokoro_build.model.source.g2p_en import checkpoint_path  # importlib.metadata only
    from kokoro_build.model.source.lexicon import lexicon_sources

    checkpoint = g2p_checkpoint(out)
    yield {
        "basename": stage_name, "name": "checkpoint",
        "doc": f"g2p-en's checkpoint20.npz (sha256-checked) -> {checkpoint.relative_to(out)}",
        "actions": [(_action("kokoro_build.model.source.g2p_en:build_checkpoint"), [str(checkpoint)])],
        "file_dep": [str(checkpoint_path())] + code_files("source/g2p_en.py"),
        "targets": [str(checkpoint), str(digest_path(checkpoint))],
        "clean": [remove_targets],
    }
    lexicon, lexicon_slice = lexicon_path(out, stage_name), stage.lexicon_slice
    yield {
        "basename": stage_name, "name": "lexicon",
        "doc": f"misaki {lexicon_slice['dialect']} {'+'.join(lexicon_slice['tiers'])} -> "
               f"{lexicon.relative_to(out)} (sorted word<TAB>phonemes lines)",
        "actions": [(_action("kokoro_build.model.source.lexicon:build_lexicon"), [lexicon_slice, str(lexicon)])],
        "file_dep": [str(p) for p in lexicon_sources(**lexicon_slice)] +
                    code_files("source/lexicon.py", "source/data/*.json"),
        "targets": [str(lexicon), str(digest_path(lexicon))],
        "uptodate": [config_changed(lexicon_slice)],
        "clean": [remove_targets],
    }


def calibration_path(out: Path) -> Path:
    return out / "_work" / "calibration.json"


def _calibration_task(config: PipelineConfig, out: Path, weights: Path, target: Path) -> dict:
    """The chain over every stage's converted package (G2P aside: the chain's text
    goes through misaki), recording activation ranges for the A8 stages."""
    stages, required = {}, []
    for stage_name, stage in config.stages.items():
        if stage.kind == "g2p":
            continue
        all_paths = _stage_paths(out, stage_name, stage) if stage.builds_artifacts else []
        stages[stage_name] = {"kind": stage.kind, "artifacts": [
            {"sizes": p.point.sizes, "package": str(p.converted), "traced": str(p.traced),
             "report": str(report_path(p.converted))} for p in all_paths]}
        if stage_name in config.activation_stages:
            required += [str(p.converted) for p in all_paths]
    converted = [a["package"] for s in stages.values() for a in s["artifacts"]]
    run_slice = {"texts": config.calibration.chosen_texts, "voice": config.calibration_voice}
    return {
        "basename": "calibration",
        "doc": f"W8A8: speak {len(run_slice['texts'])} calibration texts through the converted "
               f"packages -> {target.relative_to(out)} (activation ranges)",
        "actions": [(_action("kokoro_build.targets.coreml.calibrate:calibrate"),
                     [config.name, str(out), str(weights), stages, run_slice["texts"], run_slice["voice"],
                      required, str(target)])],
        "file_dep": [str(digest_path(weights))] + [str(digest_path(p)) for p in converted] +
                    [str(report_path(p)) for p in converted] +
                    code_files("calibrate.py", "runtime/*.py", "verify/*.py", "verify/kernels/*.py",
                               "stages/base.py", "surgery/passes/noise.py"),
        "targets": [str(target)],
        "uptodate": [config_changed(run_slice)],
        "clean": [remove_targets],
    }


def _stage_tasks(config, stage_name, stage, out, weights, calibration: Path | None) -> Iterator[dict]:
    yield {"basename": stage_name, "name": None, "doc": f"build every shape of stage {stage_name}"}
    passes = stage.passes()
    voice = config.model.voices[0]
    not_ours = G2P_ONLY if stage.kind != "g2p" else ()
    if stage.kind == "g2p":  # its own model, which takes no voice
        yield from _g2p_source_tasks(stage_name, stage, out)
        weights, voice = g2p_checkpoint(out), None
    all_paths = _stage_paths(out, stage_name, stage, "executorch" in config.stage_targets(stage_name))
    convert_slice = {"precision": config.stage_precision(stage_name),
                     "compute_units": config.stage_compute_units(stage_name),
                     "deployment": config.target.deployment}
    for paths in all_paths:
        label, sizes, traced = paths.point.label, paths.point.sizes, paths.traced
        export_slice = {"kind": stage.kind, "sizes": sizes, "flexible": paths.point.flexible,
                        "passes": passes, "voice": voice, "options": stage.kind_options}
        yield _cached({
            "basename": stage_name, "name": f"{label}.export",
            "doc": f"surgery + trace {stage_name} at {label}",
            "actions": [(_action("kokoro_build.targets.coreml.export:export_stage", isolated=True),
                         [str(weights), stage.kind, sizes, passes, voice, str(traced), paths.point.flexible,
                          stage.kind_options])],
            "file_dep": [str(digest_path(weights))] + code_files(*EXPORT_CODE, exclude=not_ours),
            "targets": [str(traced), str(digest_path(traced))],
            "uptodate": [config_changed(export_slice)],
            "clean": [remove_targets],
        }, out, "export", export_slice)
        yield _cached({
            "basename": stage_name, "name": f"{label}.convert",
            "doc": f"ct.convert {stage_name} at {label} -> {paths.converted.relative_to(out)}",
            "actions": [(_action("kokoro_build.targets.coreml.convert:convert_stage"),
                         [str(traced), convert_slice["precision"], convert_slice["compute_units"],
                          convert_slice["deployment"], str(paths.converted), str(report_path(paths.converted))])],
            "file_dep": [str(digest_path(traced))] + code_files(*CONVERT_CODE),
            "targets": [str(paths.converted), str(report_path(paths.converted)), str(digest_path(paths.converted))],
            "uptodate": [config_changed(convert_slice)],
            "clean": [remove_targets],
        }, out, "convert", convert_slice)
        if stage.compress:
            yield _compress_task(stage_name, stage, paths, out, calibration)
        verify_slice = {"precision": convert_slice["precision"],
                        "thresholds": config.stage_thresholds(stage_name),
                        "analyzer": config.verify.ane.analyzer, "run": export_slice,
                        "function": paths.function}
        yield {
            "basename": stage_name, "name": f"{label}.verify",
            "doc": f"run {paths.package.relative_to(out)}{'' if paths.function is None else ':' + label}"
                   " with the MIL evaluator against its twin",
            "actions": [(_action("kokoro_build.verify.task:verify_artifact"),
                         [str(weights), stage.kind, sizes, passes, voice, paths.point.flexible,
                          stage.kind_options, str(traced), str(paths.package), convert_slice["precision"],
                          convert_slice["compute_units"], verify_slice["thresholds"],
                          verify_slice["analyzer"], str(paths.verified), paths.function, str(paths.report)])],
            "file_dep": [str(digest_path(paths.package)), str(paths.report), str(digest_path(traced)),
                         str(digest_path(weights))] + code_files(*VERIFY_CODE, exclude=not_ours),
            "targets": [str(paths.verified)],
            "uptodate": [config_changed(verify_slice)],
            "clean": [remove_targets],
        }
        if paths.program is not None:
            yield from _executorch_tasks(config, stage_name, stage, paths, out, weights, export_slice, not_ours)
    if stage.packaging == "multifunction":
        yield _merge_task(stage_name, all_paths, out)


def _executorch_tasks(config, stage_name: str, stage: StageConfig, paths: ArtifactPaths, out: Path,
                      weights: Path, export_slice: dict, not_ours: tuple[str, ...]) -> Iterator[dict]:
    """The shape's ExecuTorch program (the Core ML export's module, through torch.export)
    and its check against the traced twin in the ExecuTorch runtime."""
    label, program = paths.point.label, paths.program
    lower_slice = {**export_slice, "export": stage.executorch.export}
    yield _cached({
        "basename": stage_name, "name": f"{label}.pte",
        "doc": f"torch.export + XNNPACK {stage_name} at {label} -> {program.relative_to(out)}",
        "actions": [(_action("kokoro_build.targets.executorch.lower:lower_stage", isolated=True),
                     [str(weights), stage.kind, paths.point.sizes, export_slice["passes"], export_slice["voice"],
                      paths.point.flexible, stage.kind_options, stage.executorch.export, str(program),
                      str(paths.program_report)])],
        "file_dep": [str(digest_path(weights))] + code_files(*EXECUTORCH_CODE, exclude=not_ours),
        "targets": [str(program), str(paths.program_report), str(digest_path(program))],
        "uptodate": [config_changed(lower_slice)],
        "clean": [remove_targets],
    }, out, "executorch", lower_slice)
    verify_slice = {"run": lower_slice, "thresholds": config.executorch_thresholds(stage_name)}
    yield {
        "basename": stage_name, "name": f"{label}.pte_verify",
        "doc": f"run {program.relative_to(out)} with the ExecuTorch runtime against its twin",
        "actions": [(_action("kokoro_build.targets.executorch.verify:verify_program"),
                     [str(weights), stage.kind, paths.point.sizes, export_slice["passes"], export_slice["voice"],
                      paths.point.flexible, stage.kind_options, str(paths.traced), str(program),
                      str(paths.program_report), verify_slice["thresholds"], str(paths.program_verified)])],
        "file_dep": [str(digest_path(program)), str(paths.program_report), str(digest_path(paths.traced)),
                     str(digest_path(weights))] + code_files(*PROGRAM_VERIFY_CODE, exclude=not_ours),
        "targets": [str(paths.program_verified)],
        "uptodate": [config_changed(verify_slice)],
        "clean": [remove_targets],
    }


def _compress_task(stage_name: str, stage: StageConfig, paths: ArtifactPaths, out: Path,
                   calibration: Path | None) -> dict:
    block = stage.compress.model_dump(mode="json")
    ranges, extra_deps = None, []
    if stage.compress.activations is not None:  # A8: the calibrated ranges of this package
        ranges = (str(calibration), str(paths.converted.relative_to(out)))
        extra_deps = [str(calibration), *code_files("calibrate.py", "verify/mil_eval.py")]
    return {
        "basename": stage_name, "name": f"{paths.point.label}.compress",
        "doc": f"compress {stage_name} at {paths.point.label} -> {paths.bucket.relative_to(out)}",
        "actions": [(_action("kokoro_build.targets.coreml.compress:compress_stage"),
                     [str(paths.converted), str(report_path(paths.converted)), block, str(paths.bucket),
                      str(paths.report), ranges])],
        "file_dep": [str(digest_path(paths.converted))] + extra_deps +
                    code_files("compress.py", "compress_schema.py", "convert.py", "reproducible.py"),
        "targets": [str(paths.bucket), str(paths.report), str(digest_path(paths.bucket))],
        "uptodate": [config_changed(block)],
        "clean": [remove_targets],
    }


def _merge_task(stage_name: str, all_paths: list[ArtifactPaths], out: Path) -> dict:
    """One package from the stage's converted buckets, a function each; the largest
    bucket is the default function (as `enumerated` defaults to the largest size)."""
    functions = {paths.function: str(paths.bucket) for paths in all_paths}
    default = all_paths[-1].function
    package = all_paths[0].package
    return {
        "basename": stage_name, "name": "merge",
        "doc": f"merge {len(functions)} buckets into {package.relative_to(out)} (multifunction)",
        "actions": [(_action("kokoro_build.targets.coreml.multifunction:merge_functions"), [functions, default, str(package)])],
        "file_dep": [str(digest_path(p)) for p in functions.values()] + code_files("multifunction.py", "reproducible.py"),
        "targets": [str(package), str(digest_path(package))],
        "uptodate": [config_changed({"functions": list(functions), "default": default})],
        "clean": [remove_targets],
    }


def _action(target: str, cache: dict | None = None, isolated: bool = False):
    """A doit python-action that imports its (heavy) module only when it runs;
    with `cache` ({root, step, slice, inputs, targets}), through cache.run_cached;
    `isolated`: in a fresh child process (isolated.py: traces must not see each other).
    A failed write (full disk, read-only) or a BuildError (bad input, errors.py) is a
    one-paragraph failure, not a traceback."""
    module_name, func_name = target.split(":")

    def run(*args):
        import importlib

        from kokoro_build.store.memory import map_large_buffers
        map_large_buffers()  # before the first big tensor: see memory.py
        func = getattr(importlib.import_module(module_name), func_name)
        step = func
        if isolated:
            from kokoro_build.store.isolated import run_isolated
            step = lambda *a: run_isolated(func, *a)  # noqa: E731
        try:
            if cache is None:
                step(*args)
                return
            from kokoro_build.store.cache import run_cached
            run_cached(cache["root"], cache["step"], cache["slice"], cache["inputs"], cache["targets"],
                       lambda: step(*args))
        except BuildError as error:
            return TaskFailed(str(error))
        except Exception as error:
            failed = write_error(error)
            if failed is None:
                raise
            return TaskFailed(write_failure(failed))
    run.__name__ = func_name
    run.__module_target__ = target
    run.__isolated__ = isolated
    return run


def write_failure(error: OSError) -> str:
    return (f"could not write {error.filename or 'an output'}: {error.strerror} "
            f"[errno {errno.errorcode.get(error.errno, error.errno)}].\n"
            "Every artifact is written beside its place and renamed in only when complete, so "
            "nothing half-written was published: what was there before is still there, and an "
            "artifact that no longer matches its digest is rebuilt. Free some space (or make "
            "the folder writable) and run doit again.")


def _cached(task: dict, out: Path, step: str, config_slice) -> dict:
    """The task with its action going through the cross-variant step cache (cache.py),
    keyed by `config_slice` and the task's file_dep."""
    from kokoro_build.store.cache import cache_root
    target, args = task["actions"][0]
    cache = {"root": str(cache_root(out.parent)), "step": step, "slice": config_slice,
             "inputs": list(task["file_dep"]), "targets": list(task["targets"])}
    return {**task, "actions": [(_action(target.__module_target__, cache, target.__isolated__), args)]}
