"""Materialized packaging: one conversion, a fixed-shape function per bucket.

A materialized stage is traced once at its largest bucket (padded and masked, as a
bucket is) and converted once with a range over its buckets. coremltools'
`materialize_dynamic_shape_mlmodel` (9.0) then fixes that program's range at each
bucket, one function each, reruns its optimization passes per function, and saves
one package whose functions share the weights (iOS18 / macOS15). A device runs
fixed shapes, as separate buckets would: a range-shaped input leaves the Neural
Engine (apple/coremltools #2370, #1029). The build traces and converts once instead
of once per bucket (BENCHMARKS.md "Materialized buckets").
"""
from __future__ import annotations

import json
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from kokoro_build.schema.run import report_path
from kokoro_build.store.isolated import die_with_parent
from kokoro_build.store.package import atomic_path, digest_path, tree_digest, write_digest, write_json
from kokoro_build.store.reproducible import reset_mil_names
from kokoro_build.targets.coreml.export import specs_at_bucket
from kokoro_build.targets.coreml.multifunction import package_metadata, save_functions, stamped_copy


# Function-materializing processes at once (each loads the source program: the vocoder
# peaks near 1 GB); spawned, and killed with the build. A process costs seconds of
# imports, more than a small package's functions take (the islands, tests' tiny model).
MAX_WORKERS = 2
PARALLEL_MIN_BYTES = 10_000_000


def materialize_functions(plan: dict, out_path: str) -> None:
    """doit action. `plan`: {source: the converted (or compressed) range package,
    traced: its trace (whose digest describes each bucket's I/O), functions: {name:
    sizes}, default, reports: {name: path}}. Writes each function's report, then the
    package, then its digest (last)."""
    start = time.time()
    source_report = json.loads(report_path(plan["source"]).read_text())
    export_info = json.loads(digest_path(plan["traced"]).read_text())
    flexible = export_info["flexible"]
    shapes = {}
    for name, sizes in plan["functions"].items():
        inputs = specs_at_bucket(export_info["inputs"], flexible, sizes)
        outputs = specs_at_bucket(export_info["outputs"], flexible, sizes)
        shapes[name] = {spec["name"]: tuple(spec["shape"]) for spec in inputs}
        write_json(plan["reports"][name], {
            **source_report, "sizes": sizes, "flexible": {}, "inputs": inputs, "outputs": outputs,
            "function": name, "materialized_from": Path(plan["source"]).name})
    print(f"materialize {Path(out_path).name}: {', '.join(plan['functions'])} from "
          f"{Path(plan['source']).name}", flush=True)
    metadata = package_metadata(plan["source"])
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=Path(out_path).parent, prefix=".materialize-") as scratch:
        merged = Path(scratch) / "materialized.mlpackage"
        materialize(plan["source"], shapes, plan["default"], merged,
                    parallel=source_report["bytes"] >= PARALLEL_MIN_BYTES)
        with atomic_path(out_path) as tmp:
            stamped_copy(merged, tmp, {name: metadata for name in shapes}, plan["default"])
    digest = tree_digest(out_path)
    write_digest(out_path, digest, functions=list(plan["functions"]), default_function=plan["default"],
                 source_bytes=source_report["bytes"], seconds=round(time.time() - start, 1))
    print(f"materialize {Path(out_path).name}: {len(shapes)} functions, {digest['bytes'] / 1e6:.1f} MB "
          f"(the range package {source_report['bytes'] / 1e6:.1f} MB) in {time.time() - start:.0f} s", flush=True)


def materialize(source: str, shapes: dict[str, dict[str, tuple]], default: str, out: Path,
                parallel: bool = False) -> None:
    """`source`'s main function fixed at each {function: {input: shape}}, saved at `out`
    as one package (without the range function).

    Each function is materialized from a fresh load of the source and saved alone,
    then the packages are merged (save_multifunction deduplicates the weights).
    Materializing every function in one program, as coremltools'
    `materialize_dynamic_shape_mlmodel` does, shares constants between functions,
    and a pass that rewrites one in place rewrote it for all: the 600-frame function
    of a vocoder sliced its audio at the 300-frame function's end (measured here,
    coremltools 9.0). That function also keeps the range function beside the fixed
    ones."""
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".functions-") as scratch:
        parts = {name: Path(scratch) / f"{name}.mlpackage" for name in shapes}
        jobs = [(source, fixed, parts[name]) for name, fixed in shapes.items()]
        workers = min(len(jobs), os.cpu_count() or 1, MAX_WORKERS) if parallel else 1
        if workers <= 1:
            for job in jobs:
                _materialize_one(*job)
        else:  # the functions are independent: one per core (BENCHMARKS.md "The default")
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                     initializer=die_with_parent) as pool:
                for future in [pool.submit(_materialize_one, *job) for job in jobs]:
                    future.result()
        save_functions(parts, default, out)


def _materialize_one(source: str, fixed: dict[str, tuple], out: Path) -> None:
    """`source` with its inputs fixed at `fixed`, one function, saved at `out`."""
    import coremltools as ct
    from coremltools.converters.mil.converter import mil_convert
    from coremltools.converters.mil.frontend.milproto import load as milproto_to_pymil
    from coremltools.converters.mil.mil.passes.pass_pipeline import PassPipelineManager

    reset_mil_names()
    spec = ct.utils.load_spec(source)
    program = milproto_to_pymil.load(spec, spec.specificationVersion,
                                     str(Path(source) / "Data" / "com.apple.CoreML" / "weights"))
    _unique_names(program)
    pipeline = ct.PassPipeline.DEFAULT
    # The default pipeline casts fp32 programs to fp16 (what ct.convert's default
    # precision does). An fp32 stage stays fp32; an fp16 one has its casts already.
    pipeline.remove_passes(["common::add_fp16_cast"])
    pipeline.insert_pass(0, "common::materialize_symbolic_shape_program")
    pipeline.set_options("common::materialize_symbolic_shape_program", {
        "function_name_to_materialization_map": {"main": fixed}, "source_function_name": "main"})
    PassPipelineManager.apply_pipeline(program, pipeline)
    program.skip_all_passes = True
    mlmodel = mil_convert(program, convert_from="milinternal", convert_to="mlprogram",
                          specification_version=spec.specificationVersion,
                          compute_units=ct.ComputeUnit.CPU_ONLY, skip_model_load=True)
    mlmodel.save(str(out))


def _unique_names(program) -> int:
    """Rename values whose name another value already has. The materialize pass looks
    inputs up by name: the real duration stage (ane preset) converts with two
    `transpose_0_perm_0` constants, a 3- and a 4-element perm, and the pass then gave
    a 4-d transpose the 3-element one (coremltools 9.0, measured here)."""
    seen, renamed = set(), 0

    def walk(block):
        nonlocal renamed
        for op in block.operations:
            for var in op.outputs:
                if var.name in seen:
                    renamed += 1
                    var.set_name(f"{var.name}_dup{renamed}")
                seen.add(var.name)
            for inner in op.blocks:
                walk(inner)

    for function in program.functions.values():
        seen.update(function.inputs)
        walk(function)
    return renamed
