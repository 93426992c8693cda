"""Verification end to end on the small random-weight Kokoro: every artifact of a build
passes the MIL evaluator's parity gate, every op it holds has a kernel, and a
deliberately broken package fails its verify task."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "fixtures" / "tiny-kokoro.json"
PIPELINE = f"""\
version: 1
name: tiny-verify
model:
  source: {{random_seed: 0, config: {TINY}}}
  voices: [test_voice]
stages:
  duration:
    kind: duration
    shapes: {{tokens: {{range: [2, 128]}}}}
  prosody: {{kind: prosody, shapes: {{frames: {{buckets: [24]}}}}}}
  noise: {{kind: noise, precision: fp32, shapes: {{frames: {{buckets: [24]}}}}}}
  vocoder: {{kind: vocoder, islands: [noise, tail], shapes: {{frames: {{buckets: [24]}}}}}}
  tail: {{kind: tail, precision: fp32, shapes: {{frames: {{buckets: [24]}}}}}}
"""


def _doit(config: Path, *args: str):
    return subprocess.run([sys.executable, "-m", "doit", "-f", str(ROOT / "dodo.py"), *args,
                           f"config={config}"], cwd=ROOT, capture_output=True, text=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("verify")
    config = tmp / "pipeline.yaml"
    config.write_text(PIPELINE)
    result = _doit(config)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return config, tmp / "artifacts" / "tiny-verify"


@pytest.mark.slow
def test_every_artifact_is_verified_and_reported(built):
    _, variant = built
    manifest = json.loads((variant / "manifest.json").read_text())
    artifacts = [a for stage in manifest["stages"].values() for a in stage["artifacts"]]
    assert len(artifacts) == 5 and all(a["verify"]["passed"] for a in artifacts)
    vocoder = json.loads((variant / "vocoder" / "frames_24.verify.json").read_text())
    assert vocoder["verify"]["outputs"]["features"]["psnr_db"] >= 30
    assert 0 < vocoder["ane"]["flop_share"] <= 1 and vocoder["ane"]["segments"] >= 1
    assert vocoder["op_census"] and vocoder["passes"]  # the conversion report is merged in
    # supported and predicted placement, apart: most of the RangeDim duration stage's ops
    # are supported (89 %; its LSTMs hold most FLOPs in the small model), yet it is
    # predicted off the ANE (verify/placement.py)
    duration = json.loads((variant / "duration" / "tokens_range.verify.json").read_text())["ane"]
    assert duration["op_share"] > 0.5 and duration["placement"]["ane_flop_share"] == 0.0
    assert vocoder["ane"]["placement"]["predicted"] and vocoder["ane"]["placement"]["ane_flop_share"] > 0
    assert "Predicted off the ANE although mostly supported: tokens_range.mlpackage" in (variant / "report.md").read_text()
    # The random weights give ~3 frames per token: the report sentence can't fit the
    # 24-frame buckets, and the report says so instead of failing the build.
    assert "could not speak the report sentence: no artifact can run" in (variant / "report.md").read_text()
    from kokoro_build.cli import main
    assert main(["report", "tiny-verify", "--artifacts", str(variant.parent)]) == 0


@pytest.mark.slow
def test_every_op_type_of_the_build_has_a_kernel(built):
    from kokoro_build.verify.mil_eval import MilEvaluator
    _, variant = built
    for package in sorted(variant.glob("*/*.mlpackage")):
        assert MilEvaluator(package).missing_kernels() == set(), package


@pytest.mark.slow
def test_a_broken_package_fails_its_verify_task(built, tmp_path):
    """Negate one conv weight of the prosody twin, convert that, put it in place of the
    package: the next build's verify task must fail and say why."""
    import torch
    from kokoro_build.targets.coreml.convert import convert_stage
    from kokoro_build.store.package import digest_path

    config, variant = built
    traced = variant / "_work" / "prosody" / "frames_24.traced.pt"
    module = torch.jit.load(str(traced))
    name, weight = next((n, p) for n, p in module.named_parameters() if p.dim() == 3)
    with torch.no_grad():
        weight.neg_()  # the kind of silent damage a bad conversion could do
    broken = tmp_path / "broken.traced.pt"
    torch.jit.save(module, str(broken))
    shutil.copy(digest_path(traced), digest_path(broken))
    package = variant / "prosody" / "frames_24.mlpackage"
    from kokoro_build.schema.run import RunPaths, StageRun
    paths = RunPaths(weights="", traced=str(broken), converted=str(package), bucket=str(package),
                     package=str(package), verified="")
    convert_stage(StageRun(stage="prosody", paths=paths, precision="fp16", compute_units="cpu_and_ne",
                           deployment="iOS17"))
    result = _doit(config)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-2000:]
    assert "prosody:frames_24.verify" in output and "doesn't match its torch twin" in output, output[-3000:]
    report = json.loads((variant / "prosody" / "frames_24.verify.json").read_text())
    assert report["verify"]["passed"] is False


@pytest.mark.slow
def test_the_html_report_renders_in_headless_chromium(built, tmp_path):
    """The self-contained report.html, rendered by Debian's Chromium to a PNG: it shows
    the artifact table and the plots (the page is long and not blank)."""
    from PIL import Image
    _, variant = built
    page = variant / "report.html"
    assert "data:image/png;base64," in page.read_text() and "<table>" in page.read_text()
    shot = tmp_path / "report.png"
    result = subprocess.run(
        ["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
         "--window-size=1200,2600", f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert shot.is_file(), result.stderr[-2000:]
    image = Image.open(shot).convert("L")
    assert image.size == (1200, 2600)
    colours = image.getcolors(maxcolors=1 << 16) or []
    assert len(colours) > 50, "a rendered table and plots have many grey levels; a blank page has one"
    shutil.copy(shot, variant / "report" / "rendered.png")  # to look at by hand
