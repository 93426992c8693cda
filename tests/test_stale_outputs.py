"""The manifest step removes what a build of another config left in its stage folders."""
import json

from manifests import artifact, manifest

from kokoro_build.store.manifest import remove_stale_outputs


def _touch(path, text="{}"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_outputs_of_buckets_no_longer_built_are_removed_and_the_rest_stays(tmp_path):
    current = artifact("vocoder/vocoder.mlpackage", "vocoder/frames_64.verify.json", function="frames_64")
    variant = manifest("v", {"vocoder": {"kind": "vocoder", "artifacts": [current]},
                             "g2p": {"kind": "g2p", "artifacts": [artifact("g2p/chars_range.mlpackage",
                                                                          "g2p/chars_range.verify.json")]}})
    keep = ["vocoder/vocoder.mlpackage/Manifest.json", "vocoder/frames_64.verify.json",
            "vocoder/frames_64.golden.npz", "vocoder/frames_120.device.json",  # a measurement: stays
            "g2p/chars_range.mlpackage/Manifest.json", "g2p/chars_range.report.json",
            "g2p/chars_range.verify.json", "g2p/lexicon.tsv"]
    stale = ["vocoder/frames_120.verify.json", "vocoder/frames_120.golden.npz",
             "vocoder/frames_120.mlpackage/Manifest.json", "vocoder/frames_120.report.json"]
    for name in keep + stale:
        _touch(tmp_path / name)
    _touch(tmp_path / "vocoder/vocoder.digest.json", json.dumps({"artifact": "vocoder.mlpackage"}))
    _touch(tmp_path / "vocoder/frames_120.digest.json", json.dumps({"artifact": "frames_120.mlpackage"}))
    _touch(tmp_path / "g2p/lexicon.digest.json", json.dumps({"artifact": "lexicon.tsv"}))

    removed = remove_stale_outputs(tmp_path, variant)

    assert sorted(removed) == sorted(["vocoder/frames_120.verify.json", "vocoder/frames_120.golden.npz",
                                      "vocoder/frames_120.mlpackage", "vocoder/frames_120.report.json",
                                      "vocoder/frames_120.digest.json"])
    assert all((tmp_path / name).exists() for name in keep)
    assert (tmp_path / "vocoder/vocoder.digest.json").exists() and (tmp_path / "g2p/lexicon.digest.json").exists()
    assert not any((tmp_path / name).exists() for name in stale)
