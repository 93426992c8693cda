"""The inputs each tuned stage sees, and what its fp32 twin makes of them.

The chain speaks the tune texts through the torch twins (the fp32 reference) over the
converted packages' manifest (calibration_manifest, as W8A8 calibration does). Every
call to a tuned stage's artifact is recorded: its inputs and the twin's outputs. A
trial then runs only that stage's package on those inputs, so a stage downstream of
durations is judged on the reference durations and alignment (teacher-forced), and
the other stages' compression can't move what it is given.

A bucketed stage records one capture per call, at the bucket the chain picked; its
trials run on the (package, function) that most captures reached (the weights, and
their names, are the same in every bucket of a stage).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from kokoro_build.runtime.backends import TorchBackend

# Short, plain sentences not in the benchmarks' set: a trial runs each one per
# setting per weight, so their length is the trial's cost.
DEFAULT_TEXTS = ("The little boat drifted slowly toward the shore.",
                 "Can you hear the music from the garden tonight?")


class RecordingBackend(TorchBackend):
    """The torch twins, keeping each call of the chosen packages' artifacts."""

    def __init__(self, variant_dir: Path, packages: dict[str, str]):
        super().__init__(variant_dir)
        self.packages = packages  # package path (relative) -> stage
        self.records: list[tuple[str, str, str, dict, dict]] = []

    def run(self, artifact, inputs):
        feeds = {spec.name: np.asarray(inputs[spec.name]).astype(spec.dtype) for spec in artifact.inputs}
        outputs = super().run(artifact, feeds)
        stage = self.packages.get(artifact.package)
        if stage is not None:
            floats = {k: v for k, v in outputs.items() if np.asarray(v).dtype.kind == "f"}
            self.records.append((stage, artifact.package, artifact.function or "main", feeds, floats))
        return outputs


def capture(variant_dir: Path, manifest, stages: list[str], texts: list[str], voice: str,
            out_dir: Path) -> dict[str, tuple[str, str, Path, int]]:
    """stage -> (package, function, captures file, how many captures) for each stage
    in `stages`. Raises ValueError if a stage was never reached."""
    from kokoro_build.runtime.chain import Chain
    from kokoro_build.tune.trials import save_captures

    packages = {artifact.package: name for name in stages for artifact in manifest.stages[name].artifacts}
    backend = RecordingBackend(variant_dir, packages)
    chain = Chain(variant_dir, backend=backend, manifest=manifest)
    for text in texts:
        try:
            chain.speak(text, voice, seed=0)
        except ValueError as error:  # ChainError: say which text, and that it is the tune's
            raise ValueError(f"tune: the chain can't speak tune text {text[:40]!r}: {error}") from None
    found = {}
    for stage in stages:
        calls = Counter((package, function) for s, package, function, _, _ in backend.records if s == stage)
        if not calls:
            raise ValueError(f"tune: no tune text reached stage {stage!r}")
        (package, function), count = calls.most_common(1)[0]
        captures = [{"inputs": feeds, "reference": outputs} for s, p, f, feeds, outputs in backend.records
                    if (s, p, f) == (stage, package, function)]
        path = out_dir / f"{stage}.captures.npz"
        save_captures(path, captures)
        found[stage] = (package, function, path, count)
    return found
