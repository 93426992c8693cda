"""Which functions' golden vectors a release carries (store/release.py checked_artifacts)."""
import pytest

from manifests import artifact, manifest

from kokoro_build.store.release import ReleaseError, checked_artifacts


def _function(stage: str, frames: int):
    return artifact(f"{stage}/{stage}.mlpackage", f"{stage}/frames_{frames}.verify.json", function=f"frames_{frames}",
                    outputs=[{"name": "out", "dtype": "float32", "shape": [1, 128, frames * 120]}])


VARIANT = manifest("v", {
    # listed largest first, so "smallest" can't be "the first listed"
    "vocoder": {"kind": "vocoder", "artifacts": [_function("vocoder", f) for f in (864, 64, 288)]},
    "g2p": {"kind": "g2p", "artifacts": [artifact("g2p/chars_range.mlpackage", "g2p/chars_range.verify.json")]},
})


def test_smallest_keeps_one_function_per_package_the_one_with_the_fewest_elements():
    assert checked_artifacts(VARIANT, "smallest") == {("vocoder/vocoder.mlpackage", "frames_64"),
                                                      ("g2p/chars_range.mlpackage", None)}


def test_all_keeps_every_function():
    assert len(checked_artifacts(VARIANT, "all")) == 4


def test_an_unknown_choice_is_refused_by_name():
    with pytest.raises(ReleaseError, match="'some'"):
        checked_artifacts(VARIANT, "some")
