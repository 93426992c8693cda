"""Tune trials: one weight of one converted package at one setting, run with the MIL
evaluator on the stage's captured inputs, scored against the fp32 twin's outputs.

A trial's unit of work is a `Trial` (a weight and the settings to try on it); its
context is a `Probe` (the package, the function, the captures file), loaded once per
worker process. The baseline run keeps checkpoints, so a trial reruns only the ops
from the weight's first reader on: everything upstream is unchanged.

Errors, per float output and averaged over the captures: the squared error against
the twin divided by the twin's power (its inverse in dB is the SNR that
ml-stable-diffusion's pre-analysis reports as PSNR), and for the duration stage's
frames per token also the expected share of tokens whose rounded count changes.
They are kept raw, so what they cost (cost.py) can change without a rerun; a
weight's cost is its trial's minus the uncompressed package's, and costs from
different weights add, to first order, which is what the allocation assumes.

Results are cached by content: the package's digest, the captures' sha256, the
weight, the setting and the code (store/cache.py's key scheme), so a second tune
reruns nothing and a changed evaluator reruns everything.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from kokoro_build.store.package import atomic_path, file_sha256

TRIAL_MODULE = __name__
# the duration stage's frames per token, which the chain rounds (runtime/chain.py)
DURATION_OUTPUT = "durations"

@dataclass(frozen=True)
class Probe:
    """Where a stage's trials run: a converted package, its function, its captures."""
    stage: str
    package: str
    function: str
    captures: str              # .npz written by tune/capture.py
    min_weight_elements: int
    package_sha256: str        # its digest: part of every trial's key
    sensitivities: str | None = None  # .npz of tune/sensitivity.py, for sensitive_kmeans settings


@dataclass(frozen=True)
class Trial:
    probe: Probe
    weight: str
    settings: tuple[tuple[str, str], ...]  # (label, method as JSON)


@dataclass(frozen=True)
class TrialResult:
    stage: str
    weight: str
    label: str
    bytes: int | None          # None: coremltools would leave the weight as it is
    errors: dict | None        # output -> {power, frames?} against the fp32 twin
    baseline: dict             # the uncompressed package's


def output_errors(outputs: dict, reference: dict) -> dict[str, dict[str, float]]:
    errors = {}
    for name, ref in reference.items():
        ref = np.asarray(ref, dtype=np.float64)
        out = np.asarray(outputs[name], dtype=np.float64).reshape(ref.shape)
        errors[name] = {"power": float(np.sum((out - ref) ** 2) / max(np.sum(ref ** 2), 1e-30))}
        if name == DURATION_OUTPUT:
            errors[name]["frames"] = float(np.mean(np.minimum(np.abs(out - ref), 1.0)))
    return errors


def mean_errors(runs: list[dict]) -> dict[str, dict[str, float]]:
    return {name: {key: float(np.mean([run[name][key] for run in runs])) for key in runs[0][name]}
            for name in runs[0]}


def load_captures(path: str) -> list[dict]:
    """[{inputs: {name: array}, reference: {name: array}}] from a captures .npz."""
    with np.load(path, allow_pickle=False) as data:
        count = int(data["count"])
        captures = [{"inputs": {}, "reference": {}} for _ in range(count)]
        for key in data.files:
            if key == "count":
                continue
            index, part, name = key.split("/", 2)
            captures[int(index)][part][name] = data[key]
    return captures


def save_captures(path: str | Path, captures: list[dict]) -> None:
    arrays = {"count": np.asarray(len(captures))}
    for index, capture in enumerate(captures):
        for part in ("inputs", "reference"):
            for name, value in capture[part].items():
                arrays[f"{index}/{part}/{name}"] = np.asarray(value)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


class ProbeSession:
    """A probe loaded in this process: the evaluator, the baseline's checkpoints."""

    CHECKPOINTS = 16  # at most this many saved points per capture (memory, not time)

    def __init__(self, probe: Probe):
        from kokoro_build.verify.mil_eval import Checkpoints, MilEvaluator, first_readers
        self.probe = probe
        self.evaluator = MilEvaluator(probe.package)
        function = self.evaluator.program.functions[probe.function]
        self.consts = {op.name: op for op in function.operations if op.op_type == "const"}
        self.first_reader = first_readers(function)
        readers = sorted({self.first_reader[op.outputs[0].name] for op in self.consts.values()
                          if op.outputs[0].name in self.first_reader})
        picks = {readers[int(i)] for i in np.linspace(0, len(readers) - 1, min(self.CHECKPOINTS, len(readers)))} \
            if readers else set()
        self.captures = load_captures(probe.captures)
        self.sensitivities = None
        if probe.sensitivities:
            from kokoro_build.targets.coreml.sensitive_palettes import Sensitivities
            self.sensitivities = Sensitivities(probe.sensitivities)
        self.checkpoints, runs = [], []
        for capture in self.captures:
            points = Checkpoints(picks | {0})
            outputs = self.evaluator.run(capture["inputs"], function=probe.function, checkpoints=points)
            self.checkpoints.append(points)
            runs.append(output_errors(outputs, capture["reference"]))
        self.baseline = mean_errors(runs)

    def errors_with(self, weight: str, value: np.ndarray) -> dict:
        op = self.consts[weight]
        start = self.first_reader[op.outputs[0].name]
        runs = []
        with self.evaluator.substituted({op.outputs[0]: value}):
            for capture, points in zip(self.captures, self.checkpoints):
                outputs = self.evaluator.resume(points, start, function=self.probe.function)
                runs.append(output_errors(outputs, capture["reference"]))
        return mean_errors(runs)


@lru_cache(maxsize=4)
def _session(probe: Probe) -> ProbeSession:
    return ProbeSession(probe)


def run_trial(trial: Trial) -> list[TrialResult]:
    """Every setting of one trial (the worker function of an executor)."""
    from kokoro_build.schema.compress_schema import WeightMethod
    from kokoro_build.tune.weights import compressed_value
    session = _session(trial.probe)
    op = session.consts[trial.weight]
    results = []
    for label, method_json in trial.settings:
        method = WeightMethod.model_validate(json.loads(method_json)).method
        with warnings.catch_warnings():  # sklearn: fewer distinct values than clusters
            warnings.simplefilter("ignore")
            compressed = compressed_value(op, method, trial.probe.min_weight_elements, session.sensitivities)
        if compressed is None:
            results.append(TrialResult(trial.probe.stage, trial.weight, label, None, None, session.baseline))
            continue
        value, stored = compressed
        # lossless (an 8-bit table over weights that hold 256 values or fewer, as the
        # int8-derived Kokoro weights do): the run would give the baseline exactly
        exact = np.array_equal(value, op.outputs[0].val)
        errors = session.baseline if exact else session.errors_with(trial.weight, value)
        results.append(TrialResult(trial.probe.stage, trial.weight, label, stored, errors, session.baseline))
    return results


@dataclass
class TrialCache:
    """One JSON file per (probe, weight, setting) under `root`. A file that can't be
    read back as a result is a miss, never a result."""
    root: Path
    code: str = field(default="")

    def __post_init__(self):
        if not self.code:
            self.code = _code_digest()

    def key(self, probe: Probe, weight: str, label: str, method_json: str) -> str:
        material = {"step": "tune-trial", "package": probe.package_sha256, "function": probe.function,
                    "captures": _arrays_digest(probe.captures), "weight": weight, "method": method_json,
                    "min_weight_elements": probe.min_weight_elements, "code": self.code}
        if '"sensitive_kmeans"' in method_json:  # only these read the sensitivities
            material["sensitivities"] = _arrays_digest(probe.sensitivities) if probe.sensitivities else None
        return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, probe: Probe, weight: str, label: str, method_json: str) -> TrialResult | None:
        path = self._path(self.key(probe, weight, label, method_json))
        try:
            data = json.loads(path.read_text())
            return TrialResult(**data)
        except (OSError, ValueError, TypeError):
            return None

    def put(self, probe: Probe, result: TrialResult, method_json: str) -> None:
        path = self._path(self.key(probe, result.weight, result.label, method_json))
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(result.__dict__, sort_keys=True))


@lru_cache(maxsize=None)
def _arrays_digest(path: str) -> str:
    """Of the arrays, not the file: an .npz records when it was written."""
    h = hashlib.sha256()
    with np.load(path, allow_pickle=False) as data:
        for key in sorted(data.files):
            value = data[key]
            h.update(f"{key}:{value.dtype}:{value.shape}".encode())
            h.update(np.ascontiguousarray(value).tobytes())
    return h.hexdigest()


def _code_digest() -> str:
    """The trial code and what it imports (the evaluator's kernels included), and the
    coremltools version whose compression a trial reproduces. Not cost.py: results
    are raw errors, priced after they are read."""
    import importlib.metadata

    from kokoro_build.plan.code_deps import code_files
    h = hashlib.sha256(importlib.metadata.version("coremltools").encode())
    for path in code_files(TRIAL_MODULE, "kokoro_build.tune.weights", "kokoro_build.verify.mil_eval",
                           "kokoro_build.targets.coreml.sensitive_palettes"):
        h.update(Path(path).name.encode() + file_sha256(path).encode())
    return h.hexdigest()
