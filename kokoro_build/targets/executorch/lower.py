"""One stage at one shape -> an ExecuTorch program: torch.export, XNNPACK, `.pte`.

The module is the one the Core ML path traces (model/prepare.py: the same weights,
surgery passes and example inputs), so the `.pte` and the `.mlpackage` are checked
against the same torch twin. A flexible dimension becomes a `torch.export.Dim` over
its sizes; buckets are exported one program each, as for Core ML.
"""
from __future__ import annotations

import re
import time
import warnings
from collections import Counter
from pathlib import Path

from kokoro_build.schema.run import StageRun
from kokoro_build.store.package import atomic_path, write_digest, write_json

# Applied after the stage's own passes, for ExecuTorch only (surgery/passes/recurrent_scan.py).
EXECUTORCH_PASSES = [["executorch::recurrent_scan", {}]]
# Imported by the forkserver that runs the lowering steps (store/isolated.py): 6 s of
# imports that each `.pte` step would otherwise pay in its fresh child.
FORKSERVER_PRELOAD = ("executorch.exir", "executorch.backends.xnnpack.partition.xnnpack_partitioner")
# Graph nodes that are bookkeeping, not kernels: not counted as ops.
BOOKKEEPING = ("getitem", "executorch_call_delegate", "aten.sym_size.int")


def dynamic_shapes(stage, sizes: dict[str, int], flexible: dict) -> tuple | None:
    """For each input, {axis: Dim} where a flexible dimension moves it (None if none):
    the axes are those whose size changes when the dimension does."""
    import torch

    if not flexible:
        return None
    at = stage.inputs(sizes)
    per_input: list[dict] = [{} for _ in at]
    for dim, flex in flexible.items():
        values = flex.get("range") or flex["enumerated"]
        bound = torch.export.Dim(dim, min=min(values), max=max(values))
        other = stage.inputs({**sizes, dim: min(values) if sizes[dim] != min(values) else max(values)})
        for i, (a, b) in enumerate(zip(at, other)):
            for axis, (x, y) in enumerate(zip(a.shape, b.shape)):
                if x != y:
                    if x != sizes[dim]:
                        # a derived size (2*frames) needs a Dim expression; none of our
                        # stages' flexible inputs have one, so say so if one appears
                        raise ValueError(f"input {a.name}: axis {axis} moves with {dim} but isn't "
                                         f"equal to it ({x} at {dim}={sizes[dim]})")
                    per_input[i][axis] = bound
    return tuple(d or None for d in per_input)


def op_census(edge_program) -> dict:
    """Which ops XNNPACK took (inside its delegate calls) and which stay on ExecuTorch's
    portable kernels, by op name, from the lowered edge program. A loop's body
    (`scan`, from executorch::recurrent_scan) is counted too, as `scan/<op>`."""
    delegated, portable = Counter(), Counter()
    delegates = _count_ops(edge_program.graph_module, delegated, portable, prefix="")
    total = sum(delegated.values()) + sum(portable.values())
    return {"delegate_calls": delegates, "delegated_ops": sum(delegated.values()),
            "portable_ops": sum(portable.values()),
            "delegated_share": round(sum(delegated.values()) / total, 4) if total else 0.0,
            "delegated": dict(sorted(delegated.items())), "portable": dict(sorted(portable.items()))}


def _count_ops(graph_module, delegated: Counter, portable: Counter, prefix: str) -> int:
    """Count `graph_module`'s ops into the two counters; return its delegate calls."""
    import torch

    delegates = 0
    for node in graph_module.graph.nodes:
        if node.op != "call_function":
            continue
        name = _op_name(node.target)
        if name == "executorch_call_delegate":
            delegates += 1
            lowered = getattr(graph_module, node.args[0].target)
            for inner in lowered.original_module.graph.nodes:
                if inner.op == "call_function" and _op_name(inner.target) not in BOOKKEEPING:
                    delegated[prefix + _op_name(inner.target)] += 1
            continue
        if name not in BOOKKEEPING:
            portable[prefix + name] += 1
        for arg in node.args:  # a higher-order op's body graphs
            body = getattr(graph_module, arg.target, None) if getattr(arg, "op", None) == "get_attr" else None
            if isinstance(body, torch.fx.GraphModule):
                delegates += _count_ops(body, delegated, portable, prefix=f"{prefix}{name}/")
    return delegates


def _op_name(target) -> str:
    """An edge op by its overload name without `.default` ("aten.convolution"), a
    Python builtin (getitem) or higher-order op (executorch_call_delegate) by its name."""
    text = str(target)
    edge = re.match(r"<EdgeOpOverload: ([^>]+)>", text)
    if edge:
        text = edge.group(1)
    elif not isinstance(target, str) and getattr(target, "__name__", None) and "." not in text:
        text = target.__name__
    return text.removesuffix(".default")


def lower_module(module, inputs: tuple, dynamic: tuple | None = None, strict: bool = False):
    """(the .pte bytes, op census) of `module` run on `inputs`."""
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    with torch.no_grad(), warnings.catch_warnings():
        # torch's own pytree deprecation, once per node: hundreds of lines per stage
        warnings.filterwarnings("ignore", category=FutureWarning)
        exported = torch.export.export(module, tuple(inputs), dynamic_shapes=dynamic, strict=strict)
        edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
    census = op_census(edge.exported_program())
    return edge.to_executorch().buffer, census


def lower_stage(run: StageRun) -> None:
    """doit action: write `<stage>_<label>.pte`, its digest and its report (the op census)."""
    from kokoro_build.model.prepare import prepare_stage
    from kokoro_build.targets.coreml.export import describe

    start = time.time()
    label, sizes, flexible = f"{run.kind} {run.sizes}", run.sizes, run.flexible or {}
    run = run.model_copy(update={"passes": [*run.passes, *EXECUTORCH_PASSES]})
    print(f"executorch {label}: surgery ({len(run.passes)} passes)", flush=True)
    prepared = prepare_stage(run)
    for r in prepared.records:
        print(f"  {r.id}: {r.sites} sites, {r.psnr_db:.1f} dB", flush=True)
    stage = prepared.stage
    dynamic = dynamic_shapes(stage, sizes, flexible)
    print(f"executorch {label}: torch.export ({run.executorch_export}"
          f"{', dynamic ' + ', '.join(flexible) if flexible else ''}) + XNNPACK", flush=True)
    program, census = lower_module(prepared.module, prepared.inputs(sizes), dynamic,
                                   strict=run.executorch_export == "strict")
    out_path = run.paths.program
    with atomic_path(out_path) as tmp:
        tmp.write_bytes(program)
    report = {"kind": run.kind, "sizes": sizes, "flexible": flexible, "export": run.executorch_export,
              "backend": "xnnpack", "executorch": _version(),
              "inputs": describe(stage.inputs, sizes, flexible),
              "outputs": describe(stage.outputs, sizes, flexible),
              "bytes": len(program), "ops": census, "seconds": round(time.time() - start, 1)}
    write_json(run.paths.program_report, report)
    write_digest(out_path, kind=run.kind, sizes=sizes, passes=[r.as_dict() for r in prepared.records],
                 provenance=prepared.provenance)
    common = sorted(census["portable"].items(), key=lambda kv: -kv[1])[:4]
    print(f"executorch {label}: {len(program) / 1e6:.2f} MB, {census['delegated_ops']} ops in "
          f"{census['delegate_calls']} XNNPACK calls, {census['portable_ops']} on portable kernels "
          f"(most: {', '.join(f'{name} {n}' for name, n in common) or 'none'}) in "
          f"{time.time() - start:.0f} s -> {Path(out_path).name}", flush=True)


def _version() -> str:
    from importlib.metadata import version
    return version("executorch")
