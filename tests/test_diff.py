"""`kokoro-build diff`: the config diff per stage, artifact digests, metric deltas,
on two small fake built variants (no model needed)."""
import json
from pathlib import Path

import pytest

from kokoro_build.cli import main as cli
from kokoro_build.schema.config import load_config
from kokoro_build.schema.recipes import config_diff
from tests import manifests

ROOT = Path(__file__).resolve().parents[1]


def test_config_diff_is_per_stage_and_one_row_per_new_block():
    a = load_config(ROOT / "recipes" / "ios17.yaml").model_dump(mode="json")
    b = load_config(ROOT / "recipes" / "pal6.yaml").model_dump(mode="json")
    sections = config_diff(a, b)
    assert ("compress", "—", {"palettize": {"nbits": 6, "mode": "kmeans", "granularity": "per_tensor"},
                              "min_weight_elements": 2048}) in sections["stages.vocoder"]
    assert ("shapes.frames.range", "—", [1, 1200]) in sections["stages.vocoder"]
    assert sections["stages.g2p"][0][0] == "(whole)" and sections["stages.g2p"][0][2] == "—"
    assert "model" not in sections and config_diff(a, a) == {}


def fake_variant(root: Path, name: str, vocoder_sha: str, mb: float, psnr: float) -> Path:
    variant = root / name
    (variant / "vocoder").mkdir(parents=True)
    (variant / "vocoder" / "frames_120.verify.json").write_text(json.dumps(
        {"op_census": {"conv": 10, "add": 5}, "seconds": {"export": 2.0, "convert": 3.0}}))
    artifact = manifests.artifact(
        "vocoder/frames_120.mlpackage", "vocoder/frames_120.verify.json", sha256=vocoder_sha, bytes=int(mb * 1e6),
        verify={"passed": True, "psnr_db": {"audio": psnr}},
        ane={"analyzer": "static", "measured": False, "flop_share": 0.7, "segments": 1,
             "placement": {"predicted": True, "device": "ane", "ane_flop_share": 0.7, "segments": 1}})
    typed = manifests.manifest(name, {"vocoder": {"kind": "vocoder", "artifacts": [artifact]}})
    typed.config = load_config(ROOT / "recipes" / ("w8.yaml" if name == "b" else "ane-chain.yaml")).model_dump(mode="json")
    (variant / "manifest.json").write_text(json.dumps(typed.as_json()))
    return variant


@pytest.mark.parametrize("markdown", [False, True])
def test_diff_of_two_built_variants(tmp_path, capsys, markdown):
    fake_variant(tmp_path, "a", "1" * 64, 100.0, 80.0)
    fake_variant(tmp_path, "b", "2" * 64, 50.0, 60.0)
    args = ["diff", "a", "b", "--artifacts", str(tmp_path), "--recipes", str(tmp_path / "none"), "--no-speech"]
    assert cli(args + (["--markdown"] if markdown else [])) == 0
    out = capsys.readouterr().out
    assert "differs" in out and "vocoder vocoder/frames_120.mlpackage" in out
    assert "+20" not in out and "-50" in out and "-20" in out  # size and parity deltas, B − A
    assert "linear" in out  # the config diff from the manifests: w8's compress block
    if markdown:
        assert "| stage | metric | a | b | B − A |" in out


def test_unknown_side_is_a_clear_error(tmp_path, capsys):
    assert cli(["diff", "nope", "pipeline.yaml", "--artifacts", str(tmp_path), "--no-speech"]) == 1
    assert "'nope' is neither a pipeline file" in capsys.readouterr().err


def test_diff_shows_each_sides_report_sentence_metrics(tmp_path, capsys):
    for name, pesq, forced_pesq in (("a", 4.3, 4.4), ("b", 3.1, 4.2)):
        variant = fake_variant(tmp_path, name, "1" * 64, 100.0, 80.0)
        (variant / "report").mkdir()
        (variant / "report" / "summary.json").write_text(json.dumps({"audio": {
            "pesq": pesq, "mcd_dtw_db": 1.0, "durations": {"changed_share": 0.1 if name == "b" else 0.0},
            "teacher_forced": {"pesq": forced_pesq, "mcd_db": 0.9, "f0_error_cents": 12.5}}}))
    assert cli(["diff", "a", "b", "--artifacts", str(tmp_path), "--recipes", str(tmp_path / "none"),
                "--no-speech"]) == 0
    out = capsys.readouterr().out
    assert "Report sentence against each side's own fp32 chain" in out
    lines = {line.split("  ")[0]: line for line in out.splitlines()}
    assert "-1.2" in lines["PESQ"] and "-0.2" in lines["teacher-forced PESQ"] and "+0.1" in lines["durations changed"]
    assert "12.5" in lines["F0 error cents"]
