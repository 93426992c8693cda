"""Export one stage at one shape: load weights, run surgery, trace to TorchScript."""
from __future__ import annotations

import time
from pathlib import Path

from kokoro_build.schema.run import StageRun
from kokoro_build.store.package import atomic_path, write_digest


def describe(specs_at, sizes: dict[str, int], flexible: dict[str, dict]) -> list[dict]:
    """Tensor specs at `sizes`, each annotated with how a flexible dimension moves it:
    "range": [[lo, hi] per axis], or "enumerated": [shape, ...] (one per size). A
    materialized stage's `buckets` get both: the range its one conversion spans and
    "buckets": [shape, ...], each function's fixed shape."""
    described = [spec.as_dict() for spec in specs_at(sizes)]
    for dim, flex in flexible.items():
        mode, values = next(iter(flex.items()))
        at = [specs_at({**sizes, dim: v}) for v in (values if mode != "range" else values[:2])]
        for i, entry in enumerate(described):
            shapes = [list(variant[i].shape) for variant in at]
            if any(shape != shapes[0] for shape in shapes):
                if mode != "range":
                    entry[mode] = shapes
                if mode != "enumerated":
                    entry["range"] = [[min(a), max(a)] for a in zip(*shapes)]
    return described


def specs_at_bucket(described: list[dict], flexible: dict[str, dict], sizes: dict[str, int]) -> list[dict]:
    """A materialized stage's described specs as one function (bucket `sizes`) has them:
    fixed shapes, no range."""
    specs = []
    for entry in described:
        shape = entry["shape"]
        for dim, flex in flexible.items():
            if "buckets" in flex and "buckets" in entry:
                shape = entry["buckets"][flex["buckets"].index(sizes[dim])]
        specs.append({"name": entry["name"], "shape": list(shape), "dtype": entry["dtype"]})
    return specs


def export_stage(run: StageRun) -> None:
    """doit action: write the traced TorchScript file and its digest (with surgery records)."""
    import torch

    from kokoro_build.model.prepare import prepare_stage

    start = time.time()
    label = f"{run.kind} {run.sizes}"
    flexible = run.flexible or {}
    print(f"export {label}: surgery ({len(run.passes)} passes)", flush=True)
    prepared = prepare_stage(run)
    for r in prepared.records:
        print(f"  {r.id}: {r.sites} sites, {r.psnr_db:.1f} dB", flush=True)
    print(f"export {label}: tracing", flush=True)
    with torch.no_grad():
        traced = torch.jit.trace(prepared.module, prepared.inputs(run.sizes), check_trace=False)
    out_path = run.paths.traced
    with atomic_path(out_path) as tmp, open(tmp, "wb") as file:  # see model/source/weights.py
        torch.jit.save(traced, file)
    write_digest(out_path, kind=run.kind, sizes=run.sizes, flexible=flexible, options=run.options or {},
                 inputs=describe(prepared.stage.inputs, run.sizes, flexible),
                 outputs=describe(prepared.stage.outputs, run.sizes, flexible),
                 passes=[r.as_dict() for r in prepared.records], provenance=prepared.provenance,
                 seconds=round(time.time() - start, 1))
    print(f"export {label}: done in {time.time() - start:.0f} s -> {Path(out_path).name}", flush=True)
