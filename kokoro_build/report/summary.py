"""A built variant at a glance: every artifact's size, parity and ANE verdict, from
the manifest and the `<shape>.verify.json` files the verify tasks wrote."""
from __future__ import annotations

import json
from pathlib import Path

from kokoro_build.report.device import device_path
from kokoro_build.schema.manifest import Manifest, load_manifest
from kokoro_build.store.manifest import verify_path


def variant_summary(variant_dir: str | Path) -> dict:
    root = Path(variant_dir)
    manifest = load_manifest(root)
    rows, stages = [], {}
    for stage_name, stage in manifest.stages.items():
        flops = eligible = unknown = placed = 0.0
        for artifact in stage.artifacts:
            verified = artifact.verify_report or verify_path(artifact.package)
            report = json.loads((root / verified).read_text())
            verify, ane = report["verify"], report["ane"]
            worst = min(verify["outputs"].items(), key=lambda kv: kv[1]["psnr_db"] - kv[1]["min_psnr_db"])
            rows.append({
                "stage": stage_name, "kind": stage.kind, "artifact": Path(artifact.package).name + (
                    f":{artifact.function}" if artifact.function else ""),
                "megabytes": artifact.bytes / 1e6, "precision": artifact.precision,
                "passed": verify["passed"], "worst_output": worst[0], "psnr_db": worst[1]["psnr_db"],
                "min_psnr_db": worst[1]["min_psnr_db"], "mel_correlation": worst[1].get("mel_correlation"),
                "op_share": ane["op_share"], "flop_share": ane["flop_share"],
                "unknown_flop_share": ane.get("unknown_flop_share", 0.0), "segments": ane["segments"],
                "placed_flop_share": _placed(ane), "placed_segments": ane.get("placement", {}).get("segments"),
                "lint": report.get("lint", []), "device": _device(root / verified),
                "measured": ane["measured"], "build_seconds": sum(report.get("seconds", {}).values()),
                "memory_bytes": report.get("memory", {}).get("lower_bound_bytes"),  # verify/memory.py
                "eval_seconds": verify["evaluator"]["seconds"]})
            flops += ane["flops"]
            eligible += ane["eligible_flops"]
            unknown += ane.get("unknown_flop_share", 0.0) * ane["flops"]
            placed += (_placed(ane) or 0.0) * ane["flops"]
        stages[stage_name] = {"kind": stage.kind, "artifacts": len(stage.artifacts),
                              "flop_share": eligible / flops if flops else 0.0,
                              "unknown_flop_share": unknown / flops if flops else 0.0,
                              "placed_flop_share": placed / flops if flops else 0.0}
    programs = _program_rows(root, manifest)
    return {"name": manifest.name, "weights": manifest.weights.model_dump(exclude_none=True), "artifacts": rows,
            "stages": stages, "programs": programs,
            "passed": all(r["passed"] for r in rows + programs)}


def _device(verified: Path) -> dict | None:
    """What an ingested device report measured for this artifact (report/device.py)."""
    path = device_path(verified)
    return json.loads(path.read_text()) if path.is_file() else None


def _placed(ane: dict) -> float | None:
    """The predicted (or measured) ANE share of FLOPs; None in a report from before
    placement was predicted."""
    return ane.get("placement", {}).get("ane_flop_share")


def _program_rows(root: Path, manifest: Manifest) -> list[dict]:
    """The ExecuTorch programs (targets: [.., executorch]), a row each."""
    rows = []
    for stage_name, artifact in manifest.artifacts():
        if artifact.executorch is not None:
            report = json.loads((root / artifact.executorch.verify_report).read_text())
            outputs = report["verify"]["outputs"]
            worst = min(outputs.items(), key=lambda kv: kv[1]["psnr_db"] - kv[1]["min_psnr_db"])
            rows.append({"stage": stage_name, "program": Path(artifact.executorch.program).name,
                         "megabytes": report["bytes"] / 1e6, "passed": report["verify"]["passed"],
                         "worst_output": worst[0], "psnr_db": worst[1]["psnr_db"],
                         "min_psnr_db": worst[1]["min_psnr_db"], "delegated_share": report["ops"]["delegated_share"],
                         "portable": report["ops"]["portable"], "run_seconds": report["verify"]["seconds"]})
    return rows


def program_table(summary: dict) -> list[list[str]]:
    """Header + one row per ExecuTorch program ([] if the variant has none)."""
    if not summary.get("programs"):
        return []
    table = [["stage", "program", "MB", "parity (worst output)", "ops on XNNPACK", "most common portable ops"]]
    for r in summary["programs"]:
        verdict = "pass" if r["passed"] else "FAIL"
        common = sorted(r["portable"].items(), key=lambda kv: -kv[1])[:3]
        table.append([r["stage"], r["program"], f"{r['megabytes']:.1f}",
                      f"{verdict}: {r['worst_output']} {r['psnr_db']:.1f} dB (min {r['min_psnr_db']:g})",
                      f"{r['delegated_share']:.0%}", ", ".join(f"{name} {n}" for name, n in common)])
    return table


def artifact_table(summary: dict) -> list[list[str]]:
    """Header + one row per artifact, as text cells."""
    table = [["stage", "artifact", "MB", "precision", "parity (worst output)", "ANE-supported ops",
              "ANE-supported FLOPs", "on the ANE (predicted)", "segments", "memory ≥ MB"]]
    for r in summary["artifacts"]:
        verdict = "pass" if r["passed"] else "FAIL"
        shared = " (shared)" if ":" in r["artifact"] else ""  # one function of a multifunction package
        table.append([r["stage"], r["artifact"], f"{r['megabytes']:.1f}{shared}", r["precision"],
                      f"{verdict}: {r['worst_output']} {r['psnr_db']:.1f} dB (min {r['min_psnr_db']:g})",
                      f"{r['op_share']:.0%}", f"{r['flop_share']:.0%}" +
                      (f" (+{r['unknown_flop_share']:.0%} unknown)" if r["unknown_flop_share"] else ""),
                      _placed_cell(r), str(r["placed_segments"] if r["placed_segments"] is not None else r["segments"]),
                      "–" if r.get("memory_bytes") is None else f"{r['memory_bytes'] / 1e6:.0f}"])
    return table


def _placed_cell(row: dict) -> str:
    if row["placed_flop_share"] is None:
        return "–"
    cell = f"{row['placed_flop_share']:.0%} of FLOPs" + (" (measured)" if row["measured"] else "")
    measured = (row.get("device") or {}).get("measured")
    return cell + (f"; device: {measured['ane_op_share']:.0%} of ops" if measured else "")


def lint_lines(summary: dict) -> list[str]:
    """One line per device-risk finding (verify/lint.py), grouped by rule."""
    by_rule: dict[str, tuple[dict, list[str]]] = {}
    for row in summary["artifacts"]:
        for finding in row.get("lint", []):
            by_rule.setdefault(finding["id"], (finding, []))[1].append(row["artifact"])
    return [f"{f['severity']}: {rule_id}: {f['on_device']} ({f['source']}); in {', '.join(artifacts)}"
            for rule_id, (f, artifacts) in by_rule.items()]


def format_terminal(summary: dict) -> str:
    lines = [f"variant {summary['name']}: {'all artifacts verified' if summary['passed'] else 'VERIFY FAILED'}"]
    lines += _aligned(artifact_table(summary))
    lines.append("ANE FLOPs per stage, supported / predicted placement (predictions from public device "
                 "reports, not measurements): " + ", ".join(
                     f"{name} {stage['flop_share']:.0%} / {stage.get('placed_flop_share', 0.0):.0%}"
                     for name, stage in summary["stages"].items()))
    lint = lint_lines(summary)
    lines += ["Device-risk lint (verify.lint):"] + [f"  {line}" for line in lint] if lint else \
        ["Device-risk lint (verify.lint): no findings"]
    programs = program_table(summary)
    if programs:
        lines += ["ExecuTorch programs (run by the ExecuTorch runtime against the same twins):"]
        lines += _aligned(programs)
    return "\n".join(lines)


def _aligned(table: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = []
    for i, row in enumerate(table):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def markdown_table(table: list[list[str]]) -> str:
    lines = ["| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])]
    lines += ["| " + " | ".join(row) + " |" for row in table[1:]]
    return "\n".join(lines)
