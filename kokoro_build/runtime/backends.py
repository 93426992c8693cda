"""Backends run one artifact of a manifest on named numpy inputs."""
from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from kokoro_build.runtime.errors import BackendError
from kokoro_build.schema.manifest import RunnableArtifact as Artifact
from kokoro_build.store.memory import keep_freed_memory


class TorchBackend:
    """The surgered, traced fp32 twins (`_work/<stage>/<shape>.traced.pt`)."""

    name = "torch"

    def __init__(self, variant_dir: Path):
        self.variant_dir = variant_dir
        self._modules: dict[str, object] = {}
        keep_freed_memory()  # with KOKORO_BUILD_MALLOC=keep: store/memory.py

    def run(self, artifact: Artifact, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch
        path = artifact.traced
        if path is None:
            raise BackendError(f"{artifact.package}: a release carries no traced twins; "
                               "speak from it with --backend mil, executorch or coreml")
        if path not in self._modules:
            self._modules[path] = torch.jit.load(str(self.variant_dir / path)).eval()
        with torch.no_grad():
            outputs = self._modules[path](*twin_arguments(artifact, inputs))
        outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        return {spec.name: out.numpy() for spec, out in zip(artifact.outputs, outputs)}


def twin_arguments(artifact: Artifact, inputs: dict[str, np.ndarray]) -> list:
    """A traced twin's positional tensors, in the artifact's input order: int64 for
    integer inputs, float32 for the rest."""
    import torch
    args = []
    for spec in artifact.inputs:
        value = torch.from_numpy(np.ascontiguousarray(inputs[spec.name]))
        args.append(value.long() if spec.dtype.startswith("int") else value.float())
    return args


class CoreMLBackend:
    """The .mlpackage files through Core ML. Prediction exists only on macOS."""

    name = "coreml"

    def __init__(self, variant_dir: Path):
        if platform.system() != "Darwin":
            raise BackendError("the coreml backend runs Core ML prediction, which exists only on "
                               "macOS; on Linux use --backend torch")
        self.variant_dir = variant_dir
        self._models: dict[str, object] = {}

    def run(self, artifact: Artifact, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import coremltools as ct
        key = (artifact.package, artifact.function)
        if key not in self._models:
            # a multifunction package loads one function per MLModel (iOS18 / macOS15)
            extra = {"function_name": key[1]} if key[1] else {}
            self._models[key] = ct.models.MLModel(str(self.variant_dir / key[0]), **extra)
        feeds = {spec.name: inputs[spec.name].astype(spec.dtype) for spec in artifact.inputs}
        return self._models[key].predict(feeds)


class MilBackend:
    """The .mlpackage files through the MIL evaluator (verify/mil_eval.py): the saved
    artifacts themselves, on Linux, with fp16 outputs rounded as the programs declare.
    A multifunction package is loaded once and runs the artifact's function."""

    name = "mil"

    def __init__(self, variant_dir: Path, stats: dict | None = None):
        """`stats`: a dict that receives each package's activation ranges
        ({package path: verify.stats.ActivationStats}), for W8A8 calibration."""
        self.variant_dir = variant_dir
        self.stats = stats
        # not keep_freed_memory(): the evaluator ran slower with it (BENCHMARKS.md "Allocator")
        self._evaluators: dict[str, object] = {}

    def run(self, artifact: Artifact, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from kokoro_build.verify.mil_eval import MilEvaluator
        path = artifact.package
        if path not in self._evaluators:
            self._evaluators[path] = MilEvaluator(self.variant_dir / path)
        feeds = {spec.name: np.asarray(inputs[spec.name]).astype(spec.dtype)
                 for spec in artifact.inputs}
        stats = None
        if self.stats is not None:
            from kokoro_build.verify.stats import ActivationStats
            stats = self.stats.setdefault(path, ActivationStats(percentiles=()))
        return self._evaluators[path].run(feeds, function=artifact.function or "main", stats=stats)

    def program(self, path: str):
        """The MIL program of a package this backend has run."""
        return self._evaluators[path].program


class ExecuTorchBackend:
    """The `.pte` programs (targets: [.., executorch]) through the ExecuTorch runtime,
    XNNPACK on this CPU. An artifact without one is an error that names the stage's
    fix, not a silent fall back to another backend."""

    name = "executorch"

    def __init__(self, variant_dir: Path):
        self.variant_dir = variant_dir
        self._programs: dict[str, object] = {}

    def run(self, artifact: Artifact, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from kokoro_build.runtime.executorch_program import Program
        entry = artifact.executorch
        if entry is None:
            raise BackendError(f"{artifact.package} has no ExecuTorch program: build the variant "
                               "with `targets: [coreml, executorch]` (recipes/executorch.yaml)")
        path = entry.program
        if path not in self._programs:
            self._programs[path] = Program(self.variant_dir / path)
        # in the stage's order; Program casts each to the dtype the program was exported with
        outputs = self._programs[path].run([inputs[spec.name] for spec in artifact.inputs])
        return {spec.name: out for spec, out in zip(artifact.outputs, outputs)}


BACKENDS = {"torch": TorchBackend, "mil": MilBackend, "coreml": CoreMLBackend, "executorch": ExecuTorchBackend}


def make_backend(name, variant_dir: Path):
    """A backend by name; a backend object is taken as it is."""
    if not isinstance(name, str):
        return name
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
    return BACKENDS[name](variant_dir)
