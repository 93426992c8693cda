"""W8A8 calibration's pieces that need no model: one range across a concat, and the
ranges file's refusals."""
import json

import pytest

ct = pytest.importorskip("coremltools")
from coremltools.converters.mil import Builder as mb  # noqa: E402

from kokoro_build.targets.coreml.calibrate import CalibrationError, load_ranges, share_concat_ranges  # noqa: E402


def test_a_concat_and_its_inputs_share_one_range_across_concats():
    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4)) for _ in range(3)], opset_version=ct.target.iOS17)
    def program(a, b, c):
        ab = mb.concat(values=[a, b], axis=1, name="ab")
        bc = mb.concat(values=[b, c], axis=1, name="bc")  # shares b with ab: one group
        return ab, bc, mb.relu(x=a, name="alone")

    ranges = {"a": [-1.0, 1.0], "b": [0.0, 3.0], "c": [-5.0, 0.5], "ab": [-1.0, 3.0], "bc": [-5.0, 3.0],
              "alone": [0.0, 1.0]}
    assert share_concat_ranges(program, ranges) == 1
    assert {ranges[n] == [-5.0, 3.0] for n in ("a", "b", "c", "ab", "bc")} == {True}
    assert ranges["alone"] == [0.0, 1.0]
    assert share_concat_ranges(program, ranges) == 0  # already shared


def test_ranges_file_refuses_other_formats_and_unknown_packages(tmp_path):
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"format": "kokoro-build-calibration/1", "packages": {
        "_work/vocoder/converted/frames_range.mlpackage": {"runs": 2, "ranges": {"x": [-1.5, 2.0]}}}}))
    assert load_ranges(str(path), "_work/vocoder/converted/frames_range.mlpackage") == \
        {"x": {"rmin": -1.5, "rmax": 2.0}}
    with pytest.raises(CalibrationError, match="no ranges for _work/prosody"):
        load_ranges(str(path), "_work/prosody/converted/frames_range.mlpackage")
    path.write_text(json.dumps({"format": "other"}))
    with pytest.raises(CalibrationError, match="format 'other'"):
        load_ranges(str(path), "x")
