"""`kokoro-build sweep`: the sweep file (expansion, names, located errors), the overlays
it writes, and a run on the in-process executor with a stand-in build (no doit)."""
import csv
import io
import json
from pathlib import Path

import pytest

from kokoro_build.cli import main as cli
from kokoro_build.plan.paths import artifacts_dir, sweep_dir
from kokoro_build.scale.executors import InProcess
from kokoro_build.scale.sweep import run_sweep
from kokoro_build.scale.sweep_file import MAX_NAME, load_sweep
from kokoro_build.schema.config import ConfigError, load_config
from tests.slow.tiny import ISLAND_STAGES, NO_SPEECH_GATES, header

ROOT = Path(__file__).resolve().parents[2]
BASE = header("tiny") + "stages:\n" + ISLAND_STAGES + NO_SPEECH_GATES
GRID = """\
name: bits
base: base.yaml
grid:
  stages.vocoder.compress.palettize.nbits: [8, 6, 4]
  stages.prosody.compress: [null, {linear: {}}]
"""


def write(tmp_path, text: str, name: str = "sweep.yaml") -> Path:
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / name).write_text(text)
    return tmp_path / name


def errors(tmp_path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_sweep(write(tmp_path, text))
    return str(caught.value)


def test_a_grid_is_its_cross_product_named_by_the_last_key_and_value(tmp_path):
    sweep = load_sweep(write(tmp_path, GRID))
    assert [v.label for v in sweep.variants] == [
        "nbits8-compress_none", "nbits8-compress_linear", "nbits6-compress_none",
        "nbits6-compress_linear", "nbits4-compress_none", "nbits4-compress_linear"]
    assert sweep.variants[0].name == "bits-nbits8-compress_none"
    second = sweep.variants[1]
    assert second.overlay == {"stages": {"vocoder": {"compress": {"palettize": {"nbits": 8}}},
                                         "prosody": {"compress": {"linear": {}}}}}
    assert second.grid == {"stages.vocoder.compress.palettize.nbits": 8, "stages.prosody.compress": {"linear": {}}}
    assert sweep.tasks == () and sweep.base == tmp_path / "base.yaml"


def test_named_variants_times_the_grid_dotted_or_nested(tmp_path):
    sweep = load_sweep(write(tmp_path, """\
name: mix
base: base.yaml
grid: {stages.vocoder.compress.palettize.nbits: [8, 6]}
variants:
  - name: plain
  - name: w8-prosody
    stages:
      prosody: {compress: {linear: {}}}
  - name: short
    stages.prosody.shapes.frames.buckets: [12]
tasks: [manifest]
"""))
    assert [v.label for v in sweep.variants] == ["plain-nbits8", "plain-nbits6", "w8-prosody-nbits8",
                                                  "w8-prosody-nbits6", "short-nbits8", "short-nbits6"]
    nested = sweep.variants[2]
    assert nested.overlay["stages"] == {"prosody": {"compress": {"linear": {}}},
                                        "vocoder": {"compress": {"palettize": {"nbits": 8}}}}
    assert nested.describe() == "w8-prosody, stages.vocoder.compress.palettize.nbits=8"
    assert sweep.variants[4].settings["stages.prosody.shapes.frames.buckets"] == [12]
    assert sweep.tasks == ("manifest",)


def test_names_stay_unique_short_and_tell_like_keys_apart(tmp_path):
    sweep = load_sweep(write(tmp_path, f"""\
name: {"n" * 50}
base: base.yaml
grid:
  stages.vocoder.compress.palettize.nbits: [8]
  stages.prosody.compress.palettize.nbits: [6]
  stages.prosody.compress.palettize.mode: [kmeans, uniform]
  stages.prosody.surgery: [{{preset: ane}}, {{preset: none}}]
"""))
    labels = [v.label for v in sweep.variants]
    assert labels[:2] == ["vocoder.nbits8-prosody.nbits6-mode_kmeans-surgery_preset",
                          "vocoder.nbits8-prosody.nbits6-mode_kmeans-surgery_preset-2"]
    assert len(set(v.name for v in sweep.variants)) == 4
    assert all(len(v.name) <= MAX_NAME for v in sweep.variants)


@pytest.mark.parametrize("text, expected", [
    (GRID + "colour: red\n", "sweep.yaml:6: colour: unknown key"),
    (GRID.replace("name: bits", "name: ../bits"), "sweep.yaml:1: name: give the sweep a name"),
    (GRID.replace("base.yaml", "nope.yaml"), "sweep.yaml:2: base: no such file:"),
    (GRID.replace("[8, 6, 4]", "8"), "sweep.yaml:4: grid.stages.vocoder.compress.palettize.nbits: give a list"),
    (GRID.replace("[8, 6, 4]", "[]"), "sweep.yaml:4: grid.stages.vocoder.compress.palettize.nbits: give a list"),
    (GRID.replace("stages.prosody.compress:", "stages..prosody:"),
     "sweep.yaml:5: grid.stages..prosody: not a dotted config path"),
    (GRID + "  stages.vocoder.compress: [null]\n",
     "sweep.yaml:6: grid.stages.vocoder.compress: sets what the grid's stages.vocoder.compress.palettize.nbits"),
    ("name: x\nbase: base.yaml\n", "sweep.yaml:1: give a grid"),
    (GRID + "variants:\n  - {name: a}\n  - {name: a}\n", "sweep.yaml:8: variants[1].name: duplicate variant name"),
    (GRID + "variants:\n  - {stages.vocoder.islands: []}\n", "sweep.yaml:7: variants[0].name: each variant is a mapping"),
    (GRID + "variants:\n  - name: a\n    stages.prosody.compress: {linear: {}}\n",
     "sweep.yaml:7: variants[0]: sets stages.prosody.compress, which the grid's stages.prosody.compress also sets"),
    (GRID + "tasks: manifest\n", "sweep.yaml:6: tasks: must be a list of doit task names"),
    (GRID + "grid: {}\n", "sweep.yaml:6: grid: duplicate key (first defined on line 3)"),
])
def test_a_bad_sweep_file_names_its_file_line_and_field(tmp_path, text, expected):
    assert expected in errors(tmp_path, text)


def test_every_problem_is_reported_at_once_and_a_bad_base_in_the_base(tmp_path):
    message = errors(tmp_path, "name: ../x\nbase: base.yaml\ngrid: 3\ntasks: [1]\n")
    assert [line.split(": ")[1] for line in message.splitlines()] == ["name", "tasks", "grid"]
    (tmp_path / "base.yaml").write_text(BASE.replace("version: 1", "version: 2"))
    (tmp_path / "sweep.yaml").write_text(GRID)
    with pytest.raises(ConfigError, match=r"base.yaml:1: version: "):
        load_sweep(tmp_path / "sweep.yaml")


def test_each_overlay_is_a_recipe_that_validates_and_builds_beside_the_others(tmp_path):
    sweep_file = write(tmp_path, GRID + "variants:\n  - name: ranged\n    stages.prosody.shapes: !replace "
                                        "{frames: {range: [1, 40]}}\n")
    artifacts = tmp_path / "out"
    calls = []
    rows, folder = run_sweep(sweep_file, artifacts, InProcess(), build=lambda job: calls.append(job) or
                             {"status": "ok", "seconds": 1.0})
    assert folder == sweep_dir(artifacts, "bits") and len(calls) == 6
    overlays = sorted((folder / "variants").glob("*.yaml"))
    assert [p.stem for p in overlays] == sorted(r["label"] for r in rows)
    for path in overlays:
        config = load_config(path)  # what `doit config=THAT_FILE` loads
        assert config.name == f"bits-{path.stem}" and config.verify.audio.enforce is False
        assert config.stages["prosody"].shapes["frames"].range == (1, 40)  # !replace written as a tag
        assert artifacts_dir(config, path) == artifacts / config.name
    job = calls[0]
    assert Path(job.config).is_absolute() and job.variant_dir == str(artifacts / job.name)
    assert job.log == str(folder / "logs" / f"{job.label}.log")


def fake_build(job):
    """A build that fails one variant and 'measures' the others by their bits."""
    if "nbits4" in job.label:
        raise RuntimeError("doit config=x failed:\n. vocoder:frames_24.verify\nvocoder: psnr 12 dB < 20")
    bits = 8 if "nbits8" in job.label else 6
    return {"status": "ok", "seconds": 2.0, "mb": bits * 1.5, "teacher_forced_pesq": 3.0 + bits / 10,
            "packages": {f"vocoder/{job.label}.mlpackage": f"{bits:064x}"}, "ane": {"vocoder": 0.9},
            "gates": "pass", "parity": "pass"}


def test_a_failed_or_invalid_variant_is_listed_and_the_others_still_build(tmp_path):
    invalid = "variants:\n  - name: plain\n  - name: lonely\n    stages.vocoder.shapes.frames.buckets: [12]\n"
    lines = []
    rows, folder = run_sweep(write(tmp_path, GRID + invalid), tmp_path / "out", InProcess(), build=fake_build,
                             log=lines.append)
    status = {r["label"]: r["status"] for r in rows}
    assert list(status.values()).count("ok") == 4
    assert [k for k, v in status.items() if v == "failed"] == ["plain-nbits4-compress_none",
                                                                "plain-nbits4-compress_linear"]
    assert [v for v in status.values()].count("invalid") == 6
    lonely = next(r for r in rows if r["status"] == "invalid")
    # the island's shapes are the base's: the problem is located there
    assert "base.yaml:8: stages.noise.shapes: must equal the shapes of vocoder stage vocoder" in lonely["error"]
    assert any(line.startswith("sweep [12/12] ") for line in lines)
    assert any(": ok 12.0 MB in 2 s" in line for line in lines)
    assert "sweep [11/12] bits-plain-nbits4-compress_none: FAILED: vocoder: psnr 12 dB < 20" in lines
    assert lines[1].startswith("sweep [1/12] bits-lonely-nbits8-compress_none: invalid: ")
    assert lines[-1].startswith("sweep bits: 4 built, 2 failed, 6 invalid; ")

    table = (folder / "results.md").read_text()
    assert "| plain-nbits8-compress_none * | ok | 12.0 |" in table  # * on the Pareto front
    assert "## Failed variants" in table and "psnr 12 dB < 20" in table
    assert (folder / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((folder / "results.json").read_text())["variants"]
    assert [r["name"] for r in saved] == [r["name"] for r in rows]  # the file's order
    assert saved[0]["settings"] == {"stages.vocoder.compress.palettize.nbits": 8, "stages.prosody.compress": None}
    table = list(csv.DictReader(io.StringIO((folder / "results.csv").read_text())))
    assert [r["name"] for r in table] == [r["name"] for r in rows]
    assert table[0]["packages"] == f"vocoder/plain-nbits8-compress_none.mlpackage={8:064x}"
    assert "psnr 12 dB < 20" in table[4]["error"] and table[0]["mb"] == "12.0"


def test_a_variant_error_points_back_at_the_sweep_line_that_set_the_field(tmp_path):
    rows, _ = run_sweep(write(tmp_path, GRID.replace("[8, 6, 4]", "[5]")), tmp_path / "out", InProcess(),
                        build=fake_build)
    assert {r["status"] for r in rows} == {"invalid"}
    assert "stages.vocoder.compress.palettize.nbits: Input should be 1, 2, 3, 4, 6 or 8" in rows[0]["error"]
    assert f"(set by {tmp_path / 'sweep.yaml'}:4)" in rows[0]["error"]


def test_a_rerun_drops_the_overlays_of_variants_no_longer_in_the_file(tmp_path):
    sweep_file = write(tmp_path, GRID)
    run_sweep(sweep_file, tmp_path / "out", InProcess(), build=fake_build)
    sweep_file.write_text(GRID.replace("[8, 6, 4]", "[8]"))
    rows, folder = run_sweep(sweep_file, tmp_path / "out", InProcess(), build=fake_build)
    assert len(rows) == 2 and len(list((folder / "variants").glob("*.yaml"))) == 2


def test_the_cli_exits_1_on_a_failed_variant_or_a_bad_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("kokoro_build.scale.sweep.build_variant", fake_build)
    sweep_file = write(tmp_path, GRID.replace("[8, 6, 4]", "[8, 6]"))
    assert cli(["sweep", str(sweep_file), "--executor", "in-process", "--artifacts", str(tmp_path / "a")]) == 0
    assert "sweep bits: 4 built, 0 failed, 0 invalid" in capsys.readouterr().out
    sweep_file.write_text(GRID)
    assert cli(["sweep", str(sweep_file), "--executor", "in-process", "--artifacts", str(tmp_path / "a")]) == 1
    sweep_file.write_text(GRID + "colour: red\n")
    assert cli(["sweep", str(sweep_file), "--artifacts", str(tmp_path / "a")]) == 1
    assert "sweep.yaml:6: colour: unknown key" in capsys.readouterr().err
    assert cli(["sweep", str(sweep_file), "--ray", "auto"]) == 1
    assert "--ray goes with --executor ray" in capsys.readouterr().err


def test_the_example_sweep_gives_six_variants_that_validate(tmp_path):
    from kokoro_build.scale.sweep import _prepare
    sweep = load_sweep(ROOT / "recipes" / "sweeps" / "vocoder-bits.yaml")
    assert len(sweep.variants) == 6 and sweep.base == ROOT / "pipeline.yaml"
    jobs, invalid = _prepare(sweep, sweep_dir(tmp_path, sweep.name))
    assert invalid == {} and len(jobs) == 6
