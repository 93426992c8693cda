"""A StageRun's stage, weights and example inputs, and (for the steps that need it)
its surgered torch module: what export, lower and both verify steps start from."""
from __future__ import annotations

from dataclasses import dataclass, field

from kokoro_build.schema.kinds import kind_row
from kokoro_build.schema.run import StageRun, at_own_length


@dataclass
class PreparedStage:
    stage: object                 # the StageKind instance
    provenance: dict
    voice_pack: object | None     # None for a kind that takes no voice (g2p)
    module: object | None = None  # the surgered module (with surgery=True)
    records: list = field(default_factory=list)  # the surgery passes' PassRecords

    def inputs(self, sizes: dict[str, int]) -> tuple:
        """Fixed-seed example inputs at `sizes`."""
        return self.stage.example_inputs(sizes, self.voice_pack)


def prepare_stage(run: StageRun, surgery: bool = True) -> PreparedStage:
    """Load the run's weights and stage kind; with `surgery`, build its module and run
    its passes (each parity-gated; a pass the kind table expects to match that matches
    nothing fails: see model/surgery/registry.py)."""
    from kokoro_build.model.stages import get_stage_kind
    from kokoro_build.model.surgery import apply_passes

    kind_class = get_stage_kind(run.kind)
    blob = kind_class.load_source(run.paths.weights)
    own_length = at_own_length(run.flexible)
    stage = kind_class(blob["config"], run.passes, flexible=own_length, options=run.options)
    prepared = PreparedStage(stage, blob["provenance"], blob["voices"].get(run.voice))
    if surgery:
        module = stage.build_module(stage.model_from_source(blob), run.sizes)
        expected = kind_row(run.kind).expected_passes(flexible=own_length)
        result = apply_passes(module, run.passes, prepared.inputs(stage.parity_sizes(run.sizes)),
                              expected=expected)
        prepared.module, prepared.records = result.module, result.records
    return prepared


def check_sizes(stage, sizes: dict[str, int], flexible: dict) -> dict[str, int]:
    """Where a verify step checks an artifact: a bucket at its size; a range at the
    stage's parity size inside the range (a shape other than the traced one); an
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
