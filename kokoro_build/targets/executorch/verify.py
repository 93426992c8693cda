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
from kokoro_build.schema.run import StageRun
from kokoro_build.verify.task import VerifyError, check_inputs, failures, output_check, run_twin


def verify_program(run: StageRun) -> None:
    import torch

    from kokoro_build.runtime.executorch_program import Program

    program, out_path = run.paths.program, run.paths.program_verified
    stage, at, inputs = check_inputs(run)
    print(f"verify {Path(program).name}: ExecuTorch runtime at {at}", flush=True)
    start = time.time()
    got = Program(program).run(list(inputs))
    run_seconds = time.time() - start
    reference, twin_seconds = run_twin(run.paths.traced, inputs)
    outputs = {}
    for spec, expected, value in zip(stage.outputs(at), reference, got):
        value = torch.from_numpy(value)
        if tuple(value.shape) != tuple(expected.shape):
            raise VerifyError(f"{program}: output {spec.name} has shape {tuple(value.shape)}, "
                              f"its twin {tuple(expected.shape)}")
        entry = outputs[spec.name] = output_check(stage, spec.name, expected, value, run.executorch_thresholds)
        print(f"  {spec.name}: {entry['psnr_db']:.1f} dB (min {entry['min_psnr_db']:g}), "
              f"max |err| {entry['max_abs_err']:.3g}", flush=True)
    passed = all(o["passed"] for o in outputs.values())
    write_json(out_path, {
        **json.loads(Path(run.paths.program_report).read_text()),
        "verify": {"passed": passed, "sizes": at, "outputs": outputs, "runtime": "executorch",
                   "seconds": round(run_seconds, 2), "twin_seconds": round(twin_seconds, 2)}})
    if not passed:
        raise VerifyError(f"{program}: the ExecuTorch program doesn't match its torch twin: "
                          f"{failures(outputs)} (report: {out_path})")
    print(f"verify {Path(program).name}: passed ({run_seconds:.1f} s runtime, {twin_seconds:.1f} s twin)",
          flush=True)
