"""Predicted placement: where Core ML is expected to run a function's ops, on top of
the per-op eligibility (ane.py). Eligible is not placed: a function with a range-shaped
input is predicted off the Neural Engine however many of its ops the ANE supports.

Every rule applied is listed with its source (ane_rules.py), and the result is marked
`predicted`; only a compute plan run on a Mac (or an ingested device report) is a
measurement.
"""
from __future__ import annotations

from dataclasses import dataclass

from kokoro_build.verify import ane_rules as rules

ANE, CPU, GPU = "ane", "cpu", "gpu"


@dataclass(frozen=True)
class OpRow:
    """One compute op as the per-op analyzer saw it."""
    op_type: str
    verdict: str  # "ane" | "cpu" | "unknown"
    flops: int
    name: str = ""  # its first output's name: what a compute plan names it by


def _resolve_unknowns(verdicts: list[str]) -> list[str]:
    """An unknown op runs where its neighbours run (rules.UNKNOWN_IN_SEGMENTS): the
    device before it, or, at the start, the first known device after it."""
    resolved, previous = [], None
    for verdict in verdicts:
        if verdict == "unknown":
            resolved.append(previous)
        else:
            resolved.append(verdict)
            previous = verdict
    following = next((v for v in verdicts if v != "unknown"), CPU)
    return [following if v is None else v for v in resolved]


def _runs(devices: list[str]) -> list[tuple[str, int, int]]:
    """(device, start, end) of each maximal run of one device."""
    runs, start = [], 0
    for i in range(1, len(devices) + 1):
        if i == len(devices) or devices[i] != devices[start]:
            runs.append((devices[start], start, i))
            start = i
    return runs


def supported_segments(ops: list[OpRow]) -> int:
    """Runs of ANE / non-ANE ops among the supported verdicts, unknowns resolved."""
    return len(_runs(_resolve_unknowns([op.verdict for op in ops]))) if ops else 0


def _drop_small_islands(devices: list[str], flops: list[int]) -> tuple[list[str], int]:
    """ANE runs too small to be worth the copies, between non-ANE ops, go to the CPU."""
    total = sum(flops) or 1
    runs, dropped = _runs(devices), 0
    for index, (device, start, end) in enumerate(runs):
        between = 0 < index < len(runs) - 1
        small = end - start < rules.MIN_ISLAND_OPS and sum(flops[start:end]) / total < rules.MIN_ISLAND_FLOP_SHARE
        if device == ANE and between and small:
            devices[start:end] = [CPU] * (end - start)
            dropped += 1
    return devices, dropped


def _rule(rule_id: str, effect: str, source: str) -> dict:
    return {"id": rule_id, "effect": effect, "source": source}


def predict_placement(ops: list[OpRow], flexible: dict | None, flexible_inputs: list[str],
                      compute_units: str = "cpu_and_ne", range_blocker: str | None = None) -> dict:
    """The predicted device of every op, summarized. `flexible` is the artifact's
    {dim: {"range": ..} | {"enumerated": ..}}; `flexible_inputs` the function inputs
    whose shape is not fixed; `range_blocker`: an op type of the function that keeps a
    range-shaped function off the ANE even at its default shape (rules.RANGE_BLOCKING_OPS).

    A range-shaped function is predicted off the ANE at the shapes the chain runs it
    at, and, in `default_shape`, at the shape a compute plan is made for."""
    flexible = flexible or {}
    applied = [_rule("supported_is_not_placed", "per-op eligibility is not placement",
                     rules.FORUM_SUPPORTED_NOT_PLACED)]
    flops = [op.flops for op in ops]
    per_op = _per_op_devices(ops, applied)
    devices, default_shape = per_op, None
    modes = {next(iter(spec)) for spec in flexible.values()}
    if "range" in modes:
        gpu = compute_units == "all" and len(flexible_inputs) > 1
        off_device = GPU if gpu else CPU
        applied.append(_rule("range_shape_off_ane", f"a range-shaped input: every op predicted on the "
                             f"{off_device.upper()} at the shapes it runs at ({rules.RANGE_DISAGREEMENT})",
                             rules.RANGE_SOURCES))
        if gpu:
            applied.append(_rule("several_range_inputs_gpu", f"{len(flexible_inputs)} range-shaped inputs "
                                 "with the GPU allowed: predicted on the GPU", rules.SEVERAL_RANGE_INPUTS))
        devices = [off_device] * len(ops)
        # At its default shape (what MLComputePlan plans for) only a graph with a
        # blocking op stays off the ANE (rules.RANGE_DEFAULT_SHAPE).
        at_default = devices if range_blocker or gpu else per_op
        default_shape = {**_summary(at_default, flops), "blocker": range_blocker,
                         "rule": rules.RANGE_DEFAULT_SHAPE_BLOCKED if range_blocker else rules.RANGE_DEFAULT_SHAPE}
    elif "enumerated" in modes:
        if any(op.op_type == "layer_norm" for op in ops):
            devices = [CPU] * len(ops)
            applied.append(_rule("enumerated_layer_norm_off_ane", "layer_norm with EnumeratedShapes: "
                                 "predicted off the ANE", rules.ENUMERATED_LAYER_NORM))
        else:
            applied.append(_rule("enumerated_judged_per_shape", "judged at the analyzed shape as if fixed; "
                                 "other listed shapes may fall back", rules.ENUMERATED_SOURCES))
    return {
        "predicted": True, **_summary(devices, flops),
        "default_shape": default_shape,  # None: not range-shaped (the shapes it runs at are fixed)
        "unknown_ops": rules.UNKNOWN_IN_SEGMENTS,
        "rules": applied,
        # per op, for `kokoro-build ingest-device-report` to compare with a device's plan
        "op_devices": {op.name: device for op, device in zip(ops, devices) if op.name},
    }


def _per_op_devices(ops: list[OpRow], applied: list[dict]) -> list[str]:
    """Each op where its own verdict puts it, unknowns joined to their neighbours and
    small ANE islands moved to the CPU."""
    devices, dropped = _drop_small_islands(_resolve_unknowns([op.verdict for op in ops]), [op.flops for op in ops])
    if dropped:
        applied.append(_rule("small_ane_islands", f"{dropped} ANE run(s) of < {rules.MIN_ISLAND_OPS} ops "
                             f"and < {rules.MIN_ISLAND_FLOP_SHARE:.0%} of FLOPs between non-ANE ops: "
                             "predicted on the CPU", rules.HOLLANCE_ISLANDS))
    return devices


def _summary(devices: list[str], flops: list[int]) -> dict:
    """The main device (most FLOPs), ANE shares of ops and FLOPs, and device segments."""
    total = sum(flops)
    shares = {d: sum(f for f, x in zip(flops, devices) if x == d) for d in (ANE, CPU, GPU)}
    return {
        "device": max(shares, key=shares.get) if total else (devices[0] if devices else CPU),
        "ane_op_share": sum(d == ANE for d in devices) / len(devices) if devices else 0.0,
        "ane_flop_share": shares[ANE] / total if total else 0.0,
        "segments": len(_runs(devices)) if devices else 0,
    }
