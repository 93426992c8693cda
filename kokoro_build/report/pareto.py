"""Built variants as points of size against speech quality: a table, the Pareto front
and a plot. Shared by `tune` (the points it verified beside the hand-written recipes:
`tune/pareto.md`, `tune/pareto.png`) and `sweep` (its variants: scale/results.py)."""
from __future__ import annotations

import io
from pathlib import Path

REFERENCE_RECIPES = ("w8", "pal8", "pal6", "small", "mixed")


def variant_point(variant_dir: Path, name: str, kind: str, **extra) -> dict | None:
    """Size and speech metrics of a built variant (its manifest and report), or None
    if it has not been built through its report."""
    import json

    from kokoro_build.schema.manifest import load_manifest
    from kokoro_build.store.package import tree_digest
    summary = variant_dir / "report" / "summary.json"
    if not summary.is_file() or not (variant_dir / "manifest.json").is_file():
        return None
    audio = json.loads(summary.read_text()).get("audio", {})
    manifest = load_manifest(variant_dir)
    packages = {a.package for stage in manifest.stages.values() for a in stage.artifacts}
    size = sum(tree_digest(variant_dir / p)["bytes"] for p in packages)
    return {"name": name, "kind": kind, "mb": round(size / 1e6, 1), **speech_columns(audio), **extra}


def speech_columns(audio: dict) -> dict:
    """The speech metrics of a report's summary.json `audio` section, flat."""
    forced = audio.get("teacher_forced") or {}
    durations = audio.get("durations") or {}
    heard = audio.get("intelligibility") or {}  # only where verify.intelligibility was enabled
    return {"teacher_forced_pesq": forced.get("pesq"), "teacher_forced_mcd_db": forced.get("mcd_db"),
            "f0_error_cents": forced.get("f0_error_cents"), "mcd_dtw_db": audio.get("mcd_dtw_db"),
            "duration_changed_share": durations.get("changed_share"), "mel_correlation": audio.get("mel_correlation"),
            "wer_increase": heard.get("wer_increase"), "failures": audio.get("failures", [])}


COLUMNS = (("name", "variant", "{}"), ("kind", "kind", "{}"), ("mb", "MB", "{:.1f}"),
           ("bits_per_weight", "bits/weight", "{:.2f}"), ("teacher_forced_pesq", "PESQ (forced)", "{:.2f}"),
           ("teacher_forced_mcd_db", "MCD dB (forced)", "{:.2f}"), ("f0_error_cents", "F0 cents", "{:.1f}"),
           ("duration_changed_share", "durations changed", "{:.1%}"), ("mcd_dtw_db", "MCD-DTW dB", "{:.2f}"),
           ("wer_increase", "WER increase", "{:+.1%}"), ("mel_correlation", "log-mel r", "{:.3f}"))


def table(points: list[dict], columns=COLUMNS) -> str:
    """A Markdown table of `columns` ((key, title, format)), smallest first; an
    unmeasured value (or size) shows as –."""
    def cell(point, key, fmt):
        value = point.get(key)
        return "–" if value is None else fmt.format(value)
    lines = ["| " + " | ".join(title for _, title, _ in columns) + " |",
             "|" + "---|" * len(columns)]
    for point in sorted(points, key=lambda p: (p.get("mb") is None, p.get("mb") or 0.0)):
        lines.append("| " + " | ".join(cell(point, key, fmt) for key, _, fmt in columns) + " |")
    return "\n".join(lines) + "\n"


def pareto_front(points: list[dict]) -> list[str]:
    """The names of the measured points no other beats on both size and teacher-forced PESQ."""
    measured = [p for p in points if p.get("mb") is not None and p.get("teacher_forced_pesq") is not None]
    return [p["name"] for p in measured if not any(
        q["mb"] <= p["mb"] and q["teacher_forced_pesq"] >= p["teacher_forced_pesq"] and
        (q["mb"], q["teacher_forced_pesq"]) != (p["mb"], p["teacher_forced_pesq"]) for q in measured)]


MARKERS = {"recipe": ("s", "hand-written recipe"), "tuned": ("o", "tuned"), "variant": ("o", "sweep variant")}


def plot(points: list[dict], chosen: str | None, front: list[str] = ()) -> bytes:
    """Size against teacher-forced PESQ, a marker per kind; `chosen` circled, the
    `front` (pareto_front) joined by a dashed line. Where any point was transcribed
    (verify.intelligibility), a second panel: size against its WER increase."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = [("teacher_forced_pesq", "teacher-forced PESQ (report sentence)")]
    if any(p.get("wer_increase") is not None for p in points):
        panels.append(("wer_increase", "WER increase over fp32 (points)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 4.2), dpi=110, squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        _panel(ax, points, key, chosen, front if key == "teacher_forced_pesq" else ())
        ax.set_ylabel(label)
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def _panel(ax, points: list[dict], key: str, chosen: str | None, front) -> None:
    """One scatter of size against `key`."""
    edge = sorted((p["mb"], p[key]) for p in points if p["name"] in front)
    if edge:
        ax.plot(*zip(*edge), linestyle="--", color="grey", label="Pareto front", zorder=2)
    for kind, (marker, label) in MARKERS.items():
        mine = [p for p in points if p["kind"] == kind and p.get(key) is not None]
        if not mine:
            continue
        ax.scatter([p["mb"] for p in mine], [p[key] for p in mine], marker=marker, label=label, zorder=3)
        for p in mine:
            ax.annotate(p["name"], (p["mb"], p[key]), textcoords="offset points", xytext=(4, 4), fontsize=7)
    for p in points:
        if p["name"] == chosen and p.get(key) is not None:
            ax.scatter([p["mb"]], [p[key]], s=160, facecolors="none", edgecolors="red", label="chosen", zorder=4)
    ax.set_xlabel("packages (MB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
