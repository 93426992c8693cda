"""W8A8 calibration on Linux: activation ranges from real sentences.

coremltools' own `linear_quantize_activations` records ranges with Core ML
predictions, which exist only on macOS ("Model prediction is only supported on
macOS" here). So the chain speaks the calibration texts through the *converted*
packages (before any compression) in our MIL evaluator, which records the min and
max of every function input and op output by MIL variable name: the names
coremltools' activation passes look ranges up by (compress.py).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from kokoro_build.schema.manifest import RunnableManifest
from kokoro_build.targets.coreml.export import specs_at_bucket
from kokoro_build.store.package import file_sha256, write_json

FORMAT = "kokoro-build-calibration/1"


class CalibrationError(RuntimeError):
    pass


def calibration_manifest(name: str, out_dir: Path, runtime: dict, stages: dict) -> RunnableManifest:
    """What the chain reads, over the converted packages (before there is a verified
    manifest). `runtime`: {config, vocab, voices: {name: path}};
    `stages`: {stage: {kind, where?, artifacts: [{sizes, package, traced, report}]}}."""
    def rel(path: str) -> str:
        return str(Path(path).resolve().relative_to(out_dir.resolve()))

    def file_entry(path: str) -> dict:
        return {"path": rel(path), "sha256": file_sha256(path)}

    manifest = {"name": name, "stages": {}, "runtime": {
        "config": file_entry(runtime["config"]), "vocab": file_entry(runtime["vocab"]),
        "voices": {voice: file_entry(path) for voice, path in runtime["voices"].items()}}}
    for stage_name, stage in stages.items():
        artifacts = []
        for entry in stage["artifacts"]:
            report = json.loads(Path(entry["report"]).read_text())
            flexible, inputs, outputs = report.get("flexible", {}), report["inputs"], report["outputs"]
            if any("buckets" in flex for flex in flexible.values()):  # a materialized stage's conversion
                inputs, outputs = (specs_at_bucket(io, flexible, entry["sizes"]) for io in (inputs, outputs))
                flexible = {}  # run at each bucket, padded, as its functions will be
            artifacts.append({"sizes": entry["sizes"], "flexible": flexible,
                              "package": rel(entry["package"]), "traced": rel(entry["traced"]),
                              "inputs": inputs, "outputs": outputs})
        manifest["stages"][stage_name] = {"kind": stage["kind"], "artifacts": artifacts}
    return RunnableManifest.model_validate(manifest)


def share_concat_ranges(program, ranges: dict[str, list[float]]) -> int:
    """Give a concat's inputs and output one range (the union), transitively across
    concats that share a tensor: quantized with one scale, the concat needs no
    requantization (as coremltools' calibration does,
    optimize/coreml/_post_training_quantization.py). Returns how many groups changed."""
    from kokoro_build.verify.mil_eval import _walk

    parent: dict[str, str] = {}

    def root(name: str) -> str:
        while parent.setdefault(name, name) != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for function in program.functions.values():
        for op in _walk(function):
            if op.op_type != "concat":
                continue
            names = [v.name for v in op.inputs["values"] if v.name in ranges] + \
                    [v.name for v in op.outputs if v.name in ranges]
            for other in names[1:]:
                parent[root(other)] = root(names[0])
    groups: dict[str, list[str]] = {}
    for name in parent:
        groups.setdefault(root(name), []).append(name)
    changed = 0
    for members in groups.values():
        low = min(ranges[m][0] for m in members)
        high = max(ranges[m][1] for m in members)
        if any(ranges[m] != [low, high] for m in members):
            changed += 1
        for m in members:
            ranges[m] = [low, high]
    return changed


def calibrate(plan: dict, out_path: str) -> None:
    """doit action: speak `plan["texts"]` in `plan["voice"]` through the converted
    packages (`plan["stages"]`, see calibration_manifest), then write every package's
    activation ranges. `plan["required"]`: the packages that must have run (those of
    stages that quantize activations); a bucket no text reached is an error."""
    from kokoro_build.runtime.backends import MilBackend
    from kokoro_build.runtime.chain import Chain

    root = Path(plan["out"])
    texts, voice, required = plan["texts"], plan["voice"], plan["required"]
    manifest = calibration_manifest(plan["name"], root, plan["runtime"], plan["stages"])
    stats: dict = {}
    backend = MilBackend(root, stats=stats)
    chain = Chain(root, backend=backend, manifest=manifest)
    start = time.time()
    for index, text in enumerate(texts, 1):
        began = time.time()
        speech = chain.speak(text, voice)
        print(f"calibrate {index}/{len(texts)}: {len(speech.audio) / speech.sample_rate:.1f} s of speech "
              f"in {time.time() - began:.0f} s ({text[:48]!r})", flush=True)
    packages = {}
    for package, recorded in sorted(stats.items()):
        ranges = {var: [low, high] for var, (low, high) in recorded.ranges().items()}
        shared = share_concat_ranges(backend.program(package), ranges)
        packages[package] = {"runs": recorded.runs, "concat_groups_shared": shared, "ranges": ranges}
    missing = [p for p in (str(Path(r).resolve().relative_to(root.resolve())) for r in required)
               if p not in packages]
    if missing:
        raise CalibrationError(
            f"no calibration text ran through {', '.join(missing)}: add texts whose length "
            "reaches that bucket to `calibration.texts` (or drop activations: from its stage)")
    write_json(out_path, {"format": FORMAT, "voice": voice, "texts": texts, "packages": packages})
    print(f"calibrate: {len(texts)} texts, {sum(len(p['ranges']) for p in packages.values())} "
          f"activation ranges over {len(packages)} packages in {time.time() - start:.0f} s", flush=True)


def load_ranges(calibration_path: str, package: str) -> dict[str, dict[str, float]]:
    """One package's ranges as coremltools' passes take them: {var: {rmin, rmax}}."""
    data = json.loads(Path(calibration_path).read_text())
    if data.get("format") != FORMAT:
        raise CalibrationError(f"{calibration_path}: format {data.get('format')!r}, expected {FORMAT}")
    if package not in data["packages"]:
        raise CalibrationError(f"{calibration_path}: no ranges for {package} (calibrated: "
                               f"{', '.join(data['packages'])})")
    return {var: {"rmin": low, "rmax": high} for var, (low, high) in data["packages"][package]["ranges"].items()}
