"""`kokoro-build ingest-device-report VARIANT FILE`: a device's measurements (the
release kit's device_report.json, verify/device_check.py) beside the prediction.

For each artifact it writes `<stage>/<shape>.device.json` next to the verify report:
the machine, the device's parity against the golden outputs, its timings, the measured
placement, and every op where the measured device differs from the predicted one.
`kokoro-build report` then shows the measured ANE share beside the predicted one.
"""
from __future__ import annotations

import json
from pathlib import Path

from kokoro_build.schema.manifest import load_manifest
from kokoro_build.store.package import write_json
from kokoro_build.verify.device_check import FORMAT



class DeviceReportError(ValueError):
    pass


def device_path(verify_report: str | Path) -> Path:
    path = Path(verify_report)
    return path.with_name(path.name.removesuffix(".verify.json") + ".device.json")


def _measured(plan: list[dict]) -> dict:
    costs = sum(op["cost"] or 0.0 for op in plan)
    on_ane = [op for op in plan if op["device"] == "ane"]
    return {"ops": len(plan), "ane_op_share": len(on_ane) / len(plan) if plan else 0.0,
            "ane_cost_share": sum(op["cost"] or 0.0 for op in on_ane) / costs if costs else None}


def ingest(variant_dir: str | Path, report_file: str | Path) -> list[dict]:
    """Write the device files; one row per artifact (label, predicted, measured, disagreements)."""
    root = Path(variant_dir)
    try:
        report = json.loads(Path(report_file).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DeviceReportError(f"{report_file}: not a readable JSON device report ({error})") from error
    if report.get("format") != FORMAT:
        raise DeviceReportError(f"{report_file}: format {report.get('format')!r}, expected {FORMAT!r} "
                                "(written by the release's device_check.py)")
    manifest = load_manifest(root)
    if report.get("variant") != manifest.name:
        raise DeviceReportError(f"{report_file} is a report of variant {report.get('variant')!r}, "
                                f"not {manifest.name!r}")
    artifacts = {(a.package, a.function): a for _, a in manifest.artifacts()}
    rows = []
    for measured in report["artifacts"]:
        key = (measured["package"], measured.get("function"))
        if key not in artifacts:
            raise DeviceReportError(f"{report_file}: {key[0]}{':' + key[1] if key[1] else ''} "
                                    f"is not an artifact of {manifest.name}")
        verify_report = artifacts[key].verify_report
        placement = json.loads((root / verify_report).read_text())["ane"].get("placement", {})
        predicted = placement.get("op_devices", {})
        plan = measured.get("compute_plan", [])
        disagreements = [{"op": op["op"], "type": op["type"], "predicted": predicted[op["op"]],
                          "measured": op["device"]}
                         for op in plan if op["op"] in predicted and predicted[op["op"]] != op["device"]]
        entry = {"machine": report["machine"], "passed": measured["passed"], "outputs": measured["outputs"],
                 "predict_ms": measured["predict_ms"], "measured": _measured(plan) if plan else None,
                 "compute_plan_error": measured.get("compute_plan_error"),
                 "predicted": {k: placement.get(k) for k in ("device", "ane_op_share", "ane_flop_share")},
                 "disagreements": disagreements}
        write_json(root / device_path(verify_report), entry)
        rows.append({"artifact": key[0] + (f":{key[1]}" if key[1] else ""), **entry})
    return rows


def format_rows(rows: list[dict]) -> str:
    lines = []
    for row in rows:
        measured = row["measured"]
        share = f"{measured['ane_op_share']:.0%} of ops on the ANE" if measured else "no compute plan"
        lines.append(f"{'pass' if row['passed'] else 'FAIL'}  {row['artifact']}: measured {share}, predicted "
                     f"{(row['predicted']['ane_op_share'] or 0):.0%}; {len(row['disagreements'])} ops disagree"
                     + (f"; median predict {row['predict_ms']['median']:.1f} ms" if row["predict_ms"]["median"]
                        is not None else ""))
        lines += [f"    {d['op']} ({d['type']}): predicted {d['predicted']}, measured {d['measured']}"
                  for d in row["disagreements"][:20]]
    return "\n".join(lines)
