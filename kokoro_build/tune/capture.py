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

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kokoro_build.runtime.backends import TorchBackend


class RecordingBackend(TorchBackend):
    """The torch twins, keeping each call of the chosen packages' artifacts."""

    def __init__(self, variant_dir: Path, packages: dict[str, str]):
        super().__init__(variant_dir)
        self.packages = packages  # package path (relative) -> stage
        self.records: list[tuple[str, str, str, dict, dict, float]] = []

    def run(self, artifact, inputs):
        feeds = {spec.name: np.asarray(inputs[spec.name]).astype(spec.dtype) for spec in artifact.inputs}
        start = time.perf_counter()
        outputs = super().run(artifact, feeds)
        seconds = time.perf_counter() - start
        stage = self.packages.get(artifact.package)
        if stage is not None:
            floats = {k: v for k, v in outputs.items() if np.asarray(v).dtype.kind == "f"}
            self.records.append((stage, artifact.package, artifact.function or "main", feeds, floats, seconds))
        return outputs


@dataclass(frozen=True)
class Captured:
    package: str          # relative to the variant folder
    function: str
    path: Path            # the captures file
    count: int
    twin_seconds: float   # the fp32 twin's time on these captures (the evaluator's yardstick)


def capture(variant_dir: Path, manifest, stages: list[str], texts: list[str], voice: str,
            out_dir: Path) -> dict[str, Captured]:
    """What each stage in `stages` was given and gave. Raises ValueError if a stage was
    never reached."""
    from kokoro_build.runtime.chain import Chain
    from kokoro_build.tune.trials import save_captures

    packages = {artifact.package: name for name in stages for artifact in manifest.stages[name].artifacts}
    backend = RecordingBackend(variant_dir, packages)
    chain = Chain(variant_dir, backend=backend, manifest=manifest)
    import torch
    threads = torch.get_num_threads()
    # The captures' bytes key the trial cache, and a twin's float sums depend on how
    # many threads split them (a 2-thread run missed a 1-thread run's cache): one thread.
    torch.set_num_threads(1)
    try:
        for text in texts:
            try:
                chain.speak(text, voice, seed=0)
            except ValueError as error:  # ChainError: say which text, and that it is the tune's
                raise ValueError(f"tune: the chain can't speak tune text {text[:40]!r}: {error}") from None
    finally:
        torch.set_num_threads(threads)
    found = {}
    for stage in stages:
        calls = Counter((package, function) for s, package, function, *_ in backend.records if s == stage)
        if not calls:
            raise ValueError(f"tune: no tune text reached stage {stage!r}")
        (package, function), count = calls.most_common(1)[0]
        mine = [r for r in backend.records if r[:3] == (stage, package, function)]
        path = out_dir / f"{stage}.captures.npz"
        save_captures(path, [{"inputs": feeds, "reference": outputs} for *_, feeds, outputs, _ in mine])
        found[stage] = Captured(package, function, path, count, sum(r[-1] for r in mine))
    return found
