"""Convert one traced stage to a Core ML ML Program package."""
from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from kokoro_build.schema.config import COMPUTE_UNIT_NAMES
from kokoro_build.schema.run import StageRun
from kokoro_build.store.package import atomic_path, digest_path, tree_digest, write_digest, write_json
from kokoro_build.store.reproducible import build_stamp, normalize_package, reset_mil_names

PRECISIONS = {"fp16": "FLOAT16", "fp32": "FLOAT32"}


def convert_traced(traced_path: str, export_info: dict, precision: str, compute_units: str,
                   deployment: str):
    """The in-memory MLModel for a traced stage."""
    import coremltools as ct
    import numpy as np
    import torch

    from kokoro_build.targets.coreml.aten_aliases import torch_op_aliases

    reset_mil_names()  # op names must not depend on what this process converted before
    traced = torch.jit.load(traced_path)
    inputs = [ct.TensorType(name=s["name"], shape=_shape(ct, s), dtype=np.dtype(s["dtype"]))
              for s in export_info["inputs"]]
    outputs = [ct.TensorType(name=s["name"]) for s in export_info["outputs"]]
    with torch_op_aliases():
        return ct.convert(traced, inputs=inputs, outputs=outputs, convert_to="mlprogram",
                          minimum_deployment_target=getattr(ct.target, deployment),
                          compute_precision=getattr(ct.precision, PRECISIONS[precision]),
                          compute_units=getattr(ct.ComputeUnit, COMPUTE_UNIT_NAMES[compute_units]))


def _shape(ct, spec: dict):
    """A fixed shape, a RangeDim per flexible axis (default: the traced size), or
    EnumeratedShapes (Core ML allows those on one input only)."""
    if "range" in spec:
        return ct.Shape([ct.RangeDim(lower_bound=lo, upper_bound=hi, default=size) if lo != hi else size
                         for (lo, hi), size in zip(spec["range"], spec["shape"])])
    if "enumerated" in spec:
        return ct.EnumeratedShapes(shapes=spec["enumerated"], default=spec["shape"])
    return tuple(spec["shape"])


def op_census(mlmodel) -> dict[str, int]:
    """Op type -> count over every function and nested block of the program."""
    counts: Counter = Counter()

    def walk(block):
        for op in block.operations:
            counts[op.op_type] += 1
            for inner in op.blocks:
                walk(inner)

    for function in mlmodel._mil_program.functions.values():
        walk(function)
    return dict(sorted(counts.items()))


def stamp_provenance(mlmodel, export_info: dict) -> None:
    """What produced the package, inside it (readable on a device via MLModel's
    metadata): the weights' provenance and every surgery pass with its parity."""
    passes = [{k: p[k] for k in ("id", "options", "sites", "psnr_db", "step_psnr_db")}
              for p in export_info["passes"]]
    metadata = mlmodel.user_defined_metadata
    metadata["kokoro_build.passes"] = json.dumps(passes, sort_keys=True)
    metadata["kokoro_build.provenance"] = json.dumps(export_info["provenance"], sort_keys=True)


def convert_stage(run: StageRun) -> None:
    """doit action: .mlpackage, then its report, then its digest (written last:
    downstream tasks depend on it)."""
    traced_path, out_path, report_path = run.paths.traced, run.paths.converted, run.paths.converted_report
    precision, compute_units, deployment = run.precision, run.compute_units, run.deployment
    start = time.time()
    export_info = json.loads(digest_path(traced_path).read_text())
    label = f"{export_info['kind']} {export_info['sizes']}"
    print(f"convert {label}: ct.convert {precision} {deployment}", flush=True)
    mlmodel = convert_traced(traced_path, export_info, precision, compute_units, deployment)
    stamp_provenance(mlmodel, export_info)
    mlmodel.user_defined_metadata["kokoro_build.build"] = build_stamp({
        "kind": export_info["kind"], "sizes": export_info["sizes"], "flexible": export_info.get("flexible", {}),
        "passes": [{k: p[k] for k in ("id", "options")} for p in export_info["passes"]],
        "precision": precision, "compute_units": compute_units, "deployment": deployment})
    with atomic_path(out_path) as tmp:
        mlmodel.save(str(tmp))
        normalize_package(tmp)
    seconds = time.time() - start
    digest = tree_digest(out_path)
    report = {
        "artifact": Path(out_path).name, "kind": export_info["kind"], "sizes": export_info["sizes"],
        "flexible": export_info.get("flexible", {}),
        "inputs": export_info["inputs"], "outputs": export_info["outputs"],
        "precision": precision, "compute_units": compute_units, "deployment": deployment,
        "passes": export_info["passes"], "op_census": op_census(mlmodel),
        "bytes": digest["bytes"], "sha256": digest["sha256"],
        "seconds": {"export": export_info["seconds"], "convert": round(seconds, 1)},
        "provenance": export_info["provenance"],
    }
    write_json(report_path, report)
    write_digest(out_path, digest, kind=export_info["kind"], sizes=export_info["sizes"],
                 report=Path(report_path).name)
    print(f"convert {label}: {digest['bytes'] / 1e6:.1f} MB in {seconds:.0f} s -> {Path(out_path).name}",
          flush=True)
