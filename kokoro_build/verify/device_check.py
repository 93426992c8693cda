"""The device check kit: run on a Mac, beside an unzipped kokoro-build release.

    python3 device_check.py [RELEASE_FOLDER] [-o device_report.json] [--repeats N]

Needs only numpy and coremltools (macOS 14.4+ for MLComputePlan). For every artifact
(and every function of a multifunction package) listed in `device_check.json`, it
1. loads the package with the variant's compute units and predicts on the golden
   inputs (`<shape>.golden.npz`: fixed-seed inputs and the MIL evaluator's outputs);
2. compares each output with the golden one under the artifact's own parity gate;
3. compiles the package to `.mlmodelc` and reads MLComputePlan: each op's preferred
   device and estimated cost (the compiled model: MLComputePlan on an .mlpackage
   aborts the process, apple/coremltools #2757);
4. times the predictions;
and writes `device_report.json` (OS, chip, coremltools version), which
`kokoro-build ingest-device-report VARIANT FILE` puts beside the prediction.

This file is copied into every release as is: it imports nothing from kokoro_build.
The build reads its golden-vector reader and, on a Mac, its `compute_plan` (the
`compute-plan` analyzer, ane.py). Only its comparison and report code runs on Linux
(with an injected predictor).
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

FORMAT = "kokoro-build-device-report/1"
INDEX = "device_check.json"
INPUT, OUTPUT = "input.", "output."

Predictor = Callable[[dict], dict]
# pipeline.yaml's compute_units -> coremltools' ComputeUnit member
COMPUTE_UNITS = {"all": "ALL", "cpu_only": "CPU_ONLY", "cpu_and_gpu": "CPU_AND_GPU", "cpu_and_ne": "CPU_AND_NE"}


def psnr_db(expected: np.ndarray, got: np.ndarray) -> float:
    """Peak signal-to-noise ratio against the golden output, peak = its max |value|
    (the definition the build's gates use)."""
    expected, got = np.asarray(expected, np.float64), np.asarray(got, np.float64)
    error = float(np.mean((expected - got) ** 2))
    peak = float(np.max(np.abs(expected))) if expected.size else 0.0
    if error == 0.0:
        return float("inf")
    return 10.0 * np.log10(max(peak, 1e-12) ** 2 / error)


def read_golden(path: str | Path) -> tuple[dict, dict]:
    """(inputs, outputs) by name, from a `<shape>.golden.npz` (verify/golden.py writes it)."""
    with np.load(path, allow_pickle=False) as data:
        return ({k[len(INPUT):]: data[k] for k in data.files if k.startswith(INPUT)},
                {k[len(OUTPUT):]: data[k] for k in data.files if k.startswith(OUTPUT)})


def compare(expected: dict, got: dict, gates: dict) -> dict:
    """{output: {psnr_db, min_psnr_db, finite, passed}} for every gated output."""
    results = {}
    for name, minimum in gates.items():
        if name not in got:
            results[name] = {"psnr_db": None, "min_psnr_db": minimum, "finite": False, "passed": False,
                             "error": "missing from the prediction"}
            continue
        value = np.asarray(got[name]).reshape(np.shape(expected[name]))
        finite = bool(np.isfinite(value).all())
        psnr = psnr_db(expected[name], value) if finite else float("-inf")
        results[name] = {"psnr_db": psnr, "min_psnr_db": minimum, "finite": finite,
                         "passed": finite and psnr >= minimum}
    return results


def check_artifact(entry: dict, root: Path, predictor: Predictor, repeats: int = 5) -> dict:
    """One artifact: predict on its golden inputs, compare, time."""
    inputs, expected = read_golden(root / entry["golden"])
    got = predictor(inputs)
    outputs = compare(expected, got, entry["gates"])
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor(inputs)
        timings.append((time.perf_counter() - start) * 1000)
    return {"package": entry["package"], "function": entry.get("function"),
            "compute_units": entry["compute_units"], "outputs": outputs,
            "passed": all(o["passed"] for o in outputs.values()),
            "predict_ms": {"median": float(np.median(timings)) if timings else None, "runs": len(timings)}}


def coreml_predictor(package: Path, function: str | None, compute_units: str) -> Predictor:
    import coremltools as ct
    units = getattr(ct.ComputeUnit, COMPUTE_UNITS[compute_units])
    kwargs = {"function_name": function} if function else {}
    model = ct.models.MLModel(str(package), compute_units=units, **kwargs)
    return lambda inputs: model.predict(inputs)


def compute_plan(package: Path, function: str | None, compute_units: str) -> list[dict]:
    """Each op's preferred device and estimated cost, from the compiled model."""
    import coremltools as ct
    from coremltools.models.compute_plan import MLComputePlan
    units = getattr(ct.ComputeUnit, COMPUTE_UNITS[compute_units])
    compiled = ct.models.utils.compile_model(str(package))
    plan = MLComputePlan.load_from_path(path=compiled, compute_units=units)
    program = plan.model_structure.program
    ops = []
    for operation in program.functions[function or "main"].block.operations:
        if operation.operator_name == "const":
            continue
        usage = plan.get_compute_device_usage_for_mlprogram_operation(operation)
        cost = plan.get_estimated_cost_for_mlprogram_operation(operation)
        device = type(usage.preferred_compute_device).__name__ if usage else "none"
        ops.append({"op": operation.outputs[0].name if operation.outputs else "",
                    "type": operation.operator_name, "device": device_name(device),
                    "cost": cost.weight if cost else None})
    return ops


def device_name(core_ml_device: str) -> str:
    """MLNeuralEngineComputeDevice -> ane, MLGPUComputeDevice -> gpu, else cpu."""
    return "ane" if "NeuralEngine" in core_ml_device else "gpu" if "GPU" in core_ml_device else "cpu"


def machine() -> dict:
    chip = ""
    if platform.system() == "Darwin":
        chip = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                              text=True).stdout.strip()
    try:
        import coremltools
        version = coremltools.__version__
    except ImportError:
        version = None
    return {"os": platform.platform(), "mac_ver": platform.mac_ver()[0], "chip": chip,
            "python": platform.python_version(), "coremltools": version}


def run_kit(root: Path, predictor_for: Callable[[dict], Predictor], plan_for=None, repeats: int = 5) -> dict:
    """The device report. `predictor_for(entry)` and `plan_for(entry)` are injected, so
    the comparison and report code also runs off a Mac."""
    index = json.loads((root / INDEX).read_text())
    artifacts = []
    for entry in index["artifacts"]:
        result = check_artifact(entry, root, predictor_for(entry), repeats)
        if plan_for is not None:
            try:
                result["compute_plan"] = plan_for(entry)
            except Exception as error:  # noqa: BLE001 (the report says what failed, per artifact)
                result["compute_plan_error"] = f"{type(error).__name__}: {error}"
        artifacts.append(result)
    return {"format": FORMAT, "variant": index["variant"], "machine": machine(), "artifacts": artifacts,
            "passed": all(a["passed"] for a in artifacts)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check a kokoro-build release on this Mac.")
    parser.add_argument("root", nargs="?", default=str(Path(__file__).resolve().parent))
    parser.add_argument("-o", "--out", default="device_report.json")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if platform.system() != "Darwin":
        print("device_check.py runs Core ML: it needs macOS", file=sys.stderr)
        return 2
    root = Path(args.root)
    report = run_kit(root, lambda e: coreml_predictor(root / e["package"], e.get("function"), e["compute_units"]),
                     lambda e: compute_plan(root / e["package"], e.get("function"), e["compute_units"]),
                     args.repeats)
    Path(args.out).write_text(json.dumps(report, indent=2, default=float) + "\n")
    for a in report["artifacts"]:
        label = a["package"] + (f":{a['function']}" if a["function"] else "")
        worst = min((o["psnr_db"] for o in a["outputs"].values() if o["psnr_db"] is not None), default=None)
        print(f"{'pass' if a['passed'] else 'FAIL'}  {label}  worst {worst:.1f} dB  "
              f"{a['predict_ms']['median']:.1f} ms" if worst is not None else f"FAIL  {label}")
    print(f"wrote {args.out}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
