"""`kokoro-build tune` end to end on the small random-weight Kokoro: converted
packages, captures, trials on two workers, allocation, the recipe, its build through
the report, the Pareto outputs; then a warm rerun that runs no trial."""
import json

import pytest

from tiny import ISLAND_STAGES, NO_SPEECH_GATES, header

pytestmark = pytest.mark.slow

# RangeDim frames: the random model's durations are long, and a range needs no bucket.
PIPELINE = header("tune-tiny") + "stages:\n  duration: {kind: duration, shapes: {tokens: {range: [2, 512]}}}\n" + \
    ISLAND_STAGES.replace("{buckets: [24]}", "{range: [1, 400]}") + NO_SPEECH_GATES


def test_tune_writes_a_recipe_that_builds_and_a_warm_rerun_runs_nothing(tmp_path):
    from kokoro_build.schema.config import load_config
    from kokoro_build.tune.run import TuneRequest, tune
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    lines: list[str] = []
    # the LSTM, conv and big linear weights only (> 100k elements): ~10 weights, 40 trials
    request = TuneRequest(config_path=str(tmp_path / "pipeline.yaml"), stages=("duration", "prosody"),
                          budget_mb=14, workers=2, texts=("Hello there.",), min_weight_elements=100_000)
    first = tune(request, log=lines.append)
    assert first["fits"] and first["predicted_mb"] <= 14
    assert any(line.startswith("tune: left out pal4") for line in lines)  # coremltools #2716
    ran = [line for line in lines if " trials to run, " in line][0]
    assert not ran.startswith("tune: 0 trials")
    labels = {t["label"] for t in first["trials"]}
    assert labels == {"pal8", "pal6", "pal2", "int8", "skm2"}  # skm4 is left out with pal4
    assert (tmp_path / "artifacts" / "tune-tiny" / "tune" / "sensitivity.npz").is_file()
    recipe = load_config(first["recipe"])
    named = {**recipe.stages["duration"].compress.op_names, **recipe.stages["prosody"].compress.op_names}
    assert named and all(m is None or m.palettize or m.linear for m in named.values())  # None: fp16
    measured = first["measured"]
    assert "error" not in measured and measured["mb"] > 0, measured  # built through its report
    tune_dir = tmp_path / "artifacts" / "tune-tiny" / "tune"
    assert (tune_dir / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    assert "tuned-14" in (tune_dir / "pareto.md").read_text()
    assert json.loads((tune_dir / "points.json").read_text())["tuned-14"]["mb"] == measured["mb"]

    lines.clear()
    again = tune(TuneRequest(**{**request.__dict__, "verify": False}), log=lines.append)
    assert any(line.startswith("tune: 0 trials to run") for line in lines), lines
    assert any(line.startswith("tune: sensitivities of duration, prosody unchanged") for line in lines), lines
    assert again["trials"] == first["trials"] and again["predicted_mb"] == first["predicted_mb"]
    data_free = tune(TuneRequest(**{**request.__dict__, "verify": False, "exclude": frozenset({"skm2"})}),
                     log=lines.append)
    assert {t["label"] for t in data_free["trials"]} == {"pal8", "pal6", "pal2", "int8"}


def test_sensitive_palettes_build_through_the_sensitivity_task(tmp_path):
    """A stage palettized with sensitive k-means: the sensitivity task runs, and every
    compressed weight had a measured sensitivity."""
    from kokoro_build.plan.invoke import run_doit
    (tmp_path / "pipeline.yaml").write_text(PIPELINE.replace(
        "  duration: {kind: duration, shapes: {tokens: {range: [2, 512]}}}\n",
        "  duration: {kind: duration, shapes: {tokens: {range: [2, 512]}},\n"
        "             compress: {palettize: {nbits: 2, mode: sensitive_kmeans}, min_weight_elements: 100000}}\n"))
    run_doit(str(tmp_path / "pipeline.yaml"), ["duration"], log=lambda line: None)
    variant = tmp_path / "artifacts" / "tune-tiny"
    assert (variant / "_work" / "sensitivity.npz").is_file()
    (report,) = (variant / "duration").glob("*.report.json")
    summary = json.loads(report.read_text())["sensitive_kmeans"]
    assert summary["weights_measured"] > 0 and summary["groups_unweighted"] == 0, summary
