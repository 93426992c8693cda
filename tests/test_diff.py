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
    a = load_config(ROOT / "pipeline.yaml").model_dump(mode="json")
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
