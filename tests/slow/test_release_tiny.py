"""Reproducible releases on the small random-weight Kokoro: two clean builds in
separate folders give byte-identical release zips, and verify-release catches a
changed, missing or extra file."""
import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from tiny import ISLAND_STAGES, NO_SPEECH_GATES, UP_TO_MANIFEST, header, run_doit

PIPELINE = header("tiny-release") + """stages:
  duration:
    kind: duration
    compress: {linear: {}}
    shapes: {tokens: {range: [2, 128]}}
""" + ISLAND_STAGES + NO_SPEECH_GATES


def _build_and_release(folder: Path) -> Path:
    config = folder / "pipeline.yaml"
    config.write_text(PIPELINE)
    run_doit(config, *UP_TO_MANIFEST)  # a release carries no report.md
    from kokoro_build.cli import main
    assert main(["release", "tiny-release", "--artifacts", str(folder / "artifacts"),
                 "--dist", str(folder / "dist"), "--version", "1.2.3"]) == 0
    return folder / "dist" / "tiny-release-1.2.3.zip"


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    return [_build_and_release(tmp_path_factory.mktemp(f"build{i}")) for i in range(2)]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_two_clean_builds_give_the_same_release(releases):
    first, second = releases
    assert sha256(first) == sha256(second)
    with zipfile.ZipFile(first) as archive:
        names = archive.namelist()
        manifest = json.loads(archive.read("tiny-release-1.2.3/manifest.json"))
        assert names == sorted(names) and {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    files = manifest["files"]
    assert "kokoro/vocab.json" in files and "voices/test_voice.npy" in files
    assert any(p.startswith("vocoder/frames_24.mlpackage/") for p in files)
    assert "reports/vocoder/frames_24.verify.json" in files
    vocoder = manifest["stages"]["vocoder"]["artifacts"]
    assert [a["sizes"] for a in vocoder] == [{"frames": 24}]
    assert {i["name"] for i in vocoder[0]["inputs"]} >= {"asr", "f0", "valid_frames"}
    assert manifest["stages"]["duration"]["artifacts"][0]["compress"]["linear"]["dtype"] == "int8"
    assert manifest["config"]["name"] == "tiny-release" and manifest["environment"]["locks"]
    assert manifest["environment"]["installed"]["coremltools"] == manifest["environment"]["versions"]["coremltools"]


def _rewrite(source: Path, target: Path, change) -> Path:
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            data = change(info.filename, old.read(info.filename))
            if data is not None:
                new.writestr(info, data)
        extra = change("EXTRA", None)
        if extra is not None:
            new.writestr("tiny-release-1.2.3/notes.txt", extra)
    return target


@pytest.mark.slow
def test_verify_release_names_every_tampered_file(releases, tmp_path, capsys):
    from kokoro_build.cli import main
    original = releases[0]
    assert main(["verify-release", str(original)]) == 0
    weights = "vocoder/frames_24.mlpackage/Data/com.apple.CoreML/weights/weight.bin"
    cases = {
        "edited": (lambda n, d: (d[:-1] + bytes([d[-1] ^ 1])) if n.endswith(weights) else d,
                   f"{weights}: sha256 or size differs"),
        "deleted": (lambda n, d: None if n.endswith("voices/test_voice.npy") else d,
                    "voices/test_voice.npy: listed in manifest.json, missing"),
        "added": (lambda n, d: b"hello" if n == "EXTRA" else d, "notes.txt: in the archive, not listed"),
    }
    for name, (change, expected) in cases.items():
        tampered = _rewrite(original, tmp_path / f"{name}.zip", change)
        assert main(["verify-release", str(tampered)]) == 1, name
        assert expected in capsys.readouterr().err, name
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(original.read_bytes()[: original.stat().st_size // 2])
    assert main(["verify-release", str(truncated)]) == 1


@pytest.mark.slow
def test_a_release_alone_speaks(releases, tmp_path, capsys):
    """Unzipped into an empty folder, with the build (artifacts/, the weights, the traced
    twins) deleted: the chain runs from the bundle's packages and small files."""
    import shutil

    import soundfile

    from kokoro_build.cli import main
    original = releases[0]
    shutil.rmtree(original.parent.parent / "artifacts")
    bundle = tmp_path / "bundle"
    with zipfile.ZipFile(original) as archive:
        archive.extractall(bundle)
    assert not list(bundle.rglob("*.pt"))  # neither the weights nor a traced twin
    for source in (bundle, original):  # the folder and the zip
        wav = tmp_path / f"{Path(source).stem}.wav"
        # speed 4: the random weights' durations (75 frames for "Hi.") fit the 24-frame bucket
        assert main(["speak", "Hi.", "-o", str(wav), "--bundle", str(source), "--backend", "mil",
                     "--voice", "test_voice", "--speed", "4"]) == 0, capsys.readouterr().err
        audio, rate = soundfile.read(wav)
        assert rate == 24000 and len(audio) > 0 and abs(audio).max() > 0
    # the torch backend needs the traced twins, which a release doesn't carry
    assert main(["speak", "Hi.", "-o", str(tmp_path / "t.wav"), "--bundle", str(bundle),
                 "--backend", "torch", "--voice", "test_voice", "--speed", "4"]) == 1
    assert "carries no traced twins" in capsys.readouterr().err


@pytest.mark.slow
def test_the_release_carries_a_device_check_kit_whose_golden_vectors_reproduce(releases, tmp_path):
    """Every package has golden vectors in the bundle (each package's smallest function:
    here each package has one), and the bundle's own packages, run by the MIL
    evaluator, give the golden outputs under their gates."""
    from kokoro_build.verify.mil_eval import MilEvaluator
    bundle = tmp_path / "kit"
    with zipfile.ZipFile(releases[1]) as archive:
        archive.extractall(bundle)
    root = bundle / "tiny-release-1.2.3"
    manifest = json.loads((root / "manifest.json").read_text())
    assert "device_check.py" in manifest["files"] and "device_check.json" in manifest["files"]
    index = json.loads((root / "device_check.json").read_text())
    packages = [a["package"] for s in manifest["stages"].values() for a in s["artifacts"]]
    assert sorted(e["package"] for e in index["artifacts"]) == sorted(set(packages))

    import importlib.util
    spec = importlib.util.spec_from_file_location("device_check", root / "device_check.py")
    kit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kit)  # the shipped copy, as a Mac would run it

    def predictor_for(entry):
        precision = next(a["precision"] for s in manifest["stages"].values() for a in s["artifacts"]
                         if a["package"] == entry["package"])
        evaluator = MilEvaluator(root / entry["package"], precision)
        return lambda inputs: evaluator.run(inputs, function=entry.get("function") or "main")
    report = kit.run_kit(root, predictor_for, repeats=0)
    assert report["passed"], [a for a in report["artifacts"] if not a["passed"]]
    assert all(a["outputs"] for a in report["artifacts"])  # every artifact's outputs were gated
