"""Release bundles: a built variant as one byte-stable zip, and its verification.

    dist/<name>-<version>.zip
      <name>-<version>/manifest.json          every other file's sha256 and size, each
                                               stage's I/O, shapes, precision, the config,
                                               the tool versions and lock files
      <name>-<version>/<stage>/<shape>.mlpackage/...   (normalized: reproducible.py)
      <name>-<version>/executorch/<stage>_<shape>.pte   (targets: [.., executorch])
      <name>-<version>/<g2p stage>/lexicon.tsv
      <name>-<version>/kokoro/config.json, vocab.json
      <name>-<version>/voices/<voice>.npy
      <name>-<version>/reports/<stage>/<shape>.verify.json   (timings removed)
      <name>-<version>/reports/executorch/<stage>_<shape>.verify.json
      <name>-<version>/<stage>/<shape>.golden.npz   golden vectors (verify/golden.py): per
                                               package its smallest function's, or all
      <name>-<version>/device_check.py, device_check.json   the device check kit for a Mac

The zip is stable: entries sorted, one fixed timestamp (1980-01-01, zip's earliest),
fixed permissions, deflate at a fixed level. Timings are left out of everything in
it, since they differ between two builds of the same inputs.
"""
from __future__ import annotations

import hashlib
import json
import math
import zipfile
from pathlib import Path

from kokoro_build.schema.manifest import RELEASE_FORMAT as FORMAT
from kokoro_build.schema.manifest import Manifest, load_manifest
from kokoro_build.store.package import atomic_path
from kokoro_build.verify import device_check

EPOCH = (1980, 1, 1, 0, 0, 0)


class ReleaseError(RuntimeError):
    pass


def _stable_json(data) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def _without_timings(data):
    """Drop `seconds`, `*_seconds` and real-time factors: what differs between runs."""
    if isinstance(data, dict):
        return {k: _without_timings(v) for k, v in data.items()
                if k != "seconds" and not k.endswith("_seconds") and "real_time_factor" not in k}
    if isinstance(data, list):
        return [_without_timings(v) for v in data]
    return data


GOLDENS = ("smallest", "all")


def checked_artifacts(manifest: Manifest, goldens: str) -> set[tuple[str, str | None]]:
    """The (package, function)s whose golden vectors a release carries, for its device
    check: "all", or per package its "smallest" function (fewest input and output
    elements). Goldens grow with the bucket: the default's 42 functions' came to 266 MB
    of a 316 MB zip (BENCHMARKS.md "Release size"). Every function was verified on
    Linux against its twin by the evaluator reading the same saved package, so one
    function per package still checks on a device each package's weights, ops and
    compute units; "all" checks every function's program there too."""
    if goldens not in GOLDENS:
        raise ReleaseError(f"goldens: {goldens!r} is not one of {', '.join(GOLDENS)}")
    artifacts = [artifact for _, artifact in manifest.artifacts()]
    if goldens == "all":
        return {(a.package, a.function) for a in artifacts}
    smallest: dict[str, tuple[int, str | None]] = {}
    for a in artifacts:  # ties: the first listed
        size = sum(math.prod(spec.shape) for spec in (*a.inputs, *a.outputs))
        if a.package not in smallest or size < smallest[a.package][0]:
            smallest[a.package] = (size, a.function)
    return {(package, function) for package, (_, function) in smallest.items()}


def release_files(variant_dir: Path, goldens: str = "smallest") -> tuple[dict[str, bytes | Path], Manifest]:
    """({path in the bundle: bytes or a file to copy}, the variant manifest). Files keep
    their path in the variant, so the variant's manifest reads the same in the bundle."""
    manifest = load_manifest(variant_dir)
    checked = checked_artifacts(manifest, goldens)
    failed = [f"{stage}:{a.package}" for stage, a in manifest.artifacts() if not a.verify.passed]
    failed += [f"{stage}:{a.executorch.program}" for stage, a in manifest.artifacts()
               if a.executorch is not None and not a.executorch.verify.passed]
    if failed:
        raise ReleaseError(f"{variant_dir}: not released, these artifacts failed verification: "
                           f"{', '.join(failed)}")
    files: dict[str, bytes | Path] = {}
    checks: list[dict] = []  # the device check kit's index (verify/device_check.py)
    for stage in manifest.stages.values():
        for artifact in stage.artifacts:
            package = variant_dir / artifact.package
            for path in sorted(package.rglob("*")):
                if path.is_file():
                    files[f"{artifact.package}/{path.relative_to(package).as_posix()}"] = path
            report = json.loads((variant_dir / artifact.verify_report).read_text())
            files[f"reports/{artifact.verify_report}"] = _stable_json(_without_timings(report))
            if (artifact.package, artifact.function) in checked:
                files[artifact.golden] = variant_dir / artifact.golden
                checks.append({"package": artifact.package, "function": artifact.function,
                               "compute_units": artifact.compute_units, "golden": artifact.golden,
                               "gates": {name: o["min_psnr_db"] for name, o in report["verify"]["outputs"].items()}})
            program = artifact.executorch
            if program:  # targets: [.., executorch]: the .pte and its check
                files[program.program] = variant_dir / program.program
                report = json.loads((variant_dir / program.verify_report).read_text())
                files[f"reports/{program.verify_report}"] = _stable_json(_without_timings(report))
        if stage.lexicon is not None:
            files[stage.lexicon.path] = variant_dir / stage.lexicon.path
    runtime = manifest.runtime  # config, vocab, voices: what the chain reads
    for entry in (runtime.config, runtime.vocab, *runtime.voices.values()):
        files[entry.path] = variant_dir / entry.path
    # the device check kit ships as a file, copied as is (it imports nothing of ours)
    files[device_check.INDEX] = _stable_json({"variant": manifest.name, "artifacts": checks})
    files["device_check.py"] = Path(device_check.__file__)
    return files, manifest


def _environment() -> dict:
    from importlib import metadata

    from kokoro_build.store.reproducible import git_commit, lock_digests, tool_versions
    installed = {dist.metadata["Name"].lower(): dist.version for dist in metadata.distributions()
                 if dist.metadata["Name"]}
    return {"versions": tool_versions(), "locks": lock_digests(), "git_commit": git_commit(),
            "installed": dict(sorted(installed.items()))}


# what the bundle's own stage table says of each artifact (the chain's copy has it all)
_LISTED = {"package", "function", "sizes", "flexible", "inputs", "outputs", "precision", "compute_units",
           "compress", "sha256", "bytes", "verify"}


def _bundle_manifest(name: str, version: str, files: dict[str, bytes], variant: Manifest) -> dict:
    stages = {}
    for stage_name, stage in variant.stages.items():
        stages[stage_name] = {
            "kind": stage.kind, "where": stage.where, "packaging": stage.packaging,
            "artifacts": [artifact.model_dump(include=_LISTED, exclude_none=True) | (
                {"executorch": artifact.executorch.model_dump(exclude_none=True)} if artifact.executorch else {})
                for artifact in stage.artifacts]}
    chain = variant.model_copy(deep=True)
    for _, artifact in chain.artifacts():
        artifact.traced = None  # the weights and traced twins stay behind
    return {
        "format": FORMAT, "name": name, "version": version,
        "files": {path: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                  for path, data in sorted(files.items())},
        "stages": stages, "config": variant.config, "weights": variant.weights.model_dump(exclude_none=True),
        # the variant's manifest, for the chain (`speak --bundle`): without the traced
        # twins, only the mil, coreml and executorch backends run from here
        "chain": _without_timings(chain.as_json()),
        "environment": _environment(),
    }


def build_release(variant_dir: str | Path, dist_dir: str | Path, version: str, goldens: str = "smallest") -> Path:
    """Write dist/<name>-<version>.zip from a built, verified variant; return its path.
    `goldens`: which functions' golden vectors it carries (checked_artifacts)."""
    variant_dir = Path(variant_dir)
    sources, variant = release_files(variant_dir, goldens)
    name = variant.name
    files = {path: (src if isinstance(src, bytes) else src.read_bytes()) for path, src in sources.items()}
    manifest = _bundle_manifest(name, version, files, variant)
    files["manifest.json"] = _stable_json(manifest)
    root = f"{name}-{version}"
    out = Path(dist_dir) / f"{root}.zip"
    with atomic_path(out) as tmp:
        with zipfile.ZipFile(tmp, "w") as archive:
            for path in sorted(files):
                info = zipfile.ZipInfo(f"{root}/{path}", date_time=EPOCH)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, files[path], compresslevel=6)
    return out
