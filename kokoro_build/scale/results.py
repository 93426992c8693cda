"""A sweep's measurements: one row per variant from what its build wrote (manifest,
verify reports, report/summary.json), and the tables and plot of all of them."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from kokoro_build.report.pareto import pareto_front, plot, speech_columns, table

COLUMNS = (("label", "variant", "{}"), ("status", "build", "{}"), ("mb", "MB", "{:.1f}"),
           ("teacher_forced_pesq", "PESQ (forced)", "{:.2f}"), ("mcd_dtw_db", "MCD-DTW dB", "{:.2f}"),
           ("duration_changed_share", "durations changed", "{:.1%}"), ("gates", "speech gates", "{}"),
           ("parity", "parity", "{}"), ("ane_cell", "on the ANE (predicted)", "{}"),
           ("seconds", "build s", "{:.0f}"), ("digest_cell", "package sha256", "{}"))
CSV_FIELDS = ("name", "label", "status", "mb", "teacher_forced_pesq", "teacher_forced_mcd_db", "f0_error_cents",
              "mcd_dtw_db", "duration_changed_share", "mel_correlation", "gates", "parity", "seconds",
              "what", "settings", "ane", "packages", "pareto", "error", "log")


def measure(variant_dir: Path) -> dict:
    """Size, package digests, predicted ANE share per stage, parity and, once the
    report ran, the speech metrics and gate verdicts of a built variant; {} before its
    manifest exists."""
    from kokoro_build.report.summary import variant_summary
    from kokoro_build.schema.manifest import load_manifest
    if not (variant_dir / "manifest.json").is_file():
        return {}
    manifest = load_manifest(variant_dir)
    packages = {a.package: (a.sha256, a.bytes) for _, a in manifest.artifacts()}
    spoken = variant_dir / "report" / "summary.json"
    summary = json.loads(spoken.read_text()) if spoken.is_file() else variant_summary(variant_dir)
    audio = summary.get("audio")
    row = {"mb": round(sum(size for _, size in packages.values()) / 1e6, 2),
           "packages": {path: sha for path, (sha, _) in sorted(packages.items())},
           "ane": {stage: round(s.get("placed_flop_share", 0.0), 3) for stage, s in summary["stages"].items()},
           "parity": "pass" if summary["passed"] else "FAIL"}
    if audio is None:  # built short of its report (tasks:)
        return {**row, "gates": None}
    columns = speech_columns(audio)
    failures = columns.pop("failures")
    gates = "error: " + audio["error"] if "error" in audio else \
        ("missed: " + "; ".join(failures) if failures else "pass")
    return {**row, **columns, "gates": gates}


def write_results(folder: Path, title: str, rows: list[dict]) -> list[Path]:
    """results.md, results.csv, results.json and (when some variant was measured)
    pareto.png in `folder`; the paths written."""
    from kokoro_build.store.package import atomic_path, write_json
    front = pareto_front(rows)
    marked = [{**row, "pareto": row["name"] in front} for row in rows]
    written = [folder / "results.json", folder / "results.csv", folder / "results.md"]
    write_json(written[0], {"sweep": title, "variants": marked})
    with atomic_path(written[1]) as tmp:
        tmp.write_text(_csv(marked))
    shown = [_display(row) for row in marked]
    lines = [f"# Sweep {title}\n", table(shown, COLUMNS),
             "Variants:\n\n" + "".join(f"- {row['label']}: {row.get('what', '')}\n" for row in rows),
             _failures(rows)]
    points = [{**row, "name": row["label"], "kind": "variant"} for row in rows
              if row.get("teacher_forced_pesq") is not None and row.get("mb") is not None]
    if points:
        written.append(folder / "pareto.png")
        with atomic_path(written[-1]) as tmp:
            tmp.write_bytes(plot(points, None, [r["label"] for r in rows if r["name"] in front]))
        lines.append("Size against teacher-forced PESQ: pareto.png (dashed: the Pareto front, "
                     "marked * in the table).\n")
    else:
        lines.append("No plot: no variant was built through its report (speech metrics come from it).\n")
    with atomic_path(written[2]) as tmp:
        tmp.write_text("\n".join(part for part in lines if part))
    return written


def _display(row: dict) -> dict:
    ane = row.get("ane") or {}
    packages = row.get("packages") or {}
    return {**row, "label": row["label"] + (" *" if row["pareto"] else ""),
            "ane_cell": ", ".join(f"{stage} {share:.0%}" for stage, share in ane.items()) or None,
            "digest_cell": " ".join(f"{Path(p).with_suffix('')}:{sha[:12]}" for p, sha in packages.items()) or None}


def _failures(rows: list[dict]) -> str:
    failed = [row for row in rows if row["status"] != "ok"]
    if not failed:
        return ""
    lines = ["## Failed variants", ""]
    for row in failed:
        tail = "\n".join("    " + line for line in str(row.get("error", "")).splitlines()[-15:])
        where = f" (the whole output: {row['log']})" if row.get("log") else ""
        lines.append(f"- {row['label']} ({row['status']}){where}:\n\n{tail}\n")
    return "\n".join(lines) + "\n"


def _csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_cell(row.get(key)) for key in CSV_FIELDS})
    return out.getvalue()


def _csv_cell(value):
    if isinstance(value, dict):
        return "; ".join(f"{k}={v}" for k, v in value.items())
    return "" if value is None else value
