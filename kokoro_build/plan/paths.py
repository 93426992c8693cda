"""Every path a variant's build writes, named in one place (the plan's and the readers')."""
from __future__ import annotations

from pathlib import Path

from kokoro_build.schema.config import PipelineConfig, StageConfig
from kokoro_build.schema.run import RunPaths, ShapePoint


def recipe_path(name: str) -> str:
    """`doit recipe=NAME` -> recipes/NAME.yaml (a path or a file name is taken as given)."""
    return name if name.endswith((".yaml", ".yml")) else f"recipes/{name}.yaml"


def artifacts_dir(config: PipelineConfig, config_path: str | Path) -> Path:
    """`artifacts/<name>/` beside the pipeline file; a file in `recipes/` builds into
    the project's `artifacts/` (one folder up), beside the default variant; a sweep's
    variant (`<artifacts>/sweeps/<sweep>/variants/<label>.yaml`) into that `<artifacts>/`,
    beside the variants it is compared with and sharing their step cache."""
    folder = Path(config_path).resolve().parent
    if folder.name == "variants" and folder.parent.parent.name == "sweeps":
        return folder.parents[2] / config.name
    if folder.name == "recipes":
        folder = folder.parent
    return folder / "artifacts" / config.name


def sweep_dir(artifacts: str | Path, sweep_name: str) -> Path:
    """A sweep's overlays (variants/), build logs (logs/) and results: `<artifacts>/sweeps/<name>/`."""
    return Path(artifacts) / "sweeps" / sweep_name


def weights_path(out: Path) -> Path:
    return out / "weights" / "kokoro.pt"


def runtime_files(out: Path, voices: list[str]) -> dict:
    """What the chain needs of the weights file, as small files at the paths a release
    keeps them at: {config, vocab, voices: {name: path}}."""
    return {"config": str(out / "kokoro" / "config.json"), "vocab": str(out / "kokoro" / "vocab.json"),
            "voices": {voice: str(out / "voices" / f"{voice}.npy") for voice in voices}}


def g2p_checkpoint(out: Path) -> Path:
    return out / "weights" / "g2p_en.pt"


def lexicon_path(out: Path, stage_name: str) -> Path:
    return out / stage_name / "lexicon.tsv"


def calibration_path(out: Path) -> Path:
    return out / "_work" / "calibration.json"


def sensitivity_path(out: Path) -> Path:
    return out / "_work" / "sensitivity.npz"


def merged_package(out: Path, stage_name: str) -> Path:
    return out / stage_name / f"{stage_name}.mlpackage"


def shape_points(stage: StageConfig) -> list[ShapePoint]:
    """Buckets give one artifact each; a range or enumerated dimension gives one
    artifact for all its sizes, traced at its largest size (also its default)."""
    points = [ShapePoint(sizes={})]
    for dim, spec in stage.shapes.items():
        if spec.mode == "buckets":
            points = [ShapePoint(sizes={**p.sizes, dim: size}, flexible=p.flexible)
                      for p in points for size in spec.sizes]
        else:
            flexible = {spec.mode: list(spec.sizes)}
            points = [ShapePoint(sizes={**p.sizes, dim: max(spec.sizes)}, flexible={**p.flexible, dim: flexible})
                      for p in points]
    return points


def stage_paths(out: Path, stage_name: str, stage: StageConfig, weights: Path,
                executorch: bool = False) -> list[tuple[ShapePoint, RunPaths]]:
    """Each artifact of a stage with its paths. A multifunction stage's buckets are
    intermediates in their own folder (a digest is named by the stem, and the traced
    twin's is `<label>.digest.json` already); the stage's package merges them."""
    work = out / "_work" / stage_name
    source = materialized_source(out, stage_name, stage, weights)[1] if stage.packaging == "materialized" else None
    found = []
    for point in shape_points(stage):
        bucket = (work / "functions" if stage.merged else out / stage_name) / f"{point.label}.mlpackage"
        # a materialized function's bucket is only its report (the materialize step writes it)
        traced = source.traced if source else str(work / f"{point.label}.traced.pt")
        converted = source.converted if source else str(
            work / "converted" / f"{point.label}.mlpackage" if stage.compress else bucket)
        found.append((point, RunPaths(
            weights=str(weights), traced=traced, converted=converted,
            bucket=str(bucket), package=str(merged_package(out, stage_name) if stage.merged else bucket),
            verified=str(out / stage_name / f"{point.label}.verify.json"),
            program=str(out / "executorch" / f"{stage_name}_{point.label}.pte") if executorch else None)))
    return found


def materialized_source(out: Path, stage_name: str, stage: StageConfig, weights: Path) -> tuple[ShapePoint, RunPaths]:
    """A materialized stage's one trace and conversion: traced at its largest bucket,
    converted with a range over its buckets (`_work/<stage>/source/`), compressed
    there too; the materialize step makes the stage's package from it."""
    (dim, spec), = stage.shapes.items()
    point = ShapePoint(sizes={dim: max(spec.sizes)}, flexible={dim: {"buckets": list(spec.sizes)}})
    work = out / "_work" / stage_name
    source = work / "source" / f"{point.label}.mlpackage"
    return point, RunPaths(
        weights=str(weights), traced=str(work / f"{point.label}.traced.pt"),
        converted=str(work / "converted" / f"{point.label}.mlpackage" if stage.compress else source),
        bucket=str(source), package=str(source), verified=str(work / "source" / f"{point.label}.verify.json"))


def manifest_entry(point: ShapePoint, paths: RunPaths, function: str | None) -> dict:
    entry = {"sizes": point.sizes, "traced": paths.traced, "package": paths.package,
             "function": function, "report": paths.report, "verify": paths.verified}
    if paths.program is not None:
        entry["executorch"] = {"program": paths.program, "report": paths.program_report,
                               "verify": paths.program_verified}
    return entry
