"""`kokoro-build tune`: measure, allocate, write the recipe, verify it, plot.

1. build the base's converted packages (doit), 2. capture each tuned stage's inputs
and fp32 outputs (capture.py), 3. run every (weight, setting) trial not in the cache
(trials.py) on an executor (scale/executors.py), 4. allocate for the budget (allocate.py),
5. write the overlay (recipe.py), 6. build it through its report and put its measured
speech beside the prediction (report/pareto.py).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from kokoro_build.tune.allocate import Option, allocate, uncompressed
from kokoro_build.tune.cost import added_cost, cost
from kokoro_build.tune.trials import Probe, Trial, TrialCache, run_trial

DEFAULT_MIN_WEIGHT_ELEMENTS = 2048  # compress_schema.CompressConfig's default
# what one trial takes on a Ray node (--executor ray): a core, and its package and captures
TRIAL_RESOURCES = {"num_cpus": 1, "memory": int(1.5 * 2**30)}


class TuneError(ValueError):
    pass


@dataclass(frozen=True)
class TuneRequest:
    config_path: str
    stages: tuple[str, ...]
    budget_mb: float
    recipe: str | None = None          # where to write the overlay (default: tuned-<budget>.yaml beside the base)
    executor: str = "local"
    workers: int | None = None
    ray_address: str | None = None      # --executor ray: "auto", a cluster address, or "local"
    allow: frozenset[str] = frozenset()  # settings (labels or lint rule ids) the lint flags
    exclude: frozenset[str] = frozenset()  # setting labels not to try
    texts: tuple[str, ...] = ()
    verify: bool = True
    min_weight_elements: int | None = None  # default: each stage's compress block's, else 2048


@dataclass
class StageTrials:
    probe: Probe
    weights: list                       # TunableWeight
    fixed_bytes: int                    # the package's bytes that no setting changes
    results: dict = field(default_factory=dict)  # (weight, label) -> TrialResult


def tune(request: TuneRequest, log=print) -> dict:
    import coremltools

    from kokoro_build.plan.invoke import run_doit
    from kokoro_build.plan.paths import artifacts_dir, runtime_files
    from kokoro_build.plan.tasks import converted_stages
    from kokoro_build.schema.config import load_config
    from kokoro_build.targets.coreml.calibrate import calibration_manifest
    from kokoro_build.tune.capture import capture
    from kokoro_build.scale.executors import make_executor
    from kokoro_build.tune.settings import candidate_settings, is_sensitive

    started = time.time()
    executor = make_executor(request.executor, request.workers, request.ray_address, TRIAL_RESOURCES)
    config = load_config(request.config_path)
    _check_stages(config, request.stages)
    _check_excluded(config, request.exclude)
    out = artifacts_dir(config, request.config_path)
    stages = converted_stages(config, out)
    log(f"tune: building {config.name}'s converted packages")
    # a materialized stage's buckets share one conversion task; doit runs a task named twice only once
    # but then skips the names after it, so each is named once
    convert_tasks = dict.fromkeys(a["task"] for s in stages.values() for a in s["artifacts"])
    run_doit(request.config_path, ["weights", "runtime", *convert_tasks], log=lambda line: None)
    manifest = calibration_manifest(config.name, out, runtime_files(out, config.model.voices), stages)
    tune_dir = out / "tune"
    texts = list(request.texts or config.tune_texts)
    log(f"tune: capturing {', '.join(request.stages)} on {len(texts)} texts (fp32 twins)")
    try:
        captured = capture(out, manifest, list(request.stages), texts, config.calibration_voice, tune_dir)
    except ValueError as error:
        raise TuneError(str(error)) from None
    cache = TrialCache(out.parent / ".cache" / "tune")
    version = coremltools.__version__
    per_stage, trials, left_out, speed, settings = {}, [], {}, {}, {}
    for stage in request.stages:
        chosen, skipped = candidate_settings(config.target.deployment, config.stage_compute_units(stage),
                                             version, request.allow)
        settings[stage] = {label: method for label, method in chosen.items() if label not in request.exclude}
        left_out.update(skipped)
    sensitivities = None
    if any(is_sensitive(m) for chosen in settings.values() for m in chosen.values()):
        # what the build's sensitivity task measures (the same texts and voice), so a
        # sensitive trial measures the palette the compress step will write, on other inputs
        sensitivities = _sensitivities(config, out, manifest, stages, request.stages, tune_dir, log)
    for stage in request.stages:
        found = captured[stage]
        package, function, count = found.package, found.function, found.count
        per_stage[stage] = _stage_trials(config, out, stage, found, request.min_weight_elements, sensitivities)
        speed[stage] = _evaluator_speed(per_stage[stage].probe, found.twin_seconds)
        log(f"tune: {stage}: {len(per_stage[stage].weights)} weights, {len(settings[stage])} settings, "
            f"{count} captures of {package}{'' if function == 'main' else ':' + function}")
        trials += _pending(per_stage[stage], settings[stage], cache)
    for label, rule in sorted(left_out.items()):
        log(f"tune: left out {label}: the device-risk lint flags it ({rule}); --allow {label} to try it")
    _run_trials(trials, per_stage, cache, executor, log)
    measured = time.time() - started
    allocation = _allocate(per_stage, request.budget_mb)
    summary = _write_outputs(request, config, out, tune_dir, per_stage, allocation, log)
    summary["evaluator_seconds_vs_twin"] = speed
    summary["seconds"] = {"measure": round(measured, 1), "total": round(time.time() - started, 1)}
    from kokoro_build.store.package import write_json
    write_json(tune_dir / f"{Path(summary['recipe']).stem}.json", summary)
    return summary


def _sensitivities(config, out: Path, manifest, stages: dict, tuned: tuple[str, ...], tune_dir: Path, log) -> Path:
    """The tuned stages' sensitivities (tune/sensitivity.py), on the texts the build's
    sensitivity task speaks (schema/texts.py: not the trials' texts), measured again
    only when what they come from changed: the twins, the texts, the voice or the code."""
    import hashlib

    import numpy as np

    from kokoro_build.plan.code_deps import code_files
    from kokoro_build.schema.texts import SENSITIVITY_TEXTS
    from kokoro_build.store.package import digest_path, file_sha256
    from kokoro_build.tune.sensitivity import measure
    traced = sorted({a["traced"] for s in stages.values() for a in s["artifacts"]})
    material = {"stages": list(tuned), "texts": list(SENSITIVITY_TEXTS), "voice": config.calibration_voice,
                "twins": [file_sha256(digest_path(path)) for path in traced],
                "code": [file_sha256(path) for path in code_files("kokoro_build.tune.sensitivity")]}
    key = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()
    path = tune_dir / "sensitivity.npz"
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) == key:
                log(f"tune: sensitivities of {', '.join(tuned)} unchanged ({path.name})")
                return path
    except (OSError, KeyError, ValueError):
        pass  # none yet, or unreadable: measure
    log(f"tune: measuring sensitivities of {', '.join(tuned)} (for the skm settings)")
    measure(out, manifest, list(tuned), list(SENSITIVITY_TEXTS), config.calibration_voice, path, log=log, key=key)
    return path


def _check_excluded(config, exclude: frozenset[str]) -> None:
    from kokoro_build.tune.settings import all_settings
    unknown = sorted(exclude - set(all_settings(config.target.deployment)))
    if unknown:
        raise TuneError(f"tune: --exclude {unknown[0]}: not a setting for {config.target.deployment} (known: "
                        f"{', '.join(all_settings(config.target.deployment))})")


def _check_stages(config, stages: tuple[str, ...]) -> None:
    if not stages:
        raise TuneError("tune: name at least one stage")
    for stage in stages:
        if stage not in config.stages:
            raise TuneError(f"tune: no stage {stage!r} in {config.name} (has: {', '.join(config.stages)})")
        kind = config.stages[stage]
        if kind.kind == "g2p" or not kind.builds_artifacts or config.stage_precision(stage) != "fp16":
            raise TuneError(f"tune: stage {stage!r} is not an fp16 neural stage; tune compresses those")


def _stage_trials(config, out: Path, stage: str, found, min_weight_elements: int | None,
                  sensitivities: Path | None) -> StageTrials:
    """`found`: the stage's captures (capture.py's Captured)."""
    from kokoro_build.store.package import tree_digest
    from kokoro_build.tune.weights import tunable_weights
    from kokoro_build.verify.mil_eval import load_program
    block = config.stages[stage].compress
    minimum = min_weight_elements or (block.min_weight_elements if block else DEFAULT_MIN_WEIGHT_ELEMENTS)
    path = out / found.package
    digest = tree_digest(path)
    probe = Probe(stage, str(path), found.function, str(found.path), minimum, digest["sha256"],
                  str(sensitivities) if sensitivities else None)
    weights = tunable_weights(load_program(path).functions[found.function], minimum)
    return StageTrials(probe, weights, digest["bytes"] - sum(w.fp16_bytes for w in weights))


def _evaluator_speed(probe: Probe, twin_seconds: float) -> dict:
    """One full evaluator run over the captures, timed beside the twin's time on them."""
    from kokoro_build.tune.trials import load_captures
    from kokoro_build.verify.mil_eval import MilEvaluator
    evaluator = MilEvaluator(probe.package)
    start = time.perf_counter()
    for capture in load_captures(probe.captures):
        evaluator.run(capture["inputs"], function=probe.function)
    seconds = time.perf_counter() - start
    return {"evaluator": round(seconds, 2), "twin": round(twin_seconds, 2),
            "ratio": round(seconds / max(twin_seconds, 1e-9), 1)}


def _pending(trials: StageTrials, settings: dict, cache: TrialCache) -> list[Trial]:
    from kokoro_build.tune.settings import as_weight_method
    pending = []
    for weight in trials.weights:
        todo = []
        for label, method in settings.items():
            method_json = as_weight_method(method).model_dump_json()
            hit = cache.get(trials.probe, weight.name, label, method_json)
            if hit is not None:
                trials.results[(weight.name, label)] = hit
            else:
                todo.append((label, method_json))
        if todo:
            pending.append(Trial(trials.probe, weight.name, tuple(todo)))
    return pending


def _run_trials(trials: list[Trial], per_stage: dict, cache: TrialCache, executor, log) -> None:
    total = sum(len(t.settings) for t in trials)
    cached = sum(len(s.results) for s in per_stage.values())
    log(f"tune: {total} trials to run, {cached} from the cache ({executor.name} executor)")
    done, start = 0, time.time()
    for trial, outcome in executor.map_unordered(run_trial, trials):
        if isinstance(outcome, Exception):
            raise TuneError(f"tune: trial {trial.probe.stage} {trial.weight} failed: "
                            f"{type(outcome).__name__}: {outcome}") from outcome
        methods = dict(trial.settings)
        for result in outcome:
            per_stage[result.stage].results[(result.weight, result.label)] = result
            cache.put(trial.probe, result, methods[result.label])
        done += len(outcome)
        priced = ", ".join(f"{r.label} {_priced(r)}" for r in outcome)
        log(f"tune [{done}/{total}, {time.time() - start:.0f} s] {trial.probe.stage} {trial.weight}: {priced}")


def _priced(result) -> str:
    """A trial's added cost, in tolerances (cost.py)."""
    added = added_cost(result.errors, result.baseline)
    return "skipped" if added is None else f"+{added:.3g}"


def _allocate(per_stage: dict, budget_mb: float):
    options: dict[tuple[str, str], list[Option]] = {}
    for stage, trials in per_stage.items():
        for weight in trials.weights:
            measured = [Option(label, r.bytes, added_cost(r.errors, r.baseline))
                        for (name, label), r in trials.results.items()
                        if name == weight.name and r.bytes is not None]
            options[(stage, weight.name)] = [uncompressed(weight.fp16_bytes), *measured]
    fixed = sum(t.fixed_bytes for t in per_stage.values())
    return allocate(options, int(budget_mb * 1e6) - fixed)


def _write_outputs(request, config, out, tune_dir, per_stage, allocation, log) -> dict:
    from kokoro_build.tune.recipe import overlay, write_recipe
    elements = {(s, w.name): w.elements for s, t in per_stage.items() for w in t.weights}
    fixed = sum(t.fixed_bytes for t in per_stage.values())
    predicted_mb = (fixed + allocation.weight_bytes) / 1e6
    budget_label = f"{request.budget_mb:g}".replace(".", "_")
    recipe = Path(request.recipe or Path(request.config_path).resolve().parent / f"tuned-{budget_label}.yaml")
    name = recipe.stem
    stage_cost = {}  # the uncompressed package's cost plus the chosen settings'
    for stage, trials in per_stage.items():
        baseline = cost(next(iter(trials.results.values())).baseline) if trials.results else 0.0
        stage_cost[stage] = round(baseline + allocation.added_cost(stage), 3)
    counts: dict[str, int] = {}
    for option in allocation.choices.values():
        counts[option.label] = counts.get(option.label, 0) + 1
    mix = ", ".join(f"{n} {label}" for label, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    header = [
        f"Found by `kokoro-build tune {' '.join(request.stages)} --budget-mb {request.budget_mb:g}` "
        f"on {Path(request.config_path).name} ({time.strftime('%Y-%m-%d')}).",
        "Each weight of at least min_weight_elements was compressed alone at each setting and its",
        "package run with the MIL evaluator on the tune texts, against the fp32 twin (tune/trials.py);",
        "the settings below add the least measured error for the budget (tune/allocate.py).",
        f"Predicted: {predicted_mb:.1f} MB for the tuned stages, "
        f"{allocation.bits_per_weight(elements):.2f} bits per tuned weight; cost per stage "
        "(in tolerances, tune/cost.py) " + ", ".join(f"{s} {v:g}" for s, v in stage_cost.items()) + ".",
        f"Settings: {mix}.",
    ]
    document = overlay(Path(request.config_path), recipe, name,
                       {key: option.label for key, option in allocation.choices.items()},
                       {s: t.probe.min_weight_elements for s, t in per_stage.items()}, config.target.deployment,
                       f"tuned for {request.budget_mb:g} MB over {', '.join(request.stages)}")
    write_recipe(recipe, document, header)
    log(f"tune: {'fits' if allocation.fits else 'DOES NOT FIT'} {request.budget_mb:g} MB: predicted "
        f"{predicted_mb:.1f} MB, {allocation.bits_per_weight(elements):.2f} bits/weight ({mix}) -> {recipe}")
    summary = {"recipe": str(recipe), "base": str(request.config_path), "stages": list(request.stages),
               "budget_mb": request.budget_mb, "fits": allocation.fits, "predicted_mb": round(predicted_mb, 2),
               "bits_per_weight": round(allocation.bits_per_weight(elements), 3), "settings": counts,
               "predicted_stage_cost": stage_cost,
               "trials": [{"stage": s, "weight": w, "label": r.label, "bytes": r.bytes, "errors": r.errors,
                           "added_cost": added_cost(r.errors, r.baseline)}
                          for s, t in per_stage.items() for (w, _), r in sorted(t.results.items())]}
    if request.verify and allocation.fits:
        measured = summary["measured"] = _verify(recipe, name, out.parent, tune_dir, summary, log)
        write_recipe(recipe, document, header + [_measured_line(measured)])  # comments only: still built
    return summary


def _measured_line(point: dict) -> str:
    if "error" in point:
        return f"Built: failed before its report ({point['error']})."
    gates = "; ".join(point["failures"]) or "every verify.audio gate passed"
    return (f"Built ({time.strftime('%Y-%m-%d')}, the report sentence): {point['mb']} MB, teacher-forced PESQ "
            f"{point['teacher_forced_pesq']:.2f}, MCD {point['teacher_forced_mcd_db']:.2f} dB, F0 "
            f"{point['f0_error_cents']:.1f} cents, durations changed {point['duration_changed_share']:.1%}, "
            f"MCD-DTW {point['mcd_dtw_db']:.2f} dB; {gates}.")


def _verify(recipe: Path, name: str, artifacts: Path, tune_dir: Path, summary: dict, log) -> dict | None:
    from kokoro_build.plan.invoke import BuildError, run_doit
    from kokoro_build.store.package import atomic_path, write_json
    from kokoro_build.report.pareto import REFERENCE_RECIPES, plot, table, variant_point
    log(f"tune: building {recipe.name} through its report (end-to-end check of the prediction)")
    failure = None
    try:
        run_doit(str(recipe), log=lambda line: None)
    except BuildError as error:  # a missed speech gate still writes the report: show it
        failure = str(error).splitlines()[-1]
        log(f"tune: the build of {recipe.name} failed:\n{error}")
    if variant_point(artifacts / name, name, "tuned") is None:  # a parity gate stopped it earlier
        return {"name": name, "error": failure}
    point = variant_point(artifacts / name, name, "tuned", bits_per_weight=summary["bits_per_weight"],
                          predicted_mb=summary["predicted_mb"])
    points_file = tune_dir / "points.json"
    points = json.loads(points_file.read_text()) if points_file.is_file() else {}
    points[name] = point
    write_json(points_file, points)
    shown = [p for p in points.values() if p] + [p for p in (variant_point(artifacts / r, r, "recipe")
                                                             for r in REFERENCE_RECIPES) if p]
    with atomic_path(tune_dir / "pareto.md") as tmp:
        tmp.write_text(table(shown), encoding="utf-8")
    with atomic_path(tune_dir / "pareto.png") as tmp:
        tmp.write_bytes(plot(shown, name))
    log(f"tune: measured {name}: {point['mb']} MB, teacher-forced PESQ {point['teacher_forced_pesq']:.2f}, "
        f"durations changed {point['duration_changed_share']:.1%}; table and plot in {tune_dir}")
    return point
