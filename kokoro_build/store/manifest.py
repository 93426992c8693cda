"""The variant manifest: every artifact of a build, with its I/O, shapes and digest.

Written last by its own doit task; the chain (runtime/) and app code start here.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from kokoro_build.schema.manifest import Artifact, Manifest, Program, Stage
from kokoro_build.schema.run import golden_path, report_path  # readers find report_path here too
from kokoro_build.store.package import digest_path, file_sha256, write_json


def write_manifest(plan: dict, out_path: str) -> None:
    """doit action. `plan` (plan/tasks.py): {name, out, weights, config (the validated
    pipeline config, recorded for releases and diffs), runtime: {config, vocab, voices:
    {name: path}} (the small files the chain reads), stages: {stage name: {kind,
    options, packaging, artifacts: [{sizes, traced, package, function, report, verify[,
    executorch: {program, report, verify}]}]}} (plan/paths.manifest_entry)}."""
    root = Path(plan["out"])
    weights_info = json.loads(digest_path(plan["weights"]).read_text())
    runtime = plan["runtime"]
    manifest = {
        "name": plan["name"],
        "weights": {"path": _rel(plan["weights"], root), "sha256": weights_info["sha256"],
                    "provenance": weights_info.get("provenance")},
        "runtime": {"config": _file_entry(runtime["config"], root), "vocab": _file_entry(runtime["vocab"], root),
                    "voices": {v: _file_entry(p, root) for v, p in sorted(runtime["voices"].items())}},
        "stages": {},
        "config": plan["config"],
    }
    for stage_name, stage in plan["stages"].items():
        artifacts = []
        for entry in stage["artifacts"]:
            report = json.loads(Path(entry["report"]).read_text())
            verified = json.loads(Path(entry["verify"]).read_text())
            package = json.loads(digest_path(entry["package"]).read_text())
            artifact = {
                "sizes": entry["sizes"], "flexible": report.get("flexible", {}),
                "package": _rel(entry["package"], root), "traced": _rel(entry["traced"], root),
                "sha256": package["sha256"], "bytes": package["bytes"],
                "inputs": report["inputs"], "outputs": report["outputs"],
                "precision": report["precision"], "compute_units": report["compute_units"],
                "compress": report.get("compress"),
                "verify_report": _rel(entry["verify"], root),
                "golden": _rel(str(golden_path(entry["verify"])), root),
                "verify": {"passed": verified["verify"]["passed"],
                           "psnr_db": {n: o["psnr_db"] for n, o in verified["verify"]["outputs"].items()}},
                "ane": {**{key: verified["ane"][key] for key in ("analyzer", "measured", "op_share",
                                                                  "flop_share", "segments")},
                        "placement": {key: verified["ane"]["placement"][key] for key in
                                      ("predicted", "device", "ane_flop_share", "segments")}},
            }
            if entry.get("function"):  # multifunction or materialized; sha256/bytes are the whole package's
                artifact["function"] = entry["function"]
            if "executorch" in entry:  # targets: [.., executorch]
                artifact["executorch"] = _program_entry(entry["executorch"], root)
            artifacts.append(Artifact.model_validate(artifact))
        entry = {"kind": stage["kind"], "where": stage.get("where", "graph"), "options": stage.get("options", {}),
                 "packaging": stage.get("packaging", "separate"), "artifacts": artifacts}
        if "lexicon" in stage:  # a g2p stage: what a client needs beside its package
            entry.update(_g2p_entries(stage, root))
        if stage.get("packaging") in ("multifunction", "materialized") and artifacts:
            merged = json.loads(digest_path(stage["artifacts"][0]["package"]).read_text())
            entry["package"] = {
                "path": artifacts[0].package, "default_function": merged["default_function"],
                "functions": {a.function: {"sizes": a.sizes, "inputs": a.inputs, "outputs": a.outputs}
                              for a in artifacts}}
        manifest["stages"][stage_name] = Stage.model_validate(entry)
    typed = Manifest.model_validate(manifest)
    write_json(out_path, typed.as_json())
    print(f"manifest: {sum(1 for _ in typed.artifacts())} artifacts -> {Path(out_path).name}", flush=True)
    for path in remove_stale_outputs(root, typed):
        print(f"manifest: removed {path} (no artifact of this build)", flush=True)


# What a stage folder holds per artifact; a device report (`.device.json`, from
# ingest-device-report) is a measurement, and stays.
_PER_ARTIFACT = (".verify.json", ".golden.npz", ".report.json")


def remove_stale_outputs(root: Path, manifest: Manifest) -> list[str]:
    """Delete from the manifest's stage folders what a build of another config left
    there and this one does not list: packages (with their digests), verify reports and
    golden vectors of buckets or shapes no longer built. doit never removes the targets
    of a task that no longer exists, and `<stage>/frames_120.verify.json` beside the
    current package would look current. Returns the removed paths, relative."""
    kept: set[Path] = set()
    for _, artifact in manifest.artifacts():
        kept |= {Path(artifact.package), digest_path(artifact.package), report_path(artifact.package),
                 Path(artifact.verify_report), Path(artifact.golden)}
        if artifact.executorch is not None:
            kept |= {Path(artifact.executorch.program), Path(artifact.executorch.verify_report)}
    removed = []
    for stage in manifest.stages:
        folder = root / stage
        for path in sorted(folder.iterdir()) if folder.is_dir() else ():
            relative = path.relative_to(root)
            if relative in kept or not _stale_kind(path):
                continue
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(str(relative))
    return removed


def _stale_kind(path: Path) -> bool:
    """A per-artifact output: a package, its digest or conversion report, a verify report,
    golden vectors."""
    if path.name.endswith(".mlpackage"):
        return True
    if path.name.endswith(_PER_ARTIFACT):
        return True
    if path.name.endswith(".digest.json"):  # a lexicon's or checkpoint's digest is not a package's
        try:
            return str(json.loads(path.read_text()).get("artifact", "")).endswith(".mlpackage")
        except (OSError, ValueError):
            return False
    return False


def _program_entry(paths: dict, root: Path) -> Program:
    """An artifact's ExecuTorch program: file, digest, what XNNPACK took, verdict."""
    program = json.loads(digest_path(paths["program"]).read_text())
    verified = json.loads(Path(paths["verify"]).read_text())
    return Program.model_validate({
        "program": _rel(paths["program"], root), "sha256": program["sha256"], "bytes": program["bytes"],
        "backend": verified["backend"], "export": verified["export"],
        "delegated_share": verified["ops"]["delegated_share"],
        "portable_ops": verified["ops"]["portable"],
        "verify_report": _rel(paths["verify"], root),
        "verify": {"passed": verified["verify"]["passed"],
                   "psnr_db": {n: o["psnr_db"] for n, o in verified["verify"]["outputs"].items()}}})


def _g2p_entries(stage: dict, root: Path) -> dict:
    """The lexicon file (format, size, sha256) and the neural model's vocabularies."""
    lexicon = json.loads(digest_path(stage["lexicon"]).read_text())
    checkpoint = json.loads(digest_path(stage["checkpoint"]).read_text())
    return {
        "lexicon": {"path": _rel(stage["lexicon"], root), "format": lexicon["format"],
                    "entries": lexicon["entries"], "bytes": lexicon["bytes"], "sha256": lexicon["sha256"],
                    "source": lexicon["lexicon"], "source_sha256": lexicon["sources"]},
        "neural": {"graphemes": checkpoint["config"]["graphemes"], "phonemes": checkpoint["config"]["phonemes"],
                   "max_phonemes": checkpoint["config"]["max_phonemes"],
                   "provenance": checkpoint["provenance"]},
    }


def verify_path(package: str | Path) -> Path:
    """`<shape>.verify.json`: the conversion report plus parity and ANE verdicts."""
    path = Path(package)
    return path.with_name(path.name.removesuffix(".mlpackage") + ".verify.json")


def _file_entry(path: str, root: Path) -> dict:
    return {"path": _rel(path, root), "sha256": file_sha256(path)}


def _rel(path: str, root: Path) -> str:
    return str(Path(path).resolve().relative_to(root.resolve()))
