"""`kokoro-build sweep SWEEP.yaml`: build every variant of a sweep file (sweep_file.py)
on an executor (executors.py) and put their measurements side by side (results.py).

1. expand the file to named variants and write each as a recipe overlay,
   `<artifacts>/sweeps/<sweep>/variants/<label>.yaml` (`extends:` the base), so any one
   can be rebuilt alone with `doit config=THAT_FILE`; 2. validate every overlay
   (load_config) before anything is built: an invalid one is a failed row, not a stop;
3. build each valid one with the normal doit graph, one executor item per variant,
   into `<artifacts>/<variant name>/` (plan/paths.artifacts_dir), so the variants share
   the step cache `<artifacts>/.cache/`; 4. write results.{md,csv,json} and pareto.png.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

from kokoro_build.schema.config import ConfigError, load_config
from kokoro_build.schema.yaml_lines import Replace
from kokoro_build.scale.results import measure, write_results
from kokoro_build.scale.sweep_file import Sweep, Variant, copy_tree, load_sweep, set_path

# what one variant's build takes on a Ray node (--executor ray): doit runs one step at a
# time; the real model's largest steps (a vocoder's conversion and verification) peak near 4 GB
VARIANT_RESOURCES = {"num_cpus": 1, "memory": 4 * 2**30}
# a variant's speech gates are measured and reported, not enforced: a variant that misses
# one keeps its row; its parity gates are enforced as in any build
REPORT_ONLY = ("verify", "audio", "enforce")


@dataclass(frozen=True)
class Job:
    """One variant's build: what a worker needs, picklable, every path absolute."""
    name: str
    label: str
    config: str
    variant_dir: str
    tasks: tuple[str, ...]
    log: str


def build_variant(job: Job) -> dict:
    """The worker: doit on the variant's overlay (output to its log file), then its
    measurements; a failed build is a row with the doit output's tail."""
    from kokoro_build.plan.invoke import BuildError, run_doit
    started = time.time()
    Path(job.log).parent.mkdir(parents=True, exist_ok=True)
    with open(job.log, "w", encoding="utf-8") as log:
        try:
            run_doit(job.config, list(job.tasks), log=lambda line: print(line, file=log, flush=True))
        except BuildError as error:
            return {"status": "failed", "error": str(error), "log": job.log,
                    "seconds": round(time.time() - started, 1)}
    return {"status": "ok", "seconds": round(time.time() - started, 1), **measure(Path(job.variant_dir))}


def run_sweep(sweep_path: str | Path, artifacts: str | Path, executor, build: Callable | None = None,
              log: Callable[[str], None] = print) -> tuple[list[dict], Path]:
    """Every variant's row (in the file's order) and the folder of the results; `build`
    (default build_variant) runs on the executor, a variant's Job -> its row.
    Raises ConfigError for a sweep file (or base) that does not validate."""
    from kokoro_build.plan.paths import sweep_dir
    sweep = load_sweep(sweep_path)
    folder = sweep_dir(Path(artifacts).resolve(), sweep.name)
    jobs, rows = _prepare(sweep, folder)
    total = len(sweep.variants)
    log(f"sweep {sweep.name}: {total} variants, {len(jobs)} to build on the {executor.name} executor "
        f"({folder / 'variants'})")
    for done, row in enumerate(rows.values(), 1):
        log(f"sweep [{done}/{total}] {row['name']}: invalid: {row['error']}")
    if jobs:
        started = {job.name: _blank(job) for job in jobs}
        for job, outcome in executor.map_unordered(build or build_variant, jobs):
            if not isinstance(outcome, dict):  # the executor's: a crashed worker, a lost node
                outcome = {"status": "failed", "error": f"{type(outcome).__name__}: {outcome}"}
            rows[job.name] = row = {**started[job.name], **outcome}
            log(f"sweep [{len(rows)}/{total}] {job.name}: {_progress(row)}")
    ordered = [rows[v.name] for v in sweep.variants]
    for variant, row in zip(sweep.variants, ordered):
        row.update(settings=variant.settings, what=variant.describe())
    write_results(folder, sweep.name + (f": {sweep.description}" if sweep.description else ""), ordered)
    counts = {status: sum(row["status"] == status for row in ordered) for status in ("ok", "failed", "invalid")}
    log(f"sweep {sweep.name}: {counts['ok']} built, {counts['failed']} failed, {counts['invalid']} invalid; "
        f"{folder / 'results.md'}")
    return ordered, folder


def _blank(job: Job) -> dict:
    return {"name": job.name, "label": job.label, "status": "failed", "seconds": None}


def _progress(row: dict) -> str:
    seconds = "" if row.get("seconds") is None else f" in {row['seconds']:.0f} s"
    if row["status"] == "ok":
        size = "" if row.get("mb") is None else f" {row['mb']:.1f} MB"
        return f"ok{size}{seconds}"
    last = [line for line in str(row.get("error", "")).splitlines() if line.strip()] or [""]
    return f"FAILED{seconds}: {last[-1].strip()}" + (f" (log: {row['log']})" if row.get("log") else "")


def _prepare(sweep: Sweep, folder: Path) -> tuple[list[Job], dict[str, dict]]:
    """Write every overlay (and drop those of earlier runs); validate each. The jobs
    to build, and the rows of the variants that did not validate."""
    variants = folder / "variants"
    variants.mkdir(parents=True, exist_ok=True)
    keep = {f"{v.label}.yaml" for v in sweep.variants}
    for stale in variants.glob("*.yaml"):
        if stale.name not in keep:
            stale.unlink()
    from kokoro_build.plan.paths import artifacts_dir
    jobs, invalid = [], {}
    for variant in sweep.variants:
        path = variants / f"{variant.label}.yaml"
        path.write_text(overlay_text(sweep, variant, path), encoding="utf-8")
        try:
            config = load_config(path)
        except ConfigError as error:
            invalid[variant.name] = {"name": variant.name, "label": variant.label, "status": "invalid",
                                     "seconds": None, "error": _traced(sweep, variant, error)}
            continue
        jobs.append(Job(variant.name, variant.label, str(path), str(artifacts_dir(config, path)),
                        sweep.tasks, str(folder / "logs" / f"{variant.label}.log")))
    return jobs, invalid


def _traced(sweep: Sweep, variant: Variant, error: ConfigError) -> str:
    """Each problem, with the sweep file's line that set its field where one did."""
    lines = []
    for problem in error.problems:
        line = sweep.origin(variant, problem.field) if problem.field else None
        lines.append(str(problem) + (f" (set by {sweep.file}:{line})" if line else ""))
    return "\n".join(lines)


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(Replace, lambda dumper, data: dumper.represent_mapping("!replace", dict(data)))


def overlay_text(sweep: Sweep, variant: Variant, path: Path) -> str:
    """The recipe overlay of one variant, written beside the others at `path`."""
    head = {"extends": str(sweep.base), "name": variant.name,
            "description": f"sweep {sweep.name}: {variant.describe()}"}
    body = copy_tree(variant.overlay)
    set_path(body, REPORT_ONLY, False)  # unless the variant sets it
    return (f"# Written by `kokoro-build sweep {sweep.file}` (variant {variant.label}); rebuilt on each run.\n"
            f"# Build it alone: .venv/bin/doit config={path}\n"
            "# verify.audio.enforce: false: a sweep reports each variant's speech gates, it doesn't stop on them.\n"
            + yaml.dump(head, Dumper=_Dumper, sort_keys=False, width=1000)
            + yaml.dump(body, Dumper=_Dumper, sort_keys=False, default_flow_style=None, width=100))
