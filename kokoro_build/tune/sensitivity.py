"""How much each weight value of a stage matters: the sensitivities that sensitive
k-means palettes weight their clustering by (targets/coreml/sensitive_palettes.py).

A stage has no training loss, so the loss is a random projection of its outputs,
<f(x), v> with v ~ N(0, I): the expected square of its gradient is the diagonal of
J^T J, the curvature of the outputs' squared error around the fp32 weights, which is
what a palette's rounding costs to second order (the diagonal Fisher of SqueezeLLM,
arXiv 2306.07629). Inputs: what the stage is given when the chain speaks
schema/texts.py's SENSITIVITY_TEXTS (not the tune's trial texts) through the fp32
twins (tune/capture.py); gradients: of the stage's traced twin.

A twin parameter is found in the converted package by value (its fp16 bytes): as it
is, or, for an LSTM's weights, with the gate blocks in Core ML's order (PyTorch keeps
input, forget, cell, output; MIL's lstm takes input, forget, output, cell: coremltools
frontend/torch/ops.py, `_pytorch_hidden_to_coreml_milops`).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from kokoro_build.targets.coreml.sensitive_palettes import FORMAT, value_key

PROBES = 4  # random projections per captured input: the gradient's square is averaged over them


def fisher_diagonal(module, calls: list[tuple], probes: int = PROBES, seed: int = 0) -> dict[str, np.ndarray]:
    """{parameter name: mean squared gradient of <f(x), v>} over `calls` (argument
    tuples) and `probes` draws of v per call. Only floating outputs are projected."""
    import torch
    generator = torch.Generator().manual_seed(seed)
    parameters = {name: p for name, p in module.named_parameters() if p.dtype.is_floating_point}
    for parameter in parameters.values():
        parameter.requires_grad_(True)
    totals = {name: torch.zeros_like(p, dtype=torch.float64) for name, p in parameters.items()}
    for args in calls:
        outputs = module(*args)
        outputs = [o for o in (outputs if isinstance(outputs, (tuple, list)) else (outputs,))
                   if o.dtype.is_floating_point]
        for probe in range(probes):
            projected = sum((o * torch.randn(o.shape, generator=generator)).sum() for o in outputs)
            grads = torch.autograd.grad(projected, list(parameters.values()), retain_graph=probe < probes - 1,
                                        allow_unused=True)
            for name, grad in zip(parameters, grads):
                if grad is not None:
                    totals[name] += grad.double() ** 2
    count = max(len(calls) * probes, 1)
    return {name: (total / count).float().numpy() for name, total in totals.items()}


def as_mil_layouts(value: np.ndarray) -> list[np.ndarray]:
    """The layouts a twin parameter may take as a MIL const: as it is, and (rows in
    four gate blocks) in Core ML's LSTM gate order."""
    layouts = [value]
    if value.ndim == 2 and value.shape[0] % 4 == 0:
        i, f, g, o = np.split(value, 4, axis=0)
        layouts.append(np.concatenate([i, f, o, g], axis=0))
    return layouts


def by_const_value(module, fisher: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """{value_key of a const layout of each parameter: its sensitivity in that layout}."""
    found = {}
    for name, parameter in module.named_parameters():
        if name not in fisher:
            continue
        value = parameter.detach().numpy()
        for layout, sensitivity in zip(as_mil_layouts(value), as_mil_layouts(fisher[name])):
            found.setdefault(value_key(layout), sensitivity)
    return found


def stage_sensitivities(variant_dir: Path, manifest, stage: str, captured, log=print) -> dict[str, np.ndarray]:
    """One stage's sensitivities from its captures (tune/capture.py's Captured), with
    the traced twin of the captured (package, function): those of the package's
    weights (tune/weights.py's, at any size), each found by value."""
    import torch

    from kokoro_build.runtime.backends import twin_arguments
    from kokoro_build.tune.trials import load_captures
    from kokoro_build.tune.weights import tunable_weights
    from kokoro_build.verify.mil_eval import _walk, load_program
    artifact = next(a for a in manifest.stages[stage].artifacts
                    if a.package == captured.package and (a.function or "main") == captured.function)
    module = torch.jit.load(str(variant_dir / artifact.traced)).eval()
    calls = [tuple(twin_arguments(artifact, capture["inputs"])) for capture in load_captures(str(captured.path))]
    measured = by_const_value(module, fisher_diagonal(module, calls))
    function = load_program(variant_dir / captured.package).functions[captured.function]
    consts = {op.name: op.outputs[0].val for op in _walk(function) if op.op_type == "const"}
    weights = {value_key(consts[weight.name]) for weight in tunable_weights(function, 0)}
    found = {key: value for key, value in measured.items() if key in weights}
    log(f"sensitivity {stage}: {len(found)} of the package's {len(weights)} weights found in the twin")
    return found


def measure(variant_dir: Path, manifest, stages: list[str], texts: list[str], voice: str, out_path: Path,
            log=print, key: str = "") -> None:
    """Capture `stages` on `texts` and write every stage's sensitivities to one file
    (with `key`, what they were measured from, for a caller that reuses them)."""
    import tempfile

    import torch

    from kokoro_build.store.package import atomic_path
    from kokoro_build.tune.capture import capture
    start = time.time()
    arrays = {"format": np.asarray(FORMAT), "key": np.asarray(key)}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: the same sums, so the same palettes, on every run (capture.py)
    try:
        with tempfile.TemporaryDirectory(dir=out_path.parent) as scratch:
            found = capture(variant_dir, manifest, stages, texts, voice, Path(scratch))
            for stage in stages:
                began = time.time()
                arrays.update(stage_sensitivities(variant_dir, manifest, stage, found[stage], log))
                log(f"sensitivity {stage}: {found[stage].count} captures in {time.time() - began:.0f} s")
    finally:
        torch.set_num_threads(threads)
    with atomic_path(out_path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    log(f"sensitivity: {', '.join(stages)} on {len(texts)} texts in {time.time() - start:.0f} s -> {out_path.name}")


def measure_sensitivities(plan: dict, out_path: str) -> None:
    """doit action: `plan` as calibrate.py's (name, out, runtime, stages over the
    converted packages), with the `sensitive` stages to measure, `texts` and `voice`."""
    from kokoro_build.targets.coreml.calibrate import calibration_manifest
    root = Path(plan["out"])
    manifest = calibration_manifest(plan["name"], root, plan["runtime"], plan["stages"])
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    measure(root, manifest, plan["sensitive"], plan["texts"], plan["voice"], Path(out_path))
