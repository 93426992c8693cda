"""doit action: check one built artifact with the MIL evaluator and the ANE analyzer.

The saved .mlpackage runs on fixed-seed example inputs and is compared, output by
output, with its torch twin (the traced module it was converted from). The result,
with the ANE report and the conversion report, goes to `<shape>.verify.json`; a
parity failure fails the task after writing it, so the report shows why.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from kokoro_build.store.manifest import report_path
from kokoro_build.store.package import write_json


# log_mel's 1024-sample window needs a longer signal than the tiny test model's buckets
MEL_MIN_SAMPLES = 4096


class VerifyError(RuntimeError):
    pass


def run_sizes(stage, sizes: dict[str, int], flexible: dict) -> dict[str, int]:
    """Where to check an artifact: a bucket at its size; a range at the stage's parity
    size inside the range (also checking a shape other than the traced one); an
    enumerated dimension at its smallest listed size."""
    parity = stage.parity_sizes(sizes)
    chosen = dict(sizes)
    for dim, flex in flexible.items():
        if "range" in flex:
            low, high = flex["range"]
            chosen[dim] = min(max(parity.get(dim, sizes[dim]), low), high)
        else:
            chosen[dim] = min(flex["enumerated"])
    return chosen


def check_inputs(weights_path: str, kind: str, sizes: dict, passes: list, voice: str | None,
                 flexible: dict, options: dict) -> tuple:
    """(stage, the sizes to check at, its fixed-seed example inputs) for one artifact."""
    from kokoro_build.model.stages import get_stage_kind

    kind_class = get_stage_kind(kind)
    blob = kind_class.load_source(weights_path)
    stage = kind_class(blob["config"], passes, flexible=bool(flexible), options=options)
    at = run_sizes(stage, sizes, flexible)
    return stage, at, stage.example_inputs(at, blob["voices"].get(voice))


def run_twin(traced: str, inputs) -> tuple[tuple, float]:
    """The traced torch twin's outputs on `inputs` (always a tuple), and its seconds."""
    import torch

    start = time.time()
    with torch.no_grad():
        reference = torch.jit.load(traced).eval()(*inputs)
    return (reference if isinstance(reference, (tuple, list)) else (reference,)), time.time() - start


def threshold_for(thresholds: dict, output: str) -> float:
    return thresholds.get("outputs", {}).get(output, thresholds["min_psnr_db"])


def verify_artifact(weights_path: str, kind: str, sizes: dict, passes: list, voice: str,
                    flexible: dict, options: dict, traced: str, package: str, precision: str,
                    compute_units: str, thresholds: dict, analyzer: str, out_path: str,
                    function: str | None = None, report_json: str | None = None) -> None:
    """`function`: the artifact is that function of a multifunction package; its
    conversion report is `report_json` (beside the bucket's own package)."""
    import torch

    from kokoro_build.verify.audio import mel_correlation
    from kokoro_build.model.surgery.registry import psnr_db
    from kokoro_build.verify.ane import analyze_package, analyze_program
    from kokoro_build.verify.mil_eval import MilEvaluator

    label = f"{kind} {Path(package).name}" + (f":{function}" if function else "")
    function_name = function or "main"  # a single-function package's one function
    stage, at, inputs = check_inputs(weights_path, kind, sizes, passes, voice, flexible, options)
    names = [spec.name for spec in stage.inputs(at)]
    print(f"verify {label}: MIL evaluator ({precision}) at {at}", flush=True)
    start = time.time()
    evaluator = MilEvaluator(package, precision)
    shapes: dict = {}
    evaluated = evaluator.run({n: x.numpy() for n, x in zip(names, inputs)}, shapes=shapes,
                              function=function_name)
    eval_seconds = time.time() - start
    reference, twin_seconds = run_twin(traced, inputs)
    outputs = {}
    for spec, expected in zip(stage.outputs(at), reference):
        got = torch.from_numpy(evaluated[spec.name])
        psnr, max_abs = psnr_db(stage.parity_view(spec.name, expected), stage.parity_view(spec.name, got))
        need = threshold_for(thresholds, spec.name)
        entry = {"psnr_db": psnr, "max_abs_err": max_abs, "min_psnr_db": need,
                 "finite": bool(torch.isfinite(got).all()), "passed": psnr >= need}
        if spec.name == "audio" and expected.numel() >= MEL_MIN_SAMPLES:
            entry["mel_correlation"] = mel_correlation(expected.reshape(-1).numpy(), got.reshape(-1).numpy())
        outputs[spec.name] = entry
        print(f"  {spec.name}: {psnr:.1f} dB (min {need:g}), max |err| {max_abs:.3g}", flush=True)
    if analyzer == "static":
        ane = analyze_program(evaluator.program, function=function_name, shapes=shapes)
    else:
        ane = analyze_package(package, analyzer, compute_units, function=function_name)
    print(f"  ANE ({ane['analyzer']}): {ane['op_share']:.0%} of ops, {ane['flop_share']:.0%} of FLOPs "
          f"eligible, {ane['segments']} segments", flush=True)
    convert_report = json.loads(Path(report_json or report_path(package)).read_text())
    if function:
        convert_report["function"] = function
    passed = all(o["passed"] for o in outputs.values())
    write_json(out_path, {
        **convert_report, "verify": {
            "passed": passed, "sizes": at, "outputs": outputs,
            "evaluator": {"precision": precision, "seconds": round(eval_seconds, 2)},
            "twin_seconds": round(twin_seconds, 2)},
        "ane": ane})
    if not passed:
        failed = [f"{name} {o['psnr_db']:.1f} dB < {o['min_psnr_db']:g}"
                  for name, o in outputs.items() if not o["passed"]]
        raise VerifyError(f"{package}: the saved artifact doesn't match its torch twin: "
                          f"{'; '.join(failed)} (report: {out_path})")
    print(f"verify {label}: passed in {eval_seconds + twin_seconds:.0f} s", flush=True)
