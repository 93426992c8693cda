"""Benchmark: the memory floor of every artifact of a built variant (verify/memory.py).

    .venv/bin/python benchmarks/memory.py [--variant artifacts/default]

Reads each artifact's verify report: its weight file, the most activation bytes alive
at once while the evaluator ran it at the verify shape (at the MIL types' widths), and
their sum, a lower bound for what a device must hold. Prints a Markdown table and one
JSON line.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", default=str(ROOT / "artifacts" / "default"))
    args = parser.parse_args()
    from kokoro_build.schema.manifest import load_manifest
    from kokoro_build.store.manifest import verify_path

    variant = Path(args.variant)
    rows = []
    for stage, artifact in load_manifest(variant).artifacts():
        report = json.loads((variant / (artifact.verify_report or verify_path(artifact.package))).read_text())
        memory = report.get("memory")
        if memory is None:
            sys.exit(f"{artifact.package}: its verify report has no memory floor (built before it was measured)")
        rows.append({"stage": stage, "artifact": Path(artifact.package).name + (
            f":{artifact.function}" if artifact.function else ""), "sizes": report["verify"]["sizes"], **memory})
    print("| stage | artifact | verified at | weights MB | peak activations MB | floor MB |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['stage']} | {r['artifact']} | {r['sizes']} | {r['weights_bytes'] / 1e6:.1f} | "
              f"{r['peak_activation_bytes'] / 1e6:.1f} | {r['lower_bound_bytes'] / 1e6:.1f} |")
    print(json.dumps({"variant": variant.name, "rows": rows}))


if __name__ == "__main__":
    main()
