"""Which ops of a program can run on the Neural Engine.

`static` (any OS): each op gets a verdict from the rules in ane_rules.py, with the
reason and its source (*supported*); FLOPs are estimated from shapes for conv,
conv_transpose, linear, matmul and lstm; placement.py adds the *predicted placement*. `compute-plan` (macOS only): the same report from Core ML's
MLComputePlan, marked `measured: true`. Both return the same schema.
"""
from __future__ import annotations

import math
import platform
from collections import Counter
from pathlib import Path

from kokoro_build.verify import ane_rules as rules
from kokoro_build.verify.placement import OpRow, predict_placement, supported_segments

ELIGIBLE = "ane"


def _dims(var, shapes: dict | None) -> list[int] | None:
    """A value's shape: from an evaluator run when given, else the declared one
    (None if a dimension is symbolic)."""
    if shapes is not None and var.name in shapes:
        return list(shapes[var.name])
    shape = getattr(var, "shape", None)
    if shape is None or not all(isinstance(d, int) or hasattr(d, "__index__") for d in shape):
        return None
    try:
        return [int(d) for d in shape]
    except TypeError:
        return None


def flexible_input_names(func) -> list[str]:
    """The function's inputs whose declared shape has a symbolic dimension."""
    return [name for name, var in func.inputs.items() if _dims(var, None) is None]


def estimate_flops(op, shapes: dict | None = None) -> int:
    """Multiply-adds x 2 for the compute-heavy ops; 0 for everything else."""
    def dims(name):
        var = op.inputs.get(name)
        return None if var is None else _dims(var, shapes)
    out = _dims(op.outputs[0], shapes)
    if op.op_type == "conv":
        w = dims("weight")
        return 2 * math.prod(w[1:]) * out[1] * math.prod(out[2:]) * out[0] if w and out else 0
    if op.op_type == "conv_transpose":
        w, x = dims("weight"), dims("x")
        return 2 * math.prod(w) * math.prod(x[2:]) * x[0] if w and x else 0
    if op.op_type == "linear":
        w = dims("weight")
        return 2 * math.prod(w) * (math.prod(out[:-1]) if out else 1) if w else 0
    if op.op_type == "matmul":
        x = dims("x")
        if not x or not out:
            return 0
        inner = x[-2] if op.inputs.get("transpose_x") is not None and \
            bool(op.inputs["transpose_x"].val) else x[-1]
        return 2 * math.prod(out) * inner
    if op.op_type == "lstm":
        x, w_ih, w_hh = dims("x"), dims("weight_ih"), dims("weight_hh")
        if not (x and w_ih and w_hh):
            return 0
        directions = 2 if op.inputs.get("weight_ih_back") is not None else 1
        return 2 * directions * x[0] * x[1] * (math.prod(w_ih) + math.prod(w_hh))
    return 0


def op_verdict(op) -> tuple[str, str, str]:
    """(verdict, reason, source) for one op."""
    from coremltools.converters.mil.mil import types

    verdict = rules.OP_RULES.get(op.op_type)
    if verdict is None:
        verdict = (ELIGIBLE, "reported to run on the ANE", rules.ANE_OPS_SOURCE) \
            if op.op_type in rules.ANE_OPS else rules.RULE_NO_RULE
    if verdict[0] != ELIGIBLE:
        return verdict
    outputs = [v.dtype for v in op.outputs]
    if any(dtype in (types.fp32, types.fp64) or
           (types.is_tensor(dtype) and dtype.get_primitive() in (types.fp32, types.fp64))
           for dtype in outputs):
        return rules.RULE_FP32
    dilations = op.inputs.get("dilations")
    if op.op_type in ("conv", "conv_transpose") and dilations is not None and \
            dilations.val is not None and any(int(d) > 1 for d in dilations.val):
        return rules.RULE_DILATION
    return verdict


def _compute_ops(function):
    """Ops that run at prediction time: not constants, not folded, not weight expansion."""
    for op in function.operations:
        if op.op_type == "const" or op.op_type.startswith("constexpr_"):
            continue
        if all(out.val is not None for out in op.outputs):
            continue  # folded to a constant when the model was loaded
        yield op


def analyze_program(program, function: str = "main", shapes: dict | None = None,
                    flexible: dict | None = None, compute_units: str = "cpu_and_ne") -> dict:
    """The static report for one function of a MIL Program: per-op eligibility
    (*supported*) and, on top, the *predicted placement* (placement.py). `flexible` is
    the artifact's {dim: {"range"|"enumerated": ..}} (its conversion report's)."""
    func = program.functions[function]
    ops, reasons, verdicts, rows = [], Counter(), Counter(), []
    total_flops = eligible_flops = unknown_flops = 0
    for op in _compute_ops(func):
        verdict, reason, source = op_verdict(op)
        flops = estimate_flops(op, shapes)
        rows.append(OpRow(op.op_type, verdict, flops, op.outputs[0].name if op.outputs else op.name))
        total_flops += flops
        verdicts[verdict] += 1
        if verdict == ELIGIBLE:
            eligible_flops += flops
        else:
            unknown_flops += flops if verdict == "unknown" else 0
            reasons[(verdict, op.op_type, reason, source)] += 1
            ops.append({"op": op.name, "type": op.op_type, "verdict": verdict, "reason": reason})
    count = sum(verdicts.values())
    flexible_inputs = flexible_input_names(func)
    warnings = []
    if flexible_inputs:
        warnings.append(f"flexible inputs {', '.join(flexible_inputs)}: {rules.RULE_DYNAMIC[1]} "
                        f"({rules.RULE_DYNAMIC[2]})")
    # what keeps a range-shaped function off the ANE even at its default shape: a
    # `shape` op left after loading (it computes with the runtime shape) or a recurrence
    blocker = next((op.op_type for op in _compute_ops(func) if op.op_type in rules.RANGE_BLOCKING_OPS), None)
    placement = predict_placement(rows, flexible, flexible_inputs, compute_units, blocker)
    return {
        "analyzer": "static", "measured": False, "function": function,
        "ops": count, "eligible_ops": verdicts[ELIGIBLE],
        "op_share": verdicts[ELIGIBLE] / count if count else 0.0,
        "flops": total_flops, "eligible_flops": eligible_flops,
        "flop_share": eligible_flops / total_flops if total_flops else 0.0,
        "unknown_flop_share": unknown_flops / total_flops if total_flops else 0.0,
        # segments of the supported ops as a device would cut them (unknowns join their neighbours)
        "segments": supported_segments(rows), "verdicts": dict(verdicts),
        "reasons": [{"verdict": v, "op_type": t, "count": n, "reason": r, "source": s}
                    for (v, t, r, s), n in reasons.most_common()],
        "not_eligible": ops, "warnings": warnings, "placement": placement,
    }


def analyze_package(package: str | Path, analyzer: str = "static", compute_units: str = "cpu_and_ne",
                    shapes: dict | None = None, function: str = "main", flexible: dict | None = None) -> dict:
    if analyzer == "compute-plan":
        return compute_plan_report(package, compute_units, function)
    from kokoro_build.verify.mil_eval import load_program
    return analyze_program(load_program(package), function=function, shapes=shapes,
                           flexible=flexible, compute_units=compute_units)


def compute_plan_report(package: str | Path, compute_units: str = "cpu_and_ne",
                        function: str = "main") -> dict:
    """The same schema from Core ML's own placement (MLComputePlan, macOS 14.4+), read
    by the device check kit's `compute_plan`. Untested here: this machine is Linux."""
    if platform.system() != "Darwin":
        raise RuntimeError("the compute-plan ANE analyzer needs macOS (MLComputePlan); "
                           "use `analyzer: static` on Linux")
    from kokoro_build.verify.device_check import compute_plan

    verdicts, weights, eligible_weight, segments, previous, ops = Counter(), 0.0, 0.0, 0, None, []
    for operation in compute_plan(Path(package), function, compute_units):
        verdict = ELIGIBLE if operation["device"] == "ane" else "cpu"
        weight = operation["cost"] or 0.0
        verdicts[verdict] += 1
        weights += weight
        eligible_weight += weight if verdict == ELIGIBLE else 0.0
        if verdict != ELIGIBLE:
            ops.append({"op": operation["op"], "type": operation["type"], "verdict": verdict,
                        "reason": operation["device"]})
        segments += (verdict == ELIGIBLE) != previous
        previous = verdict == ELIGIBLE
    count = sum(verdicts.values())
    placement = {"predicted": False, "device": ELIGIBLE if eligible_weight * 2 > weights else "cpu",
                 "ane_op_share": verdicts[ELIGIBLE] / count if count else 0.0,
                 "ane_flop_share": eligible_weight / weights if weights else 0.0,
                 "segments": segments, "rules": []}
    return {"analyzer": "compute-plan", "measured": True, "function": function, "ops": count,
            "eligible_ops": verdicts[ELIGIBLE],
            "op_share": verdicts[ELIGIBLE] / count if count else 0.0,
            # Core ML's estimated cost share stands in for FLOPs
            "flops": weights, "eligible_flops": eligible_weight,
            "flop_share": eligible_weight / weights if weights else 0.0, "unknown_flop_share": 0.0,
            "segments": segments, "verdicts": dict(verdicts), "reasons": [],
            "not_eligible": ops, "warnings": [], "placement": placement}
