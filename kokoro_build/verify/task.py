"""doit action: check one built artifact with the MIL evaluator and the ANE analyzer.

The saved .mlpackage runs on fixed-seed example inputs and is compared, output by
output, with its torch twin (the traced module it was converted from). The result,
with the ANE report and the conversion report, goes to `<shape>.verify.json`; a
parity failure fails the task after writing it, so the report shows why.
"""
from __future__ import annotations

import json
import time
from functools import lru_cache
from pathlib import Path

from kokoro_build.schema.run import StageRun
from kokoro_build.store.package import write_json


# log_mel's 1024-sample window needs a longer signal than the tiny test model's buckets
MEL_MIN_SAMPLES = 4096


class VerifyError(RuntimeError):
    pass


def check_inputs(run: StageRun) -> tuple:
    """(stage, the sizes to check at, its fixed-seed example inputs) for one artifact."""
    from kokoro_build.model.prepare import check_sizes, prepare_stage

    prepared = prepare_stage(run, surgery=False)
    at = check_sizes(prepared.stage, run.sizes, run.flexible or {})
    return prepared.stage, at, prepared.inputs(at)


def output_check(stage, name: str, expected, got, thresholds: dict) -> dict:
    """One output against its twin: PSNR through the stage's parity view, gated; a
    value that isn't finite fails whatever its PSNR."""
    import torch

    from kokoro_build.model.surgery.registry import psnr_db

    psnr, max_abs = psnr_db(stage.parity_view(name, expected), stage.parity_view(name, got))
    need = threshold_for(thresholds, name)
    finite = bool(torch.isfinite(got).all())
    return {"psnr_db": psnr, "max_abs_err": max_abs, "min_psnr_db": need, "finite": finite,
            "passed": finite and psnr >= need}


def failures(outputs: dict) -> str:
    return "; ".join(f"{name} {o['psnr_db']:.1f} dB < {o['min_psnr_db']:g}" if o["finite"] else
                     f"{name} is not finite (NaN or inf)" for name, o in outputs.items() if not o["passed"])


def run_twin(traced: str, inputs) -> tuple[tuple, float]:
    """The traced torch twin's outputs on `inputs` (always a tuple), and its seconds."""
    import torch

    start = time.time()
    with torch.no_grad():
        reference = torch.jit.load(traced).eval()(*inputs)
    return (reference if isinstance(reference, (tuple, list)) else (reference,)), time.time() - start


@lru_cache(maxsize=1)
def _loaded(package: str, precision: str, digest: str):
    """The package's evaluator, loaded once for the verify tasks of its functions (doit
    runs them one after the other in one process; loading the vocoder took ~5 s of each).
    `digest` (the package's digest file) keys it: a rebuilt package is loaded anew."""
    from kokoro_build.verify.mil_eval import MilEvaluator
    return MilEvaluator(package, precision)


def load_evaluator(package: str, precision: str):
    from kokoro_build.store.package import digest_path
    digest = digest_path(package)
    return _loaded(str(Path(package).resolve()), precision, digest.read_text() if digest.is_file() else "")


def threshold_for(thresholds: dict, output: str) -> float:
    return thresholds.get("outputs", {}).get(output, thresholds["min_psnr_db"])


def lint_artifact(run: StageRun, program, function: str) -> list[dict]:
    """The device-risk lint's findings for one artifact (verify/lint.py), printed."""
    import coremltools

    from kokoro_build.verify.ane import flexible_input_names
    from kokoro_build.verify.lint import LintContext, lint_program
    findings = lint_program(program, LintContext(
        compute_units=run.compute_units, flexible=run.flexible or {},
        flexible_inputs=tuple(flexible_input_names(program.functions[function])),
        coremltools_version=coremltools.__version__))
    for finding in findings:
        print(f"  lint {finding['severity']}: {finding['id']}: {finding['on_device']} "
              f"({finding['source']}); at {', '.join(finding['where'][:3])}", flush=True)
    return findings


def verify_artifact(run: StageRun) -> None:
    """doit action. With `run.function`, the artifact is that function of a multifunction
    package, whose conversion report is the bucket's (`run.paths.report`)."""
    import torch

    from kokoro_build.verify.ane import analyze_package, analyze_program
    from kokoro_build.verify.audio import mel_correlation
    from kokoro_build.verify.golden import write_golden
    from kokoro_build.verify.lint import failing
    from kokoro_build.verify.memory import ActivationMeter, memory_floor

    package, function, out_path = run.paths.package, run.function, run.paths.verified
    label = f"{run.kind} {Path(package).name}" + (f":{function}" if function else "")
    function_name = function or "main"  # a single-function package's one function
    stage, at, inputs = check_inputs(run)
    names = [spec.name for spec in stage.inputs(at)]
    print(f"verify {label}: MIL evaluator ({run.precision}) at {at}", flush=True)
    start = time.time()
    evaluator = load_evaluator(package, run.precision)
    shapes: dict = {}
    meter = ActivationMeter()
    feed = {n: x.numpy() for n, x in zip(names, inputs)}
    evaluated = evaluator.run(feed, shapes=shapes, function=function_name, memory=meter)
    eval_seconds = time.time() - start
    write_golden(run.paths.golden, feed, evaluated)
    reference, twin_seconds = run_twin(run.paths.traced, inputs)
    outputs = {}
    for spec, expected in zip(stage.outputs(at), reference):
        got = torch.from_numpy(evaluated[spec.name])
        entry = output_check(stage, spec.name, expected, got, run.thresholds)
        if spec.name == "audio" and expected.numel() >= MEL_MIN_SAMPLES:
            entry["mel_correlation"] = mel_correlation(expected.reshape(-1).numpy(), got.reshape(-1).numpy())
        outputs[spec.name] = entry
        print(f"  {spec.name}: {entry['psnr_db']:.1f} dB (min {entry['min_psnr_db']:g}), "
              f"max |err| {entry['max_abs_err']:.3g}" + ("" if entry["finite"] else ", NOT FINITE"), flush=True)
    if run.analyzer == "static":
        ane = analyze_program(evaluator.program, function=function_name, shapes=shapes,
                              flexible=run.flexible, compute_units=run.compute_units)
    else:
        ane = analyze_package(package, run.analyzer, run.compute_units, function=function_name)
    lint = lint_artifact(run, evaluator.program, function_name)
    lint_failures = failing(lint, run.lint_fail_on or [])
    placement = ane["placement"]
    print(f"  ANE ({ane['analyzer']}): supported {ane['op_share']:.0%} of ops, {ane['flop_share']:.0%} of FLOPs; "
          f"{'predicted' if placement['predicted'] else 'measured'} on the ANE "
          f"{placement['ane_flop_share']:.0%} of FLOPs, {placement['segments']} segments", flush=True)
    convert_report = json.loads(Path(run.paths.report).read_text())
    if function:
        convert_report["function"] = function
    passed = all(o["passed"] for o in outputs.values()) and not lint_failures
    write_json(out_path, {
        **convert_report, "verify": {
            "passed": passed, "sizes": at, "outputs": outputs,
            "evaluator": {"precision": run.precision, "seconds": round(eval_seconds, 2)},
            "twin_seconds": round(twin_seconds, 2)},
        "ane": ane, "lint": lint, "memory": memory_floor(package, meter)})
    if lint_failures:
        raise VerifyError(f"{package}: verify.lint.fail_on: " + "; ".join(
            f"{f['id']} ({f['severity']}): {f['on_device']} ({f['source']})" for f in lint_failures)
            + f" (report: {out_path})")
    if not passed:
        raise VerifyError(f"{package}: the saved artifact doesn't match its torch twin: "
                          f"{failures(outputs)} (report: {out_path})")
    print(f"verify {label}: passed in {eval_seconds + twin_seconds:.0f} s", flush=True)
