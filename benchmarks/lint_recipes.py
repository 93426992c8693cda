"""The device-risk lint on every recipe's real packages.

    .venv/bin/python benchmarks/lint_recipes.py [RECIPE ...] [--json OUT]

For each recipe (default: pipeline.yaml and every recipes/*.yaml) it builds, with the
normal doit graph, only the steps up to each artifact's final package (convert, or
compress, or the multifunction merge), then runs the same lint the verify step runs
(verify/task.py `lint_artifact`) on each package. The parity checks are skipped: they
don't change what the lint reads (the program and the artifact's settings). Packages
come from the shared step cache where another recipe already built them.

Prints a Markdown table: recipe, artifact, rule id, severity, where.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kokoro_build.plan.paths import artifacts_dir, calibration_path  # noqa: E402
from kokoro_build.plan.tasks import stage_runs  # noqa: E402
from kokoro_build.schema.config import load_config  # noqa: E402


def final_tasks(config, out: Path) -> list[tuple[str, list]]:
    """(the doit task that writes a stage's final package(s), its runs) per stage."""
    tasks = []
    for name, stage in config.stages.items():
        if stage.kind == "g2p":
            continue  # its lexicon and GRU package: one fp32 CPU model, the same in every recipe
        runs = stage_runs(config, name, out, calibration_path(out))
        step = "compress" if stage.compress else "convert"
        if stage.packaging == "multifunction":
            tasks.append((f"{name}:merge", runs))
        else:
            tasks += [(f"{name}:{run.point.label}.{step}", [run]) for run in runs]
    return tasks


def lint_recipe(path: Path) -> tuple[list[dict], float]:
    from kokoro_build.verify.mil_eval import MilEvaluator
    from kokoro_build.verify.task import lint_artifact

    config = load_config(str(path))
    out = artifacts_dir(config, path)
    tasks = final_tasks(config, out)
    start = time.time()
    result = subprocess.run([sys.executable, "-m", "doit", "-f", str(ROOT / "dodo.py"), f"config={path}",
                             *[t for t, _ in tasks]], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{path.name}: the build failed\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    seconds = time.time() - start
    rows = []
    for _, runs in tasks:
        program = MilEvaluator(runs[0].paths.package).program
        for run in runs:
            artifact = Path(run.paths.package).relative_to(out).as_posix() + (f":{run.function}" if run.function else "")
            findings = lint_artifact(run, program, run.function or "main")
            rows += [{"recipe": config.name, "artifact": artifact, "id": f["id"], "severity": f["severity"],
                      "where": len(f["where"])} for f in findings]
            if not findings:
                rows.append({"recipe": config.name, "artifact": artifact, "id": None})
    return rows, seconds


def markdown(rows: list[dict]) -> str:
    lines = ["| recipe | artifacts | clean | findings (rule: artifacts) |", "|---|---|---|---|"]
    for recipe in dict.fromkeys(r["recipe"] for r in rows):
        mine = [r for r in rows if r["recipe"] == recipe]
        artifacts = sorted({r["artifact"] for r in mine})
        flagged = {r["artifact"] for r in mine if r["id"]}
        rules: dict[str, list[str]] = {}
        for r in mine:
            if r["id"]:
                rules.setdefault(f"{r['id']} ({r['severity']})", []).append(r["artifact"])
        text = "; ".join(f"{rule}: {', '.join(sorted(set(a)))}" for rule, a in sorted(rules.items())) or "none"
        lines.append(f"| {recipe} | {len(artifacts)} | {len(artifacts) - len(flagged)} | {text} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("recipes", nargs="*", help="recipe names or files (default: pipeline.yaml and recipes/*.yaml)")
    parser.add_argument("--json")
    args = parser.parse_args()
    paths = ([Path(r) if r.endswith(".yaml") else ROOT / "recipes" / f"{r}.yaml" for r in args.recipes]
             or [ROOT / "pipeline.yaml", *sorted((ROOT / "recipes").glob("*.yaml"))])
    rows = []
    for path in paths:
        found, seconds = lint_recipe(path)
        print(f"{path.name}: {len({r['artifact'] for r in found})} artifacts linted ({seconds:.0f} s to build)",
              file=sys.stderr, flush=True)
        rows += found
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
