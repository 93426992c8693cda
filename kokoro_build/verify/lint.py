"""Device-risk lint: settings and ops that public reports say fail on a device although
the package converts, loads and verifies on Linux.

Each check reads the MIL program (so it works on any package, not only ours) plus the
artifact's conversion facts; the rules, with their sources, are data in
schema/lint_catalog.py. A finding is a warning by default;
`verify.lint.fail_on` (rule ids or severities) makes it fail the verify task.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from kokoro_build.schema.lint_catalog import LINT_RULES, MAX_ENUMERATED_SHAPES

ANE_UNITS = ("cpu_and_ne", "all")
GPU_UNITS = ("cpu_and_gpu", "all")


@dataclass(frozen=True)
class LintContext:
    """What a rule may read besides the program."""
    compute_units: str = "cpu_and_ne"
    flexible: dict = field(default_factory=dict)  # dim -> {"range": ..} | {"enumerated": ..}
    flexible_inputs: tuple[str, ...] = ()         # function inputs whose shape isn't fixed
    coremltools_version: str = ""


def _ops(program, op_type: str):
    for func in program.functions.values():
        for op in func.operations:
            if op.op_type == op_type:
                yield op


def _four_bit_palettes(program, ctx: LintContext) -> list[str]:
    if not ctx.coremltools_version.startswith("9.0"):
        return []
    found = []
    for op in _ops(program, "constexpr_lut_to_dense"):
        lut = op.inputs["lut"].val
        # iOS16: lut [entries]; iOS18: lut [..., entries, vector size]
        entries = lut.shape[-2] if lut.ndim >= 2 else lut.shape[-1]
        if entries == 16:
            found.append(op.name)
    return found[:5] + ([f"... {len(found)} in all"] if len(found) > 5 else [])


def _per_block_int8_on_ane(program, ctx: LintContext) -> list[str]:
    if ctx.compute_units not in ANE_UNITS:
        return []
    found = []
    for op in _ops(program, "constexpr_blockwise_shift_scale"):
        data, scale = op.inputs["data"].val, op.inputs["scale"].val
        if data is None or scale is None or data.dtype.itemsize != 1:
            continue
        # per-block: some axis is split into several blocks of more than one element
        if any(1 < s < d for s, d in zip(scale.shape, data.shape)):
            found.append(op.name)
    return found[:5] + ([f"... {len(found)} in all"] if len(found) > 5 else [])


def _multifunction(program, ctx: LintContext) -> list[str]:
    names = list(program.functions)
    return [f"{len(names)} functions: {', '.join(names)}"] if len(names) > 1 else []


def _enumerated_count(program, ctx: LintContext) -> list[str]:
    return [f"{dim}: {len(spec['enumerated'])} shapes" for dim, spec in ctx.flexible.items()
            if "enumerated" in spec and len(spec["enumerated"]) > MAX_ENUMERATED_SHAPES]


def _enumerated_several_inputs(program, ctx: LintContext) -> list[str]:
    enumerated = any("enumerated" in spec for spec in ctx.flexible.values())
    return [f"inputs {', '.join(ctx.flexible_inputs)}"] if enumerated and len(ctx.flexible_inputs) > 1 else []


def _gpu_rnn(program, ctx: LintContext) -> list[str]:
    if ctx.compute_units not in GPU_UNITS:
        return []
    return [op.name for kind in ("lstm", "gru", "rnn") for op in _ops(program, kind)]


def _range_streams(program, ctx: LintContext) -> list[str]:
    if ctx.compute_units not in GPU_UNITS:  # the effect is ops moving to the GPU
        return []
    ranged = any("range" in spec for spec in ctx.flexible.values())
    return [f"inputs {', '.join(ctx.flexible_inputs)}"] if ranged and len(ctx.flexible_inputs) > 1 else []


def _fp32_min_constants(program, ctx: LintContext) -> list[str]:
    """Constants at about -3.4e38 (torch.finfo(float32).min), or already cast to fp16's
    -inf: coremltools treats |value| >= 1e38 as infinity (PR #2669)."""
    found = []
    for op in _ops(program, "const"):
        value = np.asarray(op.outputs[0].val) if op.outputs[0].val is not None else None
        if value is not None and value.dtype.kind == "f" and value.size and float(np.nanmin(value)) <= -1e38:  # compared as a Python float: -1e38 overflows fp16
            found.append(op.name)
    return found


CHECKS: dict[str, Callable] = {
    "palette_4bit_coremltools_9_0": _four_bit_palettes,
    "per_block_int8_on_ane": _per_block_int8_on_ane,
    "multifunction_load": _multifunction,
    "too_many_enumerated_shapes": _enumerated_count,
    "enumerated_shapes_on_several_inputs": _enumerated_several_inputs,
    "rnn_on_gpu": _gpu_rnn,
    "range_streams_on_gpu": _range_streams,
    "fp32_min_constant": _fp32_min_constants,
}
assert CHECKS.keys() == LINT_RULES.keys(), "every rule in schema/lint_catalog.py needs its check here"


def lint_program(program, ctx: LintContext) -> list[dict]:
    """Every finding of every rule: id, severity, where, what happens on device, source."""
    findings = []
    for rule_id, check in CHECKS.items():
        where = check(program, ctx)
        if where:
            rule = LINT_RULES[rule_id]
            findings.append({"id": rule_id, "severity": rule.severity, "where": where,
                             "on_device": rule.on_device, "source": rule.source})
    return findings


def failing(findings: list[dict], fail_on: list[str]) -> list[dict]:
    """The findings `verify.lint.fail_on` (ids or severities) turns into failures."""
    return [f for f in findings if f["id"] in fail_on or f["severity"] in fail_on]
