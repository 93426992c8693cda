"""The doit graph is built from the config alone, with narrow config slices."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kokoro_build.schema.config import load_config
from kokoro_build.model.stages import stage_kinds
from kokoro_build.schema.kinds import KINDS
from kokoro_build.schema.pass_catalog import PRESETS
from kokoro_build.plan.tasks import generate_tasks

ROOT = Path(__file__).resolve().parents[1]


def run_of(task):
    """The StageRun a stage step's action is given (schema/run.py)."""
    (run,) = task["actions"][0][1]
    return run


def tasks_by_name(config_path):
    config = load_config(config_path)
    return {f"{t['basename']}:{t['name']}" if t.get("name") else t["basename"]: t
            for t in generate_tasks(config, config_path)}


def test_default_graph_has_one_export_convert_and_verify_per_bucket():
    names = set(tasks_by_name(ROOT / "recipes" / "ios17.yaml"))
    stages = ("prosody", "noise", "vocoder", "tail")
    expected = {"weights", "runtime", "duration", *stages, "manifest", "report"}
    for frames in (120, 200, 400, 1200):
        for stage in stages:
            expected |= {f"{stage}:frames_{frames}.{step}" for step in ("export", "convert", "verify")}
    expected |= {f"{stage}:{label}.{step}" for stage, label in (("duration", "tokens_range"),
                                                                 ("g2p", "chars_range"))
                 for step in ("export", "convert", "verify")}
    expected |= {"g2p", "g2p:checkpoint", "g2p:lexicon"}
    assert names == expected


def test_g2p_stage_builds_from_its_own_checkpoint_and_the_lexicon(tmp_path):
    tasks = tasks_by_name(ROOT / "recipes" / "ios17.yaml")
    checkpoint, lexicon = tasks["g2p:checkpoint"], tasks["g2p:lexicon"]
    assert any(p.endswith("g2p_en/checkpoint20.npz") for p in checkpoint["file_dep"])
    assert {Path(p).name for p in lexicon["file_dep"]} >= {"us_gold.json", "us_silver.json", "lexicon.py"}
    assert lexicon["targets"][0].endswith("ios17/g2p/lexicon.tsv")
    export = tasks["g2p:chars_range.export"]
    assert any(p.endswith("weights/g2p_en.digest.json") for p in export["file_dep"])
    assert not any(p.endswith("weights/kokoro.digest.json") for p in export["file_dep"])
    assert run_of(export).voice is None  # it takes no voice: a voice change doesn't rebuild it
    assert any(p.endswith("model/stages/g2p.py") for p in export["file_dep"])
    # G2P-only code is no dependency of Kokoro's weights, exports or verifications
    for name in ("weights", "duration:tokens_range.export", "vocoder:frames_120.verify"):
        assert not any(p.endswith(("g2p.py", "g2p_en.py", "lexicon.py")) for p in tasks[name]["file_dep"]), name
    manifest = tasks["manifest"]
    assert any(p.endswith("g2p/lexicon.digest.json") for p in manifest["file_dep"])
    # another dialect rebuilds the lexicon only
    gb = tmp_path / "pipeline.yaml"
    gb.write_text((ROOT / "recipes" / "ios17.yaml").read_text().replace("dialect: us", "dialect: gb"))
    changed = tasks_by_name(gb)
    assert changed["g2p:lexicon"]["uptodate"][0].config != lexicon["uptodate"][0].config
    assert changed["g2p:chars_range.export"]["uptodate"][0].config == export["uptodate"][0].config


def test_verify_tasks_gate_by_precision_and_output(tmp_path):
    text = (ROOT / "recipes" / "ios17.yaml").read_text().replace(
        "  parity: {min_psnr_db: 35}\n",
        "  parity: {min_psnr_db: 40, fp16_min_psnr_db: 28, outputs: {f0: 25, tail.audio: 50}}\n")
    config = tmp_path / "p.yaml"
    config.write_text(text)
    tasks = tasks_by_name(config)

    def thresholds(name):
        return run_of(tasks[name]).thresholds
    assert thresholds("prosody:frames_120.verify") == {"min_psnr_db": 28, "outputs": {"f0": 25}}
    assert thresholds("tail:frames_120.verify") == {"min_psnr_db": 40, "outputs": {"f0": 25, "audio": 50}}
    verify = tasks["vocoder:frames_120.verify"]
    assert any(dep.endswith("frames_120.digest.json") for dep in verify["file_dep"])
    assert any(t.endswith("frames_120.verify.json") for t in verify["targets"])


def test_config_slices_are_per_bucket(tmp_path):
    text = (ROOT / "recipes" / "ios17.yaml").read_text()
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(text)
    b.write_text(text.replace("[120, 200, 400, 1200]", "[120, 240, 400, 1200]"))
    ta, tb = tasks_by_name(a), tasks_by_name(b)

    def slice_of(task):
        return task["uptodate"][0].config

    for name in ("weights", "vocoder:frames_400.export", "vocoder:frames_400.convert"):
        assert slice_of(ta[name]) == slice_of(tb[name])
    assert "vocoder:frames_200.export" in ta and "vocoder:frames_200.export" not in tb


def test_every_step_depends_on_its_code_and_upstream_digest():
    tasks = tasks_by_name(ROOT / "recipes" / "ios17.yaml")
    export, convert = tasks["vocoder:frames_120.export"], tasks["vocoder:frames_120.convert"]
    assert any(p.endswith("weights/kokoro.digest.json") for p in export["file_dep"])
    assert any(p.endswith("model/surgery/passes/stft.py") for p in export["file_dep"])
    assert any(p.endswith("_work/vocoder/frames_120.digest.json") for p in convert["file_dep"])
    assert any(p.endswith("kokoro_build/targets/coreml/convert.py") for p in convert["file_dep"])
    assert not any(Path(p).is_dir() for t in tasks.values() for p in t.get("file_dep", []))


def test_multifunction_converts_each_bucket_then_merges_them(tmp_path):
    text = (ROOT / "recipes" / "ios17.yaml").read_text().replace("deployment: iOS17", "deployment: iOS18").replace(
        "    islands: [noise, tail]\n", "    islands: [noise, tail]\n    packaging: multifunction\n")
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(text)
    b.write_text(text.replace("[120, 200, 400, 1200]", "[120, 240, 400, 1200]"))
    ta, tb = tasks_by_name(a), tasks_by_name(b)
    merge = ta["vocoder:merge"]
    functions, default, package = merge["actions"][0][1]
    assert list(functions) == ["frames_120", "frames_200", "frames_400", "frames_1200"]
    assert default == "frames_1200" and package.endswith("vocoder/vocoder.mlpackage")
    assert all("/_work/vocoder/functions/" in path for path in functions.values())  # intermediates
    assert ta["vocoder:frames_200.convert"]["targets"][0].endswith("_work/vocoder/functions/frames_200.mlpackage")
    verify = ta["vocoder:frames_200.verify"]
    assert any(dep.endswith("vocoder/vocoder.digest.json") for dep in verify["file_dep"])
    assert run_of(verify).function == "frames_200"  # the function it runs
    stage_dir = tmp_path / "artifacts" / "ios17" / "vocoder"
    assert verify["targets"] == [str(stage_dir / "frames_200.verify.json"), str(stage_dir / "frames_200.golden.npz")]
    # one bucket changed: the other buckets' conversions keep their slices; the merge's changes
    slice_of = lambda task: task["uptodate"][0].config  # noqa: E731
    assert slice_of(ta["vocoder:frames_400.convert"]) == slice_of(tb["vocoder:frames_400.convert"])
    assert slice_of(ta["vocoder:merge"]) != slice_of(tb["vocoder:merge"])
    assert "prosody:merge" not in ta  # separate, as before
    entries = ta["manifest"]["actions"][0][1][0]["stages"]["vocoder"]["artifacts"]
    assert {e["function"] for e in entries} == set(functions) and len({e["package"] for e in entries}) == 1


def test_the_kind_table_knows_exactly_the_registered_stage_kinds():
    # the config can't import the stage modules (torch): the torch-free table names them
    kinds = stage_kinds()
    assert set(KINDS) == set(kinds)
    for kind, row in KINDS.items():
        assert kinds[kind].__module__ == row.module, kind
        assert row.preset in PRESETS, kind


def test_stage_surgery_reaches_the_export_task(tmp_path):
    text = (ROOT / "recipes" / "ios17.yaml").read_text().replace(
        "surgery: {preset: coreml-default}", "surgery: {remove: [kokoro::constant_rsqrt]}")
    config = tmp_path / "p.yaml"
    config.write_text(text)
    export = tasks_by_name(config)["vocoder:frames_120.export"]
    passes = run_of(export).passes
    assert run_of(tasks_by_name(config)["duration:tokens_range.export"]).flexible == {
        "tokens": {"range": [2, 512]}}
    assert [p for p, _ in passes] == ["kokoro::remove_dropout", "kokoro::fold_weight_norm",
                                      "kokoro::stft_conv", "kokoro::deterministic_noise",
                                      "kokoro::unpack_lstm", "kokoro::albert_inputs",
                                      "kokoro::mask_padding"]


def test_dodo_imports_no_heavy_library():
    code = ("import sys; sys.argv=['doit']; import runpy; runpy.run_path('dodo.py');"
            "heavy = {'torch', 'coremltools', 'kokoro', 'onnx', 'numpy'} & set(sys.modules);"
            "print(sorted(heavy))")
    # PYTHONHASHSEED=0: otherwise dodo.py re-runs itself as doit with the seed pinned
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env=env)
    assert out.stdout.strip() == "[]"


def test_alignment_where_host_builds_nothing_and_graph_builds_buckets(tmp_path):
    text = (ROOT / "recipes" / "ios17.yaml").read_text().replace("stages:\n", "stages:\n  align: {kind: alignment, where: host}\n")
    host = tmp_path / "host.yaml"
    host.write_text(text)
    names = set(tasks_by_name(host))
    assert not any(n.startswith("align") for n in names)
    manifest = tasks_by_name(host)["manifest"]["actions"][0][1][0]["stages"]
    assert manifest["align"] == {"kind": "alignment", "where": "host", "artifacts": []}
    graph = tmp_path / "graph.yaml"
    graph.write_text(text.replace("{kind: alignment, where: host}", "{kind: alignment, where: graph, "
                                  "shapes: {tokens: {buckets: [64]}, frames: {buckets: [120, 400]}}}"))
    assert {"align:tokens_64-frames_120.convert", "align:tokens_64-frames_400.convert"} <= set(tasks_by_name(graph))


@pytest.mark.parametrize("recipe", sorted((ROOT / "recipes").glob("*.yaml")), ids=lambda p: p.stem)
def test_recipes_validate_and_build_beside_the_default_variant(recipe):
    from kokoro_build.schema.config import load_config
    from kokoro_build.plan.paths import artifacts_dir
    config = load_config(recipe)
    assert config.name == recipe.stem
    assert artifacts_dir(config, recipe) == ROOT / "artifacts" / recipe.stem
    assert "manifest" in tasks_by_name(recipe)


def test_compress_runs_between_convert_and_verify_and_watches_only_its_block(tmp_path):
    def pipeline(bits):
        path = tmp_path / f"pal{bits}.yaml"
        path.write_text((ROOT / "recipes" / "ios17.yaml").read_text().replace(
            "    surgery: {preset: coreml-default}\n",
            f"    surgery: {{preset: coreml-default}}\n    compress: {{palettize: {{nbits: {bits}}}}}\n"))
        return tasks_by_name(path)
    six, four = pipeline(6), pipeline(4)
    convert, compress, verify = (six[f"vocoder:frames_120.{s}"] for s in ("convert", "compress", "verify"))
    assert convert["targets"][0].endswith("_work/vocoder/converted/frames_120.mlpackage")
    assert compress["targets"][0].endswith("ios17/vocoder/frames_120.mlpackage")
    assert any(p.endswith("_work/vocoder/converted/frames_120.digest.json") for p in compress["file_dep"])
    assert any(p.endswith("ios17/vocoder/frames_120.digest.json") for p in verify["file_dep"])
    assert "prosody:frames_120.compress" not in six  # only the stage that asks
    for name in ("vocoder:frames_120.export", "vocoder:frames_120.convert"):
        assert six[name]["uptodate"][0].config == four[name]["uptodate"][0].config
    assert six["vocoder:frames_120.compress"]["uptodate"][0].config != \
        four["vocoder:frames_120.compress"]["uptodate"][0].config
    # compressed artifacts are gated by verify.parity.compressed_min_psnr_db
    assert run_of(verify).thresholds["min_psnr_db"] == 20.0


def test_a_multifunction_stage_compresses_each_bucket_before_the_merge(tmp_path):
    path = tmp_path / "mf.yaml"
    path.write_text((ROOT / "recipes" / "multifunction.yaml").read_text().replace(
        "    kind: vocoder\n", "    kind: vocoder\n    compress: {linear: {}}\n", 1))
    tasks = tasks_by_name(path)
    compress, merge = tasks["vocoder:frames_120.compress"], tasks["vocoder:merge"]
    assert compress["targets"][0].endswith("_work/vocoder/functions/frames_120.mlpackage")
    assert any(p.endswith("_work/vocoder/functions/frames_120.digest.json") for p in merge["file_dep"])
    assert tasks["vocoder:frames_120.convert"]["targets"][0].endswith("_work/vocoder/converted/frames_120.mlpackage")


def test_w8a8_calibrates_on_every_converted_package_before_compressing(tmp_path):
    tasks = tasks_by_name(ROOT / "recipes" / "w8a8.yaml")
    calibration = tasks["calibration"]
    assert calibration["targets"][0].endswith("w8a8/_work/calibration.json")
    # every stage's converted package runs, the uncompressed islands' included
    deps = [p for p in calibration["file_dep"] if p.endswith(".digest.json")]
    for stage in ("duration/converted/tokens_range", "prosody/converted/frames_range",
                  "vocoder/converted/frames_range"):
        assert any(p.endswith(f"_work/{stage}.digest.json") for p in deps), stage
    assert any(p.endswith("w8a8/noise/frames_range.digest.json") for p in deps)
    assert not any(p.endswith("w8a8/vocoder/frames_range.digest.json") for p in deps)  # not the compressed one
    plan, _ = calibration["actions"][0][1]
    assert plan["texts"][:1] == ["Kokoro turns written words into speech, one sentence at a time."]
    assert len(plan["texts"]) == 4
    assert plan["voice"] == "jf_alpha" and len(plan["required"]) == 2  # the A8 stages (prosody, vocoder)
    # the A8 stages' compress steps read it, with their package's key
    compress = tasks["vocoder:frames_range.compress"]
    assert any(p.endswith("_work/calibration.json") for p in compress["file_dep"])
    assert run_of(compress).paths.calibration_key == "_work/vocoder/converted/frames_range.mlpackage"
    # other texts re-calibrate; no trace or conversion watches them
    other = tmp_path / "w8a8.yaml"  # an overlay on the recipe: one field changes
    other.write_text(f"extends: {ROOT / 'recipes' / 'w8a8.yaml'}\nname: w8a8\ncalibration: {{count: 3}}\n")
    changed = tasks_by_name(other)
    assert changed["calibration"]["uptodate"][0].config != calibration["uptodate"][0].config
    for name in ("vocoder:frames_range.export", "vocoder:frames_range.convert", "vocoder:frames_range.compress"):
        assert changed[name]["uptodate"][0].config == tasks[name]["uptodate"][0].config
    # without activations there is no calibration step
    assert "calibration" not in tasks_by_name(ROOT / "recipes" / "w8.yaml")


DEFAULT_FRAMES = (64, 96, 136, 200, 288, 416, 600, 864)  # pipeline.yaml's frame buckets


def test_the_default_traces_and_converts_each_stage_once_and_materializes_its_buckets():
    tasks = tasks_by_name(ROOT / "pipeline.yaml")
    vocoder = {name for name in tasks if name.startswith("vocoder:")}
    assert vocoder == {"vocoder:frames_buckets.export", "vocoder:frames_buckets.convert",
                       "vocoder:frames_buckets.compress", "vocoder:materialize",
                       *(f"vocoder:frames_{f}.verify" for f in DEFAULT_FRAMES)}
    export = run_of(tasks["vocoder:frames_buckets.export"])
    assert export.sizes == {"frames": 864} and export.flexible == {"frames": {"buckets": list(DEFAULT_FRAMES)}}
    plan, package = tasks["vocoder:materialize"]["actions"][0][1]
    assert plan["source"].endswith("_work/vocoder/source/frames_buckets.mlpackage")
    assert plan["functions"] == {f"frames_{f}": {"frames": f} for f in DEFAULT_FRAMES}
    assert plan["default"] == "frames_864" and package.endswith("default/vocoder/vocoder.mlpackage")
    verify = tasks["vocoder:frames_288.verify"]
    run = run_of(verify)
    assert run.function == "frames_288" and run.sizes == {"frames": 288} and not run.flexible
    assert run.paths.traced.endswith("_work/vocoder/frames_buckets.traced.pt")  # the one twin
    assert run.paths.report in tasks["vocoder:materialize"]["targets"]  # the function's fixed I/O
    assert any(dep.endswith("vocoder/vocoder.digest.json") for dep in verify["file_dep"])
    # calibration and tune run the range conversion at each bucket
    from kokoro_build.plan.tasks import converted_stages
    config = load_config(ROOT / "pipeline.yaml")
    entries = converted_stages(config, Path("/x/artifacts/default"))["vocoder"]["artifacts"]
    assert [e["sizes"] for e in entries] == [{"frames": f} for f in DEFAULT_FRAMES]
    assert {e["package"] for e in entries} == {"/x/artifacts/default/_work/vocoder/converted/frames_buckets.mlpackage"}
    assert {e["task"] for e in entries} == {"vocoder:frames_buckets.convert"}


def test_sensitive_palettes_measure_once_and_feed_only_their_stages_compress(tmp_path):
    overlay = tmp_path / "skm.yaml"
    overlay.write_text(f"extends: {ROOT / 'pipeline.yaml'}\nname: skm\nstages:\n  vocoder:\n    compress:\n"
                       "      palettize: {nbits: 3, mode: sensitive_kmeans}\n")
    tasks = tasks_by_name(overlay)
    sensitivity = tasks["sensitivity"]
    assert sensitivity["targets"][0].endswith("skm/_work/sensitivity.npz")
    plan, _ = sensitivity["actions"][0][1]
    # fitted on other texts than tune's trials judge on
    assert plan["sensitive"] == ["vocoder"] and len(plan["texts"]) == 4
    assert not set(plan["texts"]) & set(load_config(overlay).tune_texts)
    # the chain runs every stage's twin: each one's trace is watched, and no compressed package
    deps = sensitivity["file_dep"]
    for stage in ("duration", "prosody", "vocoder"):
        assert any(p.endswith(f"_work/{stage}/frames_buckets.digest.json") or
                   p.endswith(f"_work/{stage}/tokens_buckets.digest.json") for p in deps), stage
    assert not any(p.endswith("skm/vocoder/vocoder.mlpackage.digest.json") for p in deps)
    compress = tasks["vocoder:frames_buckets.compress"]
    assert any(p.endswith("_work/sensitivity.npz") for p in compress["file_dep"])
    assert not any(p.endswith("_work/sensitivity.npz") for p in tasks["prosody:frames_buckets.compress"]["file_dep"])
    # data-free palettes measure nothing
    assert "sensitivity" not in tasks_by_name(ROOT / "pipeline.yaml")
