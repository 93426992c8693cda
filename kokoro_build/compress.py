"""Weight compression of a converted package: a stage's `compress:` block
(compress_schema.py) mapped onto coremltools.optimize.coreml.

coremltools applies one method per call, so a block that mixes methods (say
palettize globally, linear for one op type) runs as two passes, each with the ops the
other method owns set to None. An op compressed by the first pass holds a constexpr,
not a const, so the second leaves it alone either way.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from .compress_schema import CompressConfig, LinearQuantization, Palettization, WeightMethod
from .package import atomic_path, tree_digest, write_digest, write_json

METHODS = {"palettize": Palettization, "linear": LinearQuantization}


def op_config(method, min_weight_elements: int):
    """One method -> coremltools' OpPalettizerConfig / OpLinearQuantizerConfig."""
    import coremltools.optimize.coreml as cto
    if isinstance(method, Palettization):
        extra = {"group_size": method.group_size} if method.group_size else {}
        return cto.OpPalettizerConfig(nbits=method.nbits, mode=method.mode, granularity=method.granularity,
                                      weight_threshold=min_weight_elements, **extra)
    extra = {"block_size": method.block_size} if method.block_size else {}
    return cto.OpLinearQuantizerConfig(mode=method.mode, dtype=method.dtype, granularity=method.granularity,
                                       weight_threshold=min_weight_elements, **extra)


def optimization_config(block: CompressConfig, kind: str):
    """The OptimizationConfig of one method's pass, or None if the block never uses it."""
    import coremltools.optimize.coreml as cto

    def mine(entry: WeightMethod | None):
        method = entry.method if entry is not None else None
        return op_config(method, block.min_weight_elements) if isinstance(method, METHODS[kind]) else None

    global_method = getattr(block, kind)
    op_types = {name: mine(entry) for name, entry in block.op_types.items()}
    op_names = {name: mine(entry) for name, entry in block.op_names.items()}
    if global_method is None and not any(op_types.values()) and not any(op_names.values()):
        return None
    return cto.OptimizationConfig(
        global_config=op_config(global_method, block.min_weight_elements) if global_method else None,
        op_type_configs=op_types or None, op_name_configs=op_names or None)


def compress_model(mlmodel, block: CompressConfig):
    import coremltools.optimize.coreml as cto
    metadata = dict(mlmodel.user_defined_metadata)
    for kind, run in (("palettize", cto.palettize_weights), ("linear", cto.linear_quantize_weights)):
        config = optimization_config(block, kind)
        if config is not None:
            mlmodel = run(mlmodel, config)
    for key, value in metadata.items():  # provenance survives the graph passes
        mlmodel.user_defined_metadata[key] = value
    mlmodel.user_defined_metadata["kokoro_build.compress"] = json.dumps(block.model_dump(mode="json"),
                                                                        sort_keys=True)
    return mlmodel


def compress_stage(converted_path: str, converted_report: str, block: dict, out_path: str,
                   report_path: str) -> None:
    """doit action: compressed .mlpackage, its report (the conversion's, updated), then its digest."""
    import coremltools as ct

    from .convert import op_census

    start = time.time()
    report = json.loads(Path(converted_report).read_text())
    label = f"{report['kind']} {report['sizes']}"
    config = CompressConfig.model_validate(block)
    print(f"compress {label}: {json.dumps(block, sort_keys=True)}", flush=True)
    mlmodel = compress_model(ct.models.MLModel(converted_path, skip_model_load=True), config)
    with atomic_path(out_path) as tmp:
        mlmodel.save(str(tmp))
    digest = tree_digest(out_path)
    report.update({
        "artifact": Path(out_path).name, "compress": block, "uncompressed_bytes": report["bytes"],
        "bytes": digest["bytes"], "sha256": digest["sha256"], "op_census": op_census(mlmodel),
        "seconds": {**report["seconds"], "compress": round(time.time() - start, 1)},
    })
    write_json(report_path, report)
    write_digest(out_path, digest, kind=report["kind"], sizes=report["sizes"], report=Path(report_path).name)
    print(f"compress {label}: {report['uncompressed_bytes'] / 1e6:.1f} -> {digest['bytes'] / 1e6:.1f} MB "
          f"in {time.time() - start:.0f} s", flush=True)
