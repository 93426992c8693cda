"""Export one stage at one shape: load weights, run surgery, trace to TorchScript."""
from __future__ import annotations

import time
from pathlib import Path

from kokoro_build.store.package import atomic_path, write_digest


def describe(specs_at, sizes: dict[str, int], flexible: dict[str, dict]) -> list[dict]:
    """Tensor specs at `sizes`, each annotated with how a flexible dimension moves it:
    "range": [[lo, hi] per axis], or "enumerated": [shape, ...] (one per size)."""
    described = [spec.as_dict() for spec in specs_at(sizes)]
    for dim, flex in flexible.items():
        mode, values = next(iter(flex.items()))
        at = [specs_at({**sizes, dim: v}) for v in (values if mode == "enumerated" else values[:2])]
        for i, entry in enumerate(described):
            shapes = [list(variant[i].shape) for variant in at]
            if any(shape != shapes[0] for shape in shapes):
                entry[mode] = shapes if mode == "enumerated" else [list(a) for a in zip(*shapes)]
    return described


def prepare_stage(weights_path: str, kind: str, sizes: dict[str, int], passes: list,
                  voice: str, flexible: bool = False, options: dict | None = None):
    """(surgered module, example inputs, stage, surgery records) for one shape."""
    from kokoro_build.model.stages import get_stage_kind
    from kokoro_build.model.surgery import apply_passes

    kind_class = get_stage_kind(kind)
    blob = kind_class.load_source(weights_path)
    stage = kind_class(blob["config"], passes, flexible=flexible, options=options)
    module = stage.build_module(stage.model_from_source(blob), sizes)
    voice_pack = blob["voices"].get(voice)  # None for a kind that takes no voice (g2p)
    result = apply_passes(module, passes, stage.example_inputs(stage.parity_sizes(sizes), voice_pack))
    inputs = stage.example_inputs(sizes, voice_pack)
    return result.module, inputs, stage, result.records, blob["provenance"]


def export_stage(weights_path: str, kind: str, sizes: dict[str, int], passes: list,
                 voice: str, out_path: str, flexible: dict | None = None,
                 options: dict | None = None) -> None:
    """doit action: write a traced TorchScript file and its digest (with surgery records)."""
    import torch

    start = time.time()
    label = f"{kind} {sizes}"
    print(f"export {label}: surgery ({len(passes)} passes)", flush=True)
    module, inputs, stage, records, provenance = prepare_stage(
        weights_path, kind, sizes, passes, voice, flexible=bool(flexible), options=options)
    for r in records:
        print(f"  {r.id}: {r.sites} sites, {r.psnr_db:.1f} dB", flush=True)
    print(f"export {label}: tracing", flush=True)
    with torch.no_grad():
        traced = torch.jit.trace(module, inputs, check_trace=False)
    with atomic_path(out_path) as tmp, open(tmp, "wb") as file:  # see source/weights.py
        torch.jit.save(traced, file)
    write_digest(out_path, kind=kind, sizes=sizes, flexible=flexible or {}, options=options or {},
                 inputs=describe(stage.inputs, sizes, flexible or {}),
                 outputs=describe(stage.outputs, sizes, flexible or {}),
                 passes=[r.as_dict() for r in records], provenance=provenance,
                 seconds=round(time.time() - start, 1))
    print(f"export {label}: done in {time.time() - start:.0f} s -> {Path(out_path).name}", flush=True)
