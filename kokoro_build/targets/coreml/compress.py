"""Weight compression of a converted package: a stage's `compress:` block
(compress_schema.py) mapped onto coremltools.optimize.coreml.

coremltools applies one method per call, so a block that mixes methods (say
palettize globally, linear for one op type) runs as two passes, each with the ops the
other method owns set to None. An op compressed by the first pass holds a constexpr,
not a const, so the second leaves it alone either way.

`activations:` (W8A8's A8) runs first, on the float program whose variable names
the calibration ranges (calibrate.py) are keyed by: coremltools' own activation
graph passes, fed our ranges instead of its macOS-only calibration. Chosen over
post-training quantization of the torch twin (coremltools.optimize.torch) because
the ranges are then measured on the exact fp16 program that ships, by the same
evaluator that verifies it, and the passes need no retrace or reconversion.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from kokoro_build.schema.compress_schema import (ActivationQuantization, CompressConfig, LinearQuantization, Palettization,
                              WeightMethod)
from kokoro_build.schema.run import StageRun
from kokoro_build.targets.coreml.sensitive_palettes import (SENSITIVE_KMEANS, Sensitivities, SensitiveWeights,
                                                            SensitivityError)
from kokoro_build.store.package import atomic_path, tree_digest, write_digest, write_json
from kokoro_build.store.reproducible import normalize_package, reset_mil_names

METHODS = {"palettize": Palettization, "linear": LinearQuantization}
# The ops coremltools 9.0 puts quantize -> dequantize around (insert_prefix_quantize_
# dequantize_pair.SUPPORTED_OP_TYPES), and the activations its suffix pass takes as
# part of the pattern (insert_suffix_quantize_dequantize_pair._allowed_activations).
A8_OPS = ("conv", "linear", "add", "avg_pool", "max_pool")
A8_FUSED_ACTIVATIONS = ("leaky_relu", "tanh", "scaled_tanh", "sigmoid", "hard_sigmoid", "relu", "relu6")
A8_PASSES = ("compression::insert_prefix_quantize_dequantize_pair",
             "compression::insert_suffix_quantize_dequantize_pair",
             "common::dequantize_quantize_pair_elimination")


def op_config(method, min_weight_elements: int, sensitive: SensitiveWeights | None = None,
              op_name: str | None = None):
    """One method -> coremltools' OpPalettizerConfig / OpLinearQuantizerConfig.
    `sensitive`: the package's consts and sensitivities, for sensitive_kmeans palettes
    (of the op `op_name` only, when the config is an op_names entry)."""
    import coremltools.optimize.coreml as cto
    if isinstance(method, Palettization) and method.mode == SENSITIVE_KMEANS:
        if sensitive is None:
            raise SensitivityError("palettize mode sensitive_kmeans: no sensitivities were given")
        return sensitive.palettizer_config(method, min_weight_elements, op_name)
    if isinstance(method, Palettization):
        extra = {"group_size": method.group_size} if method.group_size else {}
        return cto.OpPalettizerConfig(nbits=method.nbits, mode=method.mode, granularity=method.granularity,
                                      weight_threshold=min_weight_elements, **extra)
    extra = {"block_size": method.block_size} if method.block_size else {}
    return cto.OpLinearQuantizerConfig(mode=method.mode, dtype=method.dtype, granularity=method.granularity,
                                       weight_threshold=min_weight_elements, **extra)


def optimization_config(block: CompressConfig, kind: str, sensitive: SensitiveWeights | None = None):
    """The OptimizationConfig of one method's pass, or None if the block never uses it."""
    import coremltools.optimize.coreml as cto

    def config(method, op_name=None):
        return op_config(method, block.min_weight_elements, sensitive, op_name)

    def mine(entry: WeightMethod | None, op_name=None):
        method = entry.method if entry is not None else None
        return config(method, op_name) if isinstance(method, METHODS[kind]) else None

    global_method = getattr(block, kind)
    op_types = {name: mine(entry) for name, entry in block.op_types.items()}
    op_names = {name: mine(entry, name) for name, entry in block.op_names.items()}
    if global_method is None and not any(op_types.values()) and not any(op_names.values()):
        return None
    return cto.OptimizationConfig(
        global_config=config(global_method) if global_method else None,
        op_type_configs=op_types or None, op_name_configs=op_names or None)


def activation_skips(program, ranges: dict) -> list[str]:
    """Names of the A8 ops the activation passes must leave alone: those reading or
    writing a tensor that has no calibrated range. coremltools 9.0 does not check:
    it would quantize an integer add (duration's token ids: `cast -> add 178`) or stop
    with a KeyError."""
    from kokoro_build.verify.mil_eval import _walk

    def is_const(var) -> bool:
        return var.op is not None and var.op.op_type == "const"

    skips = []
    for function in program.functions.values():
        for op in _walk(function):
            if op.op_type not in A8_OPS or is_const(op.inputs["x"]):
                continue  # the passes leave ops with a constant x alone themselves
            needed = [op.inputs["x"], op.outputs[0]]
            if op.op_type == "add" and not is_const(op.inputs["y"]):
                needed.append(op.inputs["y"])
            children = op.outputs[0].child_ops
            if children and children[0].op_type in A8_FUSED_ACTIVATIONS:
                needed.append(children[0].outputs[0])
            if any(var.name not in ranges for var in needed):
                skips.append(op.name)
    return skips


def quantize_activations(mlmodel, activations: ActivationQuantization, ranges: dict, program):
    """quantize -> dequantize pairs with calibrated scales (A8), through coremltools'
    passes; `program` is the model's MIL program (to find the ops to skip)."""
    import coremltools as ct
    import coremltools.optimize.coreml as cto
    from coremltools.converters.mil.frontend.milproto import load as milproto
    from coremltools.converters.mil.mil.passes.graph_pass import PassOption
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY
    from coremltools.models.utils import _apply_graph_pass

    op_config = cto.OpLinearQuantizerConfig(mode=activations.mode, dtype=activations.dtype)
    config = cto.OptimizationConfig(
        global_config=op_config,
        op_type_configs={op_type: None for op_type in A8_OPS if op_type not in activations.op_types},
        op_name_configs={name: None for name in activation_skips(program, ranges)})
    passes = []
    for name in A8_PASSES:
        graph_pass = type(PASS_REGISTRY[name])()  # a fresh instance: the registry's are shared
        if name.startswith("compression::"):
            graph_pass.set_options([PassOption("config", config), PassOption("activation_stats", ranges)])
        passes.append(graph_pass)
    return _apply_graph_pass(mlmodel, passes, spec_version=ct.target.iOS17, pymil_load_func=milproto.load,
                             skip_model_load=True)


def compress_model(mlmodel, block: CompressConfig, ranges: dict | None = None, program=None,
                   sensitive: SensitiveWeights | None = None):
    """`ranges` ({var: {rmin, rmax}}) and `program` (the model's MIL program) are
    needed when the block quantizes activations; `sensitive` when it has
    sensitive_kmeans palettes."""
    import coremltools.optimize.coreml as cto
    reset_mil_names()  # the ops the passes add are named by process-wide counters
    metadata = dict(mlmodel.user_defined_metadata)
    if block.activations is not None:
        if ranges is None or program is None:
            raise ValueError("activations: quantizing activations needs calibrated ranges")
        mlmodel = quantize_activations(mlmodel, block.activations, ranges, program)
    for kind, run in (("palettize", cto.palettize_weights), ("linear", cto.linear_quantize_weights)):
        config = optimization_config(block, kind, sensitive)
        if config is not None:
            mlmodel = run(mlmodel, config)
    for key, value in metadata.items():  # provenance survives the graph passes
        mlmodel.user_defined_metadata[key] = value
    mlmodel.user_defined_metadata["kokoro_build.targets.coreml.compress"] = json.dumps(block.model_dump(mode="json"),
                                                                        sort_keys=True)
    return mlmodel


def compress_stage(run: StageRun) -> None:
    """doit action: compressed .mlpackage, its report (the conversion's, updated), then
    its digest. For A8, the activation ranges come from `run.paths.calibration`."""
    import coremltools as ct

    from kokoro_build.targets.coreml.convert import op_census

    converted_path, out_path, report_path = run.paths.converted, run.paths.bucket, run.paths.report
    block = run.compress
    calibration = (run.paths.calibration, run.paths.calibration_key) if run.paths.calibration else None
    start = time.time()
    report = json.loads(Path(run.paths.converted_report).read_text())
    label = f"{report['kind']} {report['sizes']}"
    config = CompressConfig.model_validate(block)
    print(f"compress {label}: {json.dumps(block, sort_keys=True)}", flush=True)
    ranges = program = sensitive = None
    if config.activations is not None or config.uses_mode(SENSITIVE_KMEANS) or config.op_names:
        from kokoro_build.verify.mil_eval import load_program
        program = load_program(converted_path)  # once, for whichever of the three needs it
    if config.activations is not None:
        from kokoro_build.targets.coreml.calibrate import load_ranges
        if calibration is None:
            raise ValueError(f"compress {label}: activations: no calibration file given")
        ranges = load_ranges(*calibration)
    if config.uses_mode(SENSITIVE_KMEANS):
        sensitive = _sensitive_weights(run.paths.sensitivity, program, label)
    _check_op_names(config, program, converted_path, label)
    mlmodel = compress_model(ct.models.MLModel(converted_path, skip_model_load=True), config, ranges, program,
                             sensitive)
    with atomic_path(out_path) as tmp:
        mlmodel.save(str(tmp))
        normalize_package(tmp)
    digest = tree_digest(out_path)
    report.update({
        "artifact": Path(out_path).name, "compress": block, "uncompressed_bytes": report["bytes"],
        "bytes": digest["bytes"], "sha256": digest["sha256"], "op_census": op_census(mlmodel),
        "seconds": {**report["seconds"], "compress": round(time.time() - start, 1)},
    })
    if config.activations is not None:
        report["activations"] = {"quantized_tensors": report["op_census"].get("quantize", 0),
                                 "calibration": Path(calibration[0]).name}
    if sensitive is not None:
        report["sensitive_kmeans"] = sensitive.summary()
    write_json(report_path, report)
    write_digest(out_path, digest, kind=report["kind"], sizes=report["sizes"], report=Path(report_path).name)
    print(f"compress {label}: {report['uncompressed_bytes'] / 1e6:.1f} -> {digest['bytes'] / 1e6:.1f} MB "
          f"in {time.time() - start:.0f} s", flush=True)


def _sensitive_weights(sensitivity_path: str | None, program, label: str) -> SensitiveWeights:
    from kokoro_build.verify.mil_eval import _walk
    if sensitivity_path is None:
        raise SensitivityError(f"compress {label}: palettize mode sensitive_kmeans: no sensitivity file given")
    consts = [op for function in program.functions.values() for op in _walk(function) if op.op_type == "const"]
    return SensitiveWeights(consts, Sensitivities(sensitivity_path))


def _check_op_names(config: CompressConfig, program, package: str, label: str) -> None:
    """Every `op_names` key must name an op of the package (a weight's const, as tune
    writes them, or the op reading it): coremltools ignores a name it doesn't find, so
    a setting whose op was renamed (a surgery pass or a coremltools update renumbers
    ops) would silently fall back to the global one."""
    if not config.op_names:
        return
    from kokoro_build.verify.mil_eval import _walk

    names = {op.name for function in program.functions.values() for op in _walk(function)}
    unknown = sorted(set(config.op_names) - names)
    if unknown:
        raise ValueError(f"compress {label}: op_names: {', '.join(unknown[:5])}"
                         f"{f' and {len(unknown) - 5} more' if len(unknown) > 5 else ''} "
                         f"{'is not an op' if len(unknown) == 1 else 'are not ops'} of "
                         f"{Path(package).name} (renamed by a change to the graph? re-run kokoro-build tune)")
