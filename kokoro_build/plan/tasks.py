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
With `packaging: materialized`, the stage is traced once (at its largest bucket, padded
and masked) and converted once with a range over its buckets (`<stage>:<dim>_buckets.*`
in `_work/<stage>/source/`), compressed there, then
  <stage>:materialize          a fixed-shape function per bucket -> <stage>/<stage>.mlpackage
and each function is verified as a multifunction stage's are.
With `compress: {activations: ...}` (A8) on some stage, one
  calibration               the chain speaks calibration.texts through every stage's
                            converted package (MIL evaluator) -> _work/calibration.json
feeds those stages' compress steps. With `mode: sensitive_kmeans` palettes on some stage, one
  sensitivity               the chain speaks SENSITIVITY_TEXTS through the fp32 twins; the
                            gradients of those stages' twins -> _work/sensitivity.npz
feeds those stages' compress steps.
With `targets: [coreml, executorch]`, each shape also gets
  <stage>:<shape>.pte          torch.export + XNNPACK -> executorch/<stage>_<shape>.pte (+ digest, report)
  <stage>:<shape>.pte_verify   ExecuTorch runtime vs torch twin -> executorch/<stage>_<shape>.verify.json
All of it is fed by one `weights` task.

Every step of an artifact is given one value, its StageRun (schema/run.py) cut to the
fields the step reads; that value is also the task's `config_changed` slice. Each
task's code `file_dep` is the import graph of the module its action runs (code_deps.py).
The weights, export, convert and lower steps go through a cache shared by every
variant in the same `artifacts/` (store/cache.py): another recipe with the same
inputs links their outputs instead of redoing them.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Iterator

from doit.tools import config_changed

from kokoro_build.plan.actions import action
from kokoro_build.plan.code_deps import code_files
from kokoro_build.plan.paths import (artifacts_dir, calibration_path, g2p_checkpoint, lexicon_path,  # noqa: F401
                                     manifest_entry, materialized_source, recipe_path, runtime_files,
                                     sensitivity_path, stage_paths, weights_path)
from kokoro_build.schema.config import PipelineConfig, StageConfig
from kokoro_build.schema.texts import SENSITIVITY_TEXTS
from kokoro_build.schema.kinds import kind_row
from kokoro_build.schema.run import StageRun
from kokoro_build.store.package import DIGEST_SUFFIX, digest_path, outputs_intact, remove_targets

LOCK_FILES = [Path(__file__).resolve().parents[2] / "requirements" / n for n in ("lock.txt", "nodeps.txt")]
RUNNER = "kokoro_build.plan.actions"


@lru_cache(maxsize=None)
def step_code(target: str, kind: str | None = None) -> tuple[str, ...]:
    """What a step runs: its action's module, the stage kind's module (imported by name
    from the kind table, so invisible to the import graph), and the runner, with all
    they import; plus the dependency pins."""
    modules = [target.partition(":")[0], RUNNER] + ([kind_row(kind).module] if kind else [])
    return (*code_files(*modules), *(str(p) for p in LOCK_FILES if p.exists()))


def generate_tasks(config: PipelineConfig, config_path: str | Path) -> Iterator[dict]:
    """Every task; one whose targets include a digest is also stale when an output no
    longer matches that digest (edited, truncated, deleted: package.outputs_intact)."""
    remote = config.cache.model_dump(mode="json") if config.cache else None
    for task in _pipeline_tasks(config, config_path):
        if any(str(t).endswith(DIGEST_SUFFIX) for t in task.get("targets", [])):
            task = {**task, "uptodate": [*task.get("uptodate", []), outputs_intact]}
        if remote:
            task = _with_remote_cache(task, remote)
        yield task


def _with_remote_cache(task: dict, remote: dict) -> dict:
    """A cached step's task reading and writing the remote cache too (store/remote.py).
    Not part of any config slice: where the cache is never changes what a step makes."""
    if not task.get("actions") or not getattr(task["actions"][0][0], "__cache__", None):
        return task
    (run, args), *rest = task["actions"]
    cached = action(run.__module_target__, {**run.__cache__, "remote": remote}, run.__isolated__)
    return {**task, "actions": [(cached, args), *rest]}


def _task(target: str, args: list, *, kind: str | None = None, file_dep: list[str] = (), **task) -> dict:
    """A task running `target` on `args`; its file_dep is `file_dep` plus the step's code."""
    return {"actions": [(action(target, isolated=task.pop("isolated", False)), args)],
            "file_dep": [*file_dep, *step_code(target, kind)], "clean": [remove_targets], **task}


def _pipeline_tasks(config: PipelineConfig, config_path: str | Path) -> Iterator[dict]:
    out = artifacts_dir(config, config_path)
    weights = weights_path(out)
    model_slice = config.model.model_dump(mode="json")
    yield _cached(_task(
        "kokoro_build.model.source.weights:build_weights", [model_slice, str(weights)],
        basename="weights",
        doc=f"Kokoro weights from source {config.model.source.kind} -> {weights.relative_to(out)}",
        targets=[str(weights), str(digest_path(weights))],
        uptodate=[config_changed(model_slice)]), out, "weights", model_slice)
    runtime = runtime_files(out, config.model.voices)
    runtime_targets = [runtime["config"], runtime["vocab"], *runtime["voices"].values()]
    yield _task(
        "kokoro_build.model.source.weights:write_runtime_files", [str(weights), runtime],
        basename="runtime", doc="the Kokoro config, vocab and voice packs as small files (what the chain reads)",
        file_dep=[str(digest_path(weights))], targets=runtime_targets,
        uptodate=[config_changed({"voices": config.model.voices})])
    manifest_stages = {}
    calibration = calibration_path(out) if config.activation_stages else None
    for stage_name, stage in config.stages.items():
        if not stage.builds_artifacts:  # the chain does this step on the host
            manifest_stages[stage_name] = {"kind": stage.kind, "where": "host", "artifacts": []}
            continue
        runs = stage_runs(config, stage_name, out, calibration)
        source = source_run(config, stage_name, out, calibration) if stage.packaging == "materialized" else None
        yield from _stage_tasks(stage_name, stage, runs, out, source)
        manifest_stages[stage_name] = {
            "kind": stage.kind, "options": stage.kind_options, "packaging": stage.packaging,
            "artifacts": [manifest_entry(run.point, run.paths, run.function) for run in runs]}
        if stage.kind == "g2p":
            manifest_stages[stage_name].update(lexicon=str(lexicon_path(out, stage_name)),
                                               checkpoint=str(g2p_checkpoint(out)))
    if calibration is not None:
        yield _calibration_task(config, out, calibration)
    if config.sensitive_stages:
        yield _sensitivity_task(config, out)
    manifest = out / "manifest.json"
    # where the step cache lives changes no artifact: two machines with different caches
    # make the same manifest (and release)
    config_dump = config.model_dump(mode="json", exclude={"cache"})
    artifacts = [a for s in manifest_stages.values() for a in s["artifacts"]]
    packages = sorted({a["package"] for a in artifacts})
    programs = [a["executorch"] for a in artifacts if "executorch" in a]
    plan = {"name": config.name, "out": str(out), "weights": str(weights), "runtime": runtime,
            "stages": manifest_stages, "config": config_dump}
    yield _task(
        "kokoro_build.store.manifest:write_manifest", [plan, str(manifest)],
        basename="manifest", doc="manifest.json: every artifact with its I/O and digest (what the chain reads)",
        file_dep=[str(digest_path(weights)), *runtime_targets] + [str(digest_path(p)) for p in packages] +
                 [a["verify"] for a in artifacts] +
                 [f for p in programs for f in (str(digest_path(p["program"])), p["verify"])] +
                 [str(digest_path(s[key])) for s in manifest_stages.values()
                  for key in ("lexicon", "checkpoint") if key in s],
        targets=[str(manifest)],
        uptodate=[config_changed({"stages": manifest_stages, "config": config_dump, "runtime": runtime})])
    audio_gates = config.verify.audio.model_dump()
    intelligibility = config.verify.intelligibility.model_dump()
    sentences = [config.verify.intelligibility.sentence_file] if intelligibility["enabled"] else []
    yield _task(
        "kokoro_build.report.variant:write_variant_report",
        [str(out), config.model.voices[0], str(out / "report.md"), str(out / "report.html"), audio_gates,
         intelligibility],
        basename="report",
        doc="report.md + report.html: parity, ANE verdicts, one sentence through the chain "
            "(PESQ, MCD and log-mel correlation gated by verify.audio), and the word error rate "
            "when verify.intelligibility is enabled",
        file_dep=[str(manifest), *sentences], targets=[str(out / "report.md"), str(out / "report.html")],
        uptodate=[config_changed({"voice": config.model.voices[0], "audio": audio_gates,
                                  "intelligibility": intelligibility})])


def stage_runs(config: PipelineConfig, stage_name: str, out: Path, calibration: Path | None) -> list[StageRun]:
    """One StageRun per artifact of the stage: everything its steps read."""
    stage = config.stages[stage_name]
    executorch = "executorch" in config.stage_targets(stage_name)
    return [_stage_run(config, stage_name, out, point, paths, calibration, point.label if stage.merged else None)
            for point, paths in stage_paths(out, stage_name, stage, _weights(config, stage_name, out), executorch)]


def source_run(config: PipelineConfig, stage_name: str, out: Path, calibration: Path | None) -> StageRun:
    """A materialized stage's one trace, conversion and compression (plan/paths.py)."""
    point, paths = materialized_source(out, stage_name, config.stages[stage_name],
                                       _weights(config, stage_name, out))
    return _stage_run(config, stage_name, out, point, paths, calibration, None)


def _weights(config: PipelineConfig, stage_name: str, out: Path) -> Path:
    # the g2p kind: its own model, which takes no voice
    return weights_path(out) if kind_row(config.stages[stage_name].kind).takes_voice else g2p_checkpoint(out)


def _stage_run(config: PipelineConfig, stage_name: str, out: Path, point, paths, calibration: Path | None,
               function: str | None) -> StageRun:
    stage = config.stages[stage_name]
    executorch = "executorch" in config.stage_targets(stage_name)
    if stage.compress is not None and stage.compress.activations is not None:
        paths = paths.model_copy(update={"calibration": str(calibration),
                                         "calibration_key": str(Path(paths.converted).relative_to(out))})
    if stage_name in config.sensitive_stages:
        paths = paths.model_copy(update={"sensitivity": str(sensitivity_path(out))})
    return StageRun(
        stage=stage_name, paths=paths, kind=stage.kind, sizes=point.sizes, flexible=point.flexible,
        passes=stage.passes(), voice=config.model.voices[0] if kind_row(stage.kind).takes_voice else None,
        options=stage.kind_options, precision=config.stage_precision(stage_name),
        compute_units=config.stage_compute_units(stage_name), deployment=config.target.deployment,
        compress=stage.compress.model_dump(mode="json") if stage.compress else None,
        thresholds=config.stage_thresholds(stage_name), analyzer=config.verify.ane.analyzer,
        lint_fail_on=config.verify.lint.fail_on, function=function,
        executorch_export=stage.executorch.export if executorch else None,
        executorch_thresholds=config.executorch_thresholds(stage_name) if executorch else None)


def _step(run: StageRun, step: str, target: str, uses_module: bool, **task) -> dict:
    """The task of one step of one artifact: its action gets `run` cut to the step, and
    the same value is its config slice."""
    cut = run.for_step(step)
    return _task(target, [cut], kind=run.kind if uses_module else None, basename=run.stage,
                 uptodate=[config_changed(run.step_slice(step))], **task)


def _stage_tasks(stage_name: str, stage: StageConfig, runs: list[StageRun], out: Path,
                 source: StageRun | None = None) -> Iterator[dict]:
    """A stage's tasks; `source`: a materialized stage's one conversion, which its
    function runs (`runs`) are verified from."""
    yield {"basename": stage_name, "name": None, "doc": f"build every shape of stage {stage_name}"}
    if stage.kind == "g2p":
        yield from _g2p_source_tasks(stage_name, stage, out)
    if source:
        yield from _build_tasks(stage_name, stage, source, out)
        yield _materialize_task(stage_name, source, runs, out)
    for run in runs:  # (doit runs tasks in this order: each bucket's build, then its check)
        if not source:
            yield from _build_tasks(stage_name, stage, run, out)
        label, paths = run.point.label, run.paths
        weights_digest = str(digest_path(paths.weights))
        yield _step(
            run, "verify", "kokoro_build.verify.task:verify_artifact", True, name=f"{label}.verify",
            doc=f"run {Path(paths.package).relative_to(out)}{'' if run.function is None else ':' + label}"
                " with the MIL evaluator against its twin",
            file_dep=[str(digest_path(paths.package)), paths.report, str(digest_path(paths.traced)), weights_digest],
            targets=[paths.verified, paths.golden])
        if paths.program is not None:
            yield _cached(_step(
                run, "lower", "kokoro_build.targets.executorch.lower:lower_stage", True, isolated=True,
                name=f"{label}.pte",
                doc=f"torch.export + XNNPACK {stage_name} at {label} -> {Path(paths.program).relative_to(out)}",
                file_dep=[weights_digest],
                targets=[paths.program, paths.program_report, str(digest_path(paths.program))]),
                out, "executorch", run.step_slice("lower"))
            yield _step(
                run, "program_verify", "kokoro_build.targets.executorch.verify:verify_program", True,
                name=f"{label}.pte_verify",
                doc=f"run {Path(paths.program).relative_to(out)} with the ExecuTorch runtime against its twin",
                file_dep=[str(digest_path(paths.program)), paths.program_report, str(digest_path(paths.traced)),
                          weights_digest],
                targets=[paths.program_verified])
    if stage.packaging == "multifunction":
        yield _merge_task(stage_name, runs, out)


def _build_tasks(stage_name: str, stage: StageConfig, run: StageRun, out: Path) -> Iterator[dict]:
    """Trace, convert and (with `compress:`) compress one artifact."""
    label, paths = run.point.label, run.paths
    yield _cached(_step(
        run, "export", "kokoro_build.targets.coreml.export:export_stage", True, isolated=True,
        name=f"{label}.export", doc=f"surgery + trace {stage_name} at {label}",
        file_dep=[str(digest_path(paths.weights))], targets=[paths.traced, str(digest_path(paths.traced))]),
        out, "export", run.step_slice("export"))
    yield _cached(_step(
        run, "convert", "kokoro_build.targets.coreml.convert:convert_stage", False,
        name=f"{label}.convert",
        doc=f"ct.convert {stage_name} at {label} -> {Path(paths.converted).relative_to(out)}",
        file_dep=[str(digest_path(paths.traced))],
        targets=[paths.converted, paths.converted_report, str(digest_path(paths.converted))]),
        out, "convert", run.step_slice("convert"))
    if stage.compress:
        yield _cached(_step(
            run, "compress", "kokoro_build.targets.coreml.compress:compress_stage", False,
            name=f"{label}.compress",
            doc=f"compress {stage_name} at {label} -> {Path(paths.bucket).relative_to(out)}",
            file_dep=[str(digest_path(paths.converted))] +
                     [path for path in (paths.calibration, paths.sensitivity) if path],
            targets=[paths.bucket, paths.report, str(digest_path(paths.bucket))]),
            out, "compress", run.step_slice("compress"))


def _g2p_source_tasks(stage_name: str, stage: StageConfig, out: Path) -> Iterator[dict]:
    """A g2p stage's own inputs: g2p-en's checkpoint (its model's weights) and the lexicon."""
    from kokoro_build.model.source.g2p_en import checkpoint_path  # importlib.metadata only
    from kokoro_build.model.source.lexicon import lexicon_sources

    checkpoint = g2p_checkpoint(out)
    yield _task(
        "kokoro_build.model.source.g2p_en:build_checkpoint", [str(checkpoint)],
        basename=stage_name, name="checkpoint",
        doc=f"g2p-en's checkpoint20.npz (sha256-checked) -> {checkpoint.relative_to(out)}",
        file_dep=[str(checkpoint_path())], targets=[str(checkpoint), str(digest_path(checkpoint))])
    lexicon, lexicon_slice = lexicon_path(out, stage_name), stage.lexicon_slice
    yield _task(
        "kokoro_build.model.source.lexicon:build_lexicon", [lexicon_slice, str(lexicon)],
        basename=stage_name, name="lexicon",
        doc=f"misaki {lexicon_slice['dialect']} {'+'.join(lexicon_slice['tiers'])} -> "
            f"{lexicon.relative_to(out)} (sorted word<TAB>phonemes lines)",
        file_dep=[str(p) for p in lexicon_sources(**lexicon_slice)],
        targets=[str(lexicon), str(digest_path(lexicon))], uptodate=[config_changed(lexicon_slice)])


def converted_stages(config: PipelineConfig, out: Path, calibration: Path | None = None) -> dict:
    """Every stage but G2P over its converted (not yet compressed) packages, as
    calibration_manifest takes them: what calibration and tune run the chain on."""
    stages = {}
    for stage_name, stage in config.stages.items():
        if stage.kind == "g2p":
            continue
        runs = stage_runs(config, stage_name, out, calibration) if stage.builds_artifacts else []
        # a materialized stage's one conversion serves each bucket (calibrate.py fixes its I/O)
        source = source_run(config, stage_name, out, calibration) if stage.packaging == "materialized" else None
        stages[stage_name] = {"kind": stage.kind, "artifacts": [
            {"sizes": run.sizes, "package": run.paths.converted, "traced": run.paths.traced,
             "report": (source or run).paths.converted_report,
             "task": f"{stage_name}:{(source or run).point.label}.convert"}
            for run in runs]}
    return stages


def _calibration_task(config: PipelineConfig, out: Path, target: Path) -> dict:
    """The chain over every stage's converted package (G2P aside: the chain's text
    goes through misaki), recording activation ranges for the A8 stages."""
    stages = converted_stages(config, out, target)
    required = [a["package"] for name in config.activation_stages for a in stages[name]["artifacts"]]
    run_slice = {"texts": config.calibration.chosen_texts, "voice": config.calibration_voice}
    plan, file_dep = _chain_inputs(config, out, stages)
    return _task(
        "kokoro_build.targets.coreml.calibrate:calibrate", [{**plan, **run_slice, "required": required}, str(target)],
        basename="calibration",
        doc=f"W8A8: speak {len(run_slice['texts'])} calibration texts through the converted "
            f"packages -> {target.relative_to(out)} (activation ranges)",
        file_dep=file_dep, targets=[str(target)], uptodate=[config_changed(run_slice)])


def _sensitivity_task(config: PipelineConfig, out: Path) -> dict:
    """The chain over every stage's fp32 twin (over the converted packages' manifest),
    then the sensitive stages' gradients (tune/sensitivity.py)."""
    target = sensitivity_path(out)
    stages = converted_stages(config, out)
    run_slice = {"texts": list(SENSITIVITY_TEXTS), "voice": config.calibration_voice,
                 "sensitive": config.sensitive_stages}
    plan, file_dep = _chain_inputs(config, out, stages)
    twins = sorted({str(digest_path(a["traced"])) for s in stages.values() for a in s["artifacts"]})
    return _task(
        "kokoro_build.tune.sensitivity:measure_sensitivities", [{**plan, **run_slice}, str(target)],
        basename="sensitivity",
        doc=f"sensitive palettes: gradients of {', '.join(config.sensitive_stages)} on "
            f"{len(run_slice['texts'])} texts -> {target.relative_to(out)}",
        file_dep=file_dep + twins, targets=[str(target)], uptodate=[config_changed(run_slice)])


def _chain_inputs(config: PipelineConfig, out: Path, stages: dict) -> tuple[dict, list[str]]:
    """What a task speaking through the converted packages' manifest (calibrate.py's
    calibration_manifest) is given, and the files it reads: the runtime files, every
    converted package and its report."""
    runtime = runtime_files(out, config.model.voices)
    artifacts = [a for s in stages.values() for a in s["artifacts"]]
    converted = sorted({str(digest_path(a["package"])) for a in artifacts} | {a["report"] for a in artifacts})
    plan = {"name": config.name, "out": str(out), "runtime": runtime, "stages": stages}
    return plan, [runtime["config"], runtime["vocab"], *runtime["voices"].values(), *converted]


def _merge_task(stage_name: str, runs: list[StageRun], out: Path) -> dict:
    """One package from the stage's converted buckets, a function each; the largest
    bucket is the default function (as `enumerated` defaults to the largest size)."""
    functions = {run.function: run.paths.bucket for run in runs}
    default = runs[-1].function
    package = runs[0].paths.package
    return _task(
        "kokoro_build.targets.coreml.multifunction:merge_functions", [functions, default, package],
        basename=stage_name, name="merge",
        doc=f"merge {len(functions)} buckets into {Path(package).relative_to(out)} (multifunction)",
        file_dep=[str(digest_path(p)) for p in functions.values()],
        targets=[package, str(digest_path(package))],
        uptodate=[config_changed({"functions": list(functions), "default": default})])


def _materialize_task(stage_name: str, source: StageRun, runs: list[StageRun], out: Path) -> dict:
    """The stage's package from its one conversion: a fixed-shape function per bucket,
    the largest bucket the default; and each function's report (its fixed I/O)."""
    functions = {run.function: run.sizes for run in runs}
    reports = {run.function: run.paths.report for run in runs}
    package = runs[0].paths.package
    plan = {"source": source.paths.bucket, "traced": source.paths.traced, "functions": functions,
            "default": runs[-1].function, "reports": reports}
    return _cached(_task(
        "kokoro_build.targets.coreml.materialize:materialize_functions", [plan, package],
        basename=stage_name, name="materialize",
        doc=f"materialize {len(functions)} fixed-shape functions of {Path(source.paths.bucket).relative_to(out)} "
            f"into {Path(package).relative_to(out)}",
        file_dep=[str(digest_path(source.paths.bucket)), str(digest_path(source.paths.traced))],
        targets=[*reports.values(), package, str(digest_path(package))],
        uptodate=[config_changed({"functions": functions, "default": runs[-1].function})]),
        out, "materialize", {"functions": functions, "default": runs[-1].function})


def _cached(task: dict, out: Path, step: str, config_slice) -> dict:
    """The task with its action going through the cross-variant step cache
    (store/cache.py), keyed by `config_slice` and the task's file_dep."""
    from kokoro_build.store.cache import cache_root
    target, args = task["actions"][0]
    cache = {"root": str(cache_root(out.parent)), "step": step, "slice": config_slice,
             "inputs": list(task["file_dep"]), "targets": list(task["targets"])}
    return {**task, "actions": [(action(target.__module_target__, cache, target.__isolated__), args)]}
