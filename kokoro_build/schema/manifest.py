"""`manifest.json` as one typed model: what the manifest task writes and what the chain,
the report, diff, release, calibration, device ingest and the device G2P read.

Paths are relative to the variant folder (or the release folder, which keeps them).
torch-free: apps' tooling and the runtime read it without the build side.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Optional

from pydantic import BaseModel, ConfigDict, ValidationError

# /2: the runtime files (config, vocab, voices) the chain reads instead of the weights
FORMAT = "kokoro-build-manifest/2"
# A release bundle's manifest.json (store/release.py) carries its variant's manifest
# under "chain", with the same relative paths: the chain runs from a bundle as from a build.
RELEASE_FORMAT = "kokoro-build-release/1"


class _Entry(BaseModel):
    # forbid: a writer that adds a key must add it here, where every reader sees it
    model_config = ConfigDict(extra="forbid")


class FileEntry(_Entry):
    path: str
    sha256: str


class Weights(FileEntry):
    provenance: Optional[dict] = None


class Runtime(_Entry):
    """The small files the chain reads instead of the weights."""
    config: FileEntry
    vocab: FileEntry
    voices: dict[str, FileEntry]


class Tensor(_Entry):
    """One input or output. `range`: per-dim [low, high] of a range-shaped tensor;
    `enumerated`: the shapes an enumerated input takes (`shape` is the default)."""
    name: str
    dtype: str
    shape: list[int]
    range: Optional[list[list[int]]] = None
    enumerated: Optional[list[list[int]]] = None


class Verdict(_Entry):
    passed: bool
    psnr_db: dict[str, float]  # per output; inf when bit-equal


class Placement(_Entry):
    """Predicted whole-function placement (verify/placement.py)."""
    predicted: bool
    device: str
    ane_flop_share: Optional[float] = None
    segments: int


class Ane(_Entry):
    """Per-op ANE support (static analyzer) and the predicted placement."""
    analyzer: str
    measured: bool
    op_share: Optional[float] = None
    flop_share: Optional[float] = None
    segments: int
    placement: Placement


class Program(_Entry):
    """An artifact's ExecuTorch program (targets: [.., executorch])."""
    program: str
    sha256: str
    bytes: int
    backend: str
    export: Optional[str] = None  # how torch.export ran (the stage's executorch export mode)
    delegated_share: float
    portable_ops: dict[str, int]
    verify_report: str
    verify: Verdict


class RunnableArtifact(_Entry):
    """What a chain backend runs: one converted shape of a stage, a package or one
    function of a multifunction package. Calibration runs these before verification."""
    sizes: dict[str, int]
    flexible: dict[str, dict] = {}  # dim -> {"range": [lo, hi]} | {"enumerated": [..]}
    package: str
    function: Optional[str] = None
    traced: Optional[str] = None  # a release carries no traced twins
    inputs: list[Tensor]
    outputs: list[Tensor]
    executorch: Optional[Program] = None

    def input_names(self) -> set[str]:
        return {tensor.name for tensor in self.inputs}


class Artifact(RunnableArtifact):
    """A verified artifact (`sha256` and `bytes`: of the whole package)."""
    sha256: str
    bytes: int
    precision: str
    compute_units: str
    compress: Optional[dict] = None
    verify_report: str
    golden: str
    verify: Verdict
    ane: Ane


class Lexicon(_Entry):
    path: str
    format: str
    entries: int
    bytes: int
    sha256: str
    source: dict  # the lexicon block of the config: source, dialect, tiers
    source_sha256: dict  # the source files' digests


class NeuralG2P(_Entry):
    graphemes: list[str]
    phonemes: list[str]
    max_phonemes: int
    provenance: dict


class Function(_Entry):
    sizes: dict[str, int]
    inputs: list[Tensor]
    outputs: list[Tensor]


class MultifunctionPackage(_Entry):
    path: str
    default_function: str
    functions: dict[str, Function]


class RunnableStage(_Entry):
    kind: str
    where: str = "graph"
    artifacts: list[RunnableArtifact]


class Stage(RunnableStage):
    options: dict = {}
    packaging: str = "separate"
    artifacts: list[Artifact]
    lexicon: Optional[Lexicon] = None  # a g2p stage: what a client needs beside its package
    neural: Optional[NeuralG2P] = None
    package: Optional[MultifunctionPackage] = None  # packaging: multifunction


class RunnableManifest(_Entry):
    """What the chain reads: the runtime files and the stages' artifacts."""
    name: str
    runtime: Runtime
    stages: dict[str, RunnableStage]

    def artifacts(self) -> Iterator[tuple[str, RunnableArtifact]]:
        """(stage name, artifact) for every artifact, in stage order."""
        for stage_name, stage in self.stages.items():
            for artifact in stage.artifacts:
                yield stage_name, artifact

    def stage_of_kind(self, kind: str) -> Optional[RunnableStage]:
        return next((stage for stage in self.stages.values() if stage.kind == kind), None)


class Manifest(RunnableManifest):
    """manifest.json: a built variant."""
    format: str = FORMAT
    weights: Weights
    stages: dict[str, Stage]
    config: dict  # the validated pipeline config, recorded for releases and diffs

    def as_json(self) -> dict:
        """What manifest.json holds: absent optional entries are left out, not null."""
        return self.model_dump(exclude_none=True)


class ManifestError(ValueError):
    pass


def parse_manifest(data: dict, where: str = "manifest.json") -> Manifest:
    """A variant's manifest from its JSON, or from a release's (under "chain")."""
    if data.get("format") == RELEASE_FORMAT and "chain" in data:
        data = data["chain"]
    if data.get("format") != FORMAT:
        raise ManifestError(f"{where}: format {data.get('format')!r}, expected {FORMAT} "
                            "(built by another kokoro-build version: rebuild it with doit)")
    try:
        return Manifest.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise ManifestError(f"{where}: {field}: {first['msg']} ({error.error_count()} problem(s))") from None


def load_manifest(variant_dir: str | Path) -> Manifest:
    path = Path(variant_dir) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: build the variant first (make build, or doit)")
    return parse_manifest(json.loads(path.read_text()), str(path))
