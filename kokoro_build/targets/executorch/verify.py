"""doit action: run one `.pte` with the ExecuTorch runtime against its torch twin.

The same check as the Core ML verify step (verify/task.py): fixed-seed example inputs
at the artifact's check size (a flexible dimension at a size other than the traced
one), each output compared with the traced twin's by PSNR through the stage's
parity view. The result goes to `<stage>_<label>.verify.json`; a failure fails the
task after writing it, so the report shows why.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from kokoro_build.store.package import write_json
from kokoro_build.verify.task import VerifyError, check_inputs, run_twin, threshold_for


def verify_program(weights_path: str, kind: str, sizes: dict, passes: list, voice: str | None,
                   flexible: dict, options: dict, traced: str, program: str, report_json: str,
                   thresholds: dict, out_path: str) -> None:
    import torch

    from kokoro_build.model.surgery.registry import psnr_db
    from kokoro_build.runtime.executorch_program import Program

    stage, at, inputs = check_inputs(weights_path, kind, sizes, passes, voice, flexible, options)
    print(f"verify {Path(program).name}: ExecuTorch runtime at {at}", flush=True)
    start = time.time()
    got = Program(program).run(list(inputs))
    run_seconds = time.time() - start
    reference, twin_seconds = run_twin(traced, inputs)
    outputs = {}
    for spec, expected, value in zip(stage.outputs(at), reference, got):
        value = torch.from_numpy(value)
        if tuple(value.shape) != tuple(expected.shape):
            raise VerifyError(f"{program}: output {spec.name} has shape {tuple(value.shape)}, "
                              f"its twin {tuple(expected.shape)}")
        psnr, max_abs = psnr_db(stage.parity_view(spec.name, expected), stage.parity_view(spec.name, value))
        need = threshold_for(thresholds, spec.name)
        outputs[spec.name] = {"psnr_db": psnr, "max_abs_err": max_abs, "min_psnr_db": need,
                              "finite": bool(torch.isfinite(value).all()),
                              "passed": psnr >= need and bool(torch.isfinite(value).all())}
        print(f"  {spec.name}: {psnr:.1f} dB (min {need:g}), max |err| {max_abs:.3g}", flush=True)
    passed = all(o["passed"] for o in outputs.values())
    write_json(out_path, {
        **json.loads(Path(report_json).read_text()),
        "verify": {"passed": passed, "sizes": at, "outputs": outputs, "runtime": "executorch",
                   "seconds": round(run_seconds, 2), "twin_seconds": round(twin_seconds, 2)}})
    if not passed:
        failed = [f"{name} {o['psnr_db']:.1f} dB < {o['min_psnr_db']:g}" +
                  ("" if o["finite"] else " (not finite)") for name, o in outputs.items() if not o["passed"]]
        raise VerifyError(f"{program}: the ExecuTorch program doesn't match its torch twin: "
                          f"{'; '.join(failed)} (report: {out_path})")
    print(f"verify {Path(program).name}: passed ({run_seconds:.1f} s runtime, {twin_seconds:.1f} s twin)",
          flush=True)
