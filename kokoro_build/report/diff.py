"""`kokoro-build diff A B`: two recipes or built variants side by side.

A and B are each a pipeline file, a recipe name (`recipes/<name>.yaml`) or a built
variant's name (`artifacts/<name>/`). Printed as aligned text, or Markdown:
  1. the config diff, stage by stage (from the files; from the built manifests if a
     side has no file);
  2. which artifacts differ, by sha256 (both sides built);
  3. per stage: size, worst parity, ANE-eligible FLOP share, op count, build time,
     with B − A;
  4. each side's report sentence against its own fp32 chain (report/summary.json):
     PESQ, MCD after DTW, durations changed, teacher-forced PESQ, MCD and F0 error;
  5. the log-mel correlation of the two chains speaking one fixed sentence (same
     phonemes, voice and noise), through the saved artifacts.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kokoro_build.schema.manifest import Manifest

SENTENCE = "The quick brown fox jumps over the lazy dog."
METRICS = (("size MB", "mb"), ("worst parity dB", "psnr_db"), ("ANE-supported FLOP share", "flop_share"),
           ("predicted ANE FLOP share", "placed_flop_share"),
           ("ops", "ops"), ("build s", "seconds"),
           # stages with ExecuTorch programs (targets: [.., executorch]) only
           ("ExecuTorch MB", "pte_mb"), ("ExecuTorch parity dB", "pte_psnr_db"))


class DiffError(ValueError):
    pass


@dataclass
class Side:
    label: str
    config: dict | None  # the validated config (model_dump)
    variant_dir: Path | None  # built, with a manifest.json
    manifest: Manifest | None


def resolve(spec: str, artifacts: Path, recipes: Path) -> Side:
    from kokoro_build.schema.config import ConfigError, load_config
    from kokoro_build.schema.manifest import load_manifest
    from kokoro_build.plan.paths import artifacts_dir

    config_path = None
    if spec.endswith((".yaml", ".yml")) and Path(spec).is_file():
        config_path = Path(spec)
    elif (recipes / f"{spec}.yaml").is_file():
        config_path = recipes / f"{spec}.yaml"
    config = variant_dir = manifest = None
    if config_path is not None:
        try:
            validated = load_config(config_path)
        except ConfigError as error:
            raise DiffError(str(error)) from None
        config = validated.model_dump(mode="json")
        variant_dir = artifacts / validated.name
        if not (variant_dir / "manifest.json").is_file() and artifacts_dir(validated, config_path).is_dir():
            variant_dir = artifacts_dir(validated, config_path)
    else:
        variant_dir = artifacts / spec
    if (variant_dir / "manifest.json").is_file():
        manifest = load_manifest(variant_dir)
        config = config or manifest.config
    elif config_path is None:
        raise DiffError(f"{spec!r} is neither a pipeline file, a recipe in {recipes}/, nor a built "
                        f"variant in {artifacts}/")
    return Side(spec, config, variant_dir if manifest else None, manifest)


def stage_metrics(side: Side) -> dict[str, dict[str, float]]:
    """{stage: {mb, psnr_db, flop_share, ops, seconds}} of a built side (G2P included)."""
    metrics = {}
    for name, stage in side.manifest.stages.items():
        artifacts = stage.artifacts
        if not artifacts:
            continue
        packages = {a.package: a.bytes for a in artifacts}
        reports = [json.loads((side.variant_dir / a.verify_report).read_text()) for a in artifacts]
        metrics[name] = {
            "mb": sum(packages.values()) / 1e6,
            "psnr_db": min(min(a.verify.psnr_db.values()) for a in artifacts),
            "flop_share": min(a.ane.flop_share or 0.0 for a in artifacts),
            "placed_flop_share": min(a.ane.placement.ane_flop_share or 0.0 for a in artifacts),
            "ops": sum(sum(r.get("op_census", {}).values()) for r in reports),
            "seconds": sum(sum(v for v in r.get("seconds", {}).values() if isinstance(v, (int, float)))
                           for r in reports),
        }
        programs = [a.executorch for a in artifacts if a.executorch is not None]
        if programs:
            metrics[name].update(pte_mb=sum(p.bytes for p in programs) / 1e6,
                                 pte_psnr_db=min(min(p.verify.psnr_db.values()) for p in programs))
    return metrics


# Each side's report sentence against its own fp32 chain (report/summary.json)
SPEECH_METRICS = (("PESQ", ("pesq",)), ("MCD after DTW dB", ("mcd_dtw_db",)), ("log-mel correlation", ("mel_correlation",)),
                  ("durations changed", ("durations", "changed_share")),
                  ("teacher-forced PESQ", ("teacher_forced", "pesq")),
                  ("teacher-forced MCD dB", ("teacher_forced", "mcd_db")),
                  ("F0 error cents", ("teacher_forced", "f0_error_cents")),
                  ("WER (verify.intelligibility)", ("intelligibility", "wer")),
                  ("WER increase over fp32", ("intelligibility", "wer_increase")))


def speech_metrics(side: Side) -> dict[str, float]:
    """{title: value} of the side's report (empty if it has none)."""
    path = side.variant_dir / "report" / "summary.json"
    audio = json.loads(path.read_text()).get("audio", {}) if path.is_file() else {}
    values = {}
    for title, keys in SPEECH_METRICS:
        value = audio
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, (int, float)):
            values[title] = float(value)
    return values


def artifact_digests(side: Side) -> dict[str, str]:
    """{"stage package[:function]": sha256}, and {"stage program": sha256} for .pte files."""
    digests = {f"{stage} {a.package}" + (f":{a.function}" if a.function else ""): a.sha256
               for stage, a in side.manifest.artifacts()}
    digests.update({f"{stage} {a.executorch.program}": a.executorch.sha256
                    for stage, a in side.manifest.artifacts() if a.executorch is not None})
    return digests


def speech_correlation(a: Side, b: Side, backend: str) -> float:
    from kokoro_build.runtime import Chain
    from kokoro_build.runtime.text import misaki_g2p
    from kokoro_build.verify.audio import mel_correlation

    phonemes = misaki_g2p()(SENTENCE)
    def voices(side: Side) -> set[str]:
        return set(((side.manifest.config or {}).get("model") or {}).get("voices") or ["jf_alpha"])
    shared = sorted(voices(a) & voices(b))
    if not shared:
        raise DiffError(f"{a.label} and {b.label} share no voice: no speech to compare")
    voice = shared[0]
    audio = [Chain(side.variant_dir, backend=backend).speak_phonemes(phonemes, voice, seed=0).audio
             for side in (a, b)]
    return mel_correlation(audio[0], audio[1])


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return text if len(text) <= 90 else text[:87] + "..."


def _table(headers: list[str], rows: list[list[str]], markdown: bool) -> list[str]:
    if markdown:
        return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)] + \
               ["| " + " | ".join(r) + " |" for r in rows]
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return [line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows]


def format_diff(a: Side, b: Side, markdown: bool = False, speech: float | None = None) -> str:
    from kokoro_build.schema.recipes import config_diff

    h = (lambda t: f"## {t}") if markdown else (lambda t: f"{t}\n{'=' * len(t)}")
    out = [f"# {a.label} → {b.label}" if markdown else f"diff {a.label} -> {b.label}", ""]
    out += [h("Config"), ""]
    if a.config is None or b.config is None:
        out.append("(a side has no config: neither a pipeline file nor a manifest that records one)")
    else:
        sections = config_diff(a.config, b.config)
        rows = [[section, field, _cell(left), _cell(right)] for section, changes in sections.items()
                for field, left, right in changes]
        out += _table(["section", "field", a.label, b.label], rows, markdown) if rows else ["(same config)"]
    out.append("")
    if a.manifest is None or b.manifest is None:
        missing = [s.label for s in (a, b) if s.manifest is None]
        out.append(f"(not built: {', '.join(missing)}; build with `doit recipe=NAME` for artifacts and metrics)")
        return "\n".join(out) + "\n"
    digests_a, digests_b = artifact_digests(a), artifact_digests(b)
    rows = []
    for key in sorted(set(digests_a) | set(digests_b)):
        left, right = digests_a.get(key), digests_b.get(key)
        verdict = "same" if left == right else ("only in " + (a.label if right is None else b.label)
                                                 if None in (left, right) else "differs")
        rows.append([key, (left or "—")[:12], (right or "—")[:12], verdict])
    out += [h("Artifacts (sha256)"), ""] + _table(["artifact", a.label, b.label, ""], rows, markdown) + [""]
    metrics_a, metrics_b = stage_metrics(a), stage_metrics(b)
    rows = []
    for stage in sorted(set(metrics_a) | set(metrics_b)):
        for title, key in METRICS:
            left, right = (metrics_a.get(stage, {}).get(key), metrics_b.get(stage, {}).get(key))
            if left is None and right is None:  # an ExecuTorch metric where neither side has programs
                continue
            delta = right - left if None not in (left, right) and abs(left) != float("inf") \
                and abs(right) != float("inf") else None
            rows.append([stage, title, _cell(left) if left is not None else "—",
                         _cell(right) if right is not None else "—",
                         f"{delta:+.4g}" if delta is not None else "—"])
    total_a, total_b = (sum(m["mb"] for m in metrics.values()) for metrics in (metrics_a, metrics_b))
    rows.append(["(all)", "size MB", _cell(total_a), _cell(total_b), f"{total_b - total_a:+.4g}"])
    out += [h("Metrics per stage"), ""] + _table(["stage", "metric", a.label, b.label, "B − A"], rows, markdown)
    out.append("")
    speech_a, speech_b = speech_metrics(a), speech_metrics(b)
    rows = [[title, _cell(speech_a[title]) if title in speech_a else "—",
             _cell(speech_b[title]) if title in speech_b else "—",
             f"{speech_b[title] - speech_a[title]:+.4g}" if title in speech_a and title in speech_b else "—"]
            for title, _ in SPEECH_METRICS if title in speech_a or title in speech_b]
    if rows:
        out += [h("Report sentence against each side's own fp32 chain"), "",
                "(MCD after DTW; teacher-forced: on the fp32 twin's durations)", ""]
        out += _table(["metric", a.label, b.label, "B − A"], rows, markdown) + [""]
    if speech is not None:
        out += [h("Speech"), "", f"log-mel correlation of the two chains on {SENTENCE!r} "
                                 f"(same phonemes, voice and noise): {speech:.4f}"]
    return "\n".join(out) + "\n"
