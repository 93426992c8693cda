"""Benchmark: what multifunction packaging saves on a built variant's buckets.

    .venv/bin/python benchmarks/multifunction.py [--variant artifacts/default]

1. Per bucketed stage: the sum of its separate bucket packages against one package
   with a function per bucket (ct.utils.save_multifunction), and the merge's time.
2. Across stages: prosody and vocoder (all their buckets) in one package against the
   two per-stage merges, to see whether those stages share any weights.
Merges go to a temporary folder; the variant is not changed. Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def merge(functions: dict[str, Path], out: Path) -> tuple[int, float]:
    from kokoro_build.targets.coreml.multifunction import save_functions
    from kokoro_build.store.package import tree_digest
    start = time.time()
    save_functions(functions, next(iter(functions)), out)
    return tree_digest(out)["bytes"], time.time() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", default=str(ROOT / "artifacts" / "default"))
    args = parser.parse_args()

    from kokoro_build.schema.manifest import load_manifest
    variant = Path(args.variant)
    manifest = load_manifest(variant)
    stages, merged_bytes = {}, {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, stage in manifest.stages.items():
            packages = {Path(a.package).stem: variant / a.package for a in stage.artifacts}
            if len(packages) < 2 or stage.packaging == "multifunction":
                continue
            separate = sum(a.bytes for a in stage.artifacts)
            size, seconds = merge(packages, Path(scratch) / f"{name}.mlpackage")
            merged_bytes[name] = size
            stages[name] = {"buckets": len(packages), "separate_mb": round(separate / 1e6, 1),
                            "multifunction_mb": round(size / 1e6, 1), "merge_seconds": round(seconds, 1)}
        cross = {}
        if {"prosody", "vocoder"} <= set(merged_bytes):
            functions = {f"{name}_{Path(a.package).stem}": variant / a.package
                         for name in ("prosody", "vocoder") for a in manifest.stages[name].artifacts}
            size, seconds = merge(functions, Path(scratch) / "prosody_vocoder.mlpackage")
            cross = {"per_stage_multifunction_mb": round((merged_bytes["prosody"] + merged_bytes["vocoder"]) / 1e6, 1),
                     "one_package_mb": round(size / 1e6, 1), "merge_seconds": round(seconds, 1)}
    print(json.dumps({"date": time.strftime("%Y-%m-%d"), "machine": platform.machine(),
                      "variant": manifest.name, "stages": stages, "prosody_and_vocoder": cross}))


if __name__ == "__main__":
    main()
