"""The device check kit (verify/device_check.py) off a Mac: its comparison and report
code with the MIL evaluator injected as the predictor, and the ingest of its report."""
import json

import numpy as np
import pytest
import coremltools as ct
from coremltools.converters.mil import Builder as mb

from kokoro_build.report import device as ingest_module
from kokoro_build.verify import device_check
from kokoro_build.verify.ane import analyze_program
from kokoro_build.verify.golden import read_golden, write_golden
from kokoro_build.verify.mil_eval import MilEvaluator
from tests import manifests


@mb.program(input_specs=[mb.TensorSpec(shape=(1, 8))], opset_version=ct.target.iOS17)
def PROGRAM(x):
    return mb.relu(x=mb.mul(x=x, y=np.float32(2.0)), name="y")


def _evaluator(inputs):
    return MilEvaluator("tiny.mlpackage", "fp32", program=PROGRAM).run(inputs)


@pytest.fixture
def kit(tmp_path):
    """A release folder holding one artifact's golden vectors and the kit's index."""
    inputs = {"x": np.random.default_rng(0).standard_normal((1, 8)).astype(np.float32)}
    write_golden(tmp_path / "stage" / "n_8.golden.npz", inputs, _evaluator(inputs))
    (tmp_path / device_check.INDEX).write_text(json.dumps({"variant": "tiny", "artifacts": [{
        "package": "stage/n_8.mlpackage", "function": None, "compute_units": "cpu_and_ne",
        "golden": "stage/n_8.golden.npz", "gates": {"y": 35.0}}]}))
    return tmp_path


def test_golden_vectors_are_byte_stable_and_read_back(tmp_path):
    data = {"x": np.arange(6, dtype=np.float32).reshape(2, 3)}
    write_golden(tmp_path / "a.npz", data, {"y": data["x"] * 2})
    write_golden(tmp_path / "b.npz", data, {"y": data["x"] * 2})
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    inputs, outputs = read_golden(tmp_path / "a.npz")
    assert np.array_equal(inputs["x"], data["x"]) and np.array_equal(outputs["y"], data["x"] * 2)
    assert device_check.read_golden(tmp_path / "a.npz")[1].keys() == {"y"}  # the kit reads it alone


def test_the_kit_passes_a_faithful_predictor_and_fails_a_wrong_one(kit):
    report = device_check.run_kit(kit, lambda entry: _evaluator, repeats=2)
    assert report["format"] == device_check.FORMAT and report["variant"] == "tiny"
    (artifact,) = report["artifacts"]
    assert report["passed"] and artifact["outputs"]["y"]["psnr_db"] == float("inf")
    assert artifact["predict_ms"]["runs"] == 2 and "coremltools" in report["machine"]

    def off(inputs):
        return {"y": _evaluator(inputs)["y"] + 0.5}
    wrong = device_check.run_kit(kit, lambda entry: off, repeats=0)
    assert not wrong["passed"] and wrong["artifacts"][0]["outputs"]["y"]["psnr_db"] < 35

    def nan(inputs):
        return {"y": np.full((1, 8), np.nan, np.float32)}
    assert not device_check.run_kit(kit, lambda entry: nan, repeats=0)["artifacts"][0]["outputs"]["y"]["finite"]
    failed_plan = device_check.run_kit(kit, lambda e: _evaluator, lambda e: 1 / 0, repeats=0)
    assert "ZeroDivisionError" in failed_plan["artifacts"][0]["compute_plan_error"]


def test_the_kit_refuses_to_run_off_a_mac(capsys):
    assert device_check.main(["."]) == 2 and "needs macOS" in capsys.readouterr().err


def test_the_kit_imports_nothing_of_ours():
    """It ships alone in a release and runs on a Mac without kokoro-build installed."""
    import ast
    from pathlib import Path
    source = Path(device_check.__file__).read_text()
    assert "kokoro_build" not in source.split('"""', 2)[2], "past its docstring, the kit names nothing of ours"
    tree = ast.parse(source)
    imported = [n.module if isinstance(n, ast.ImportFrom) else a.name
                for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in (n.names if isinstance(n, ast.Import) else [n])]
    assert imported and not [m for m in imported if m and m.startswith("kokoro_build")], imported


def _variant(root):
    """A variant folder with one artifact whose verify report holds a placement."""
    ane = analyze_program(PROGRAM)
    (root / "stage").mkdir(parents=True)
    (root / "stage" / "n_8.verify.json").write_text(json.dumps({"ane": ane}))
    typed = manifests.manifest("tiny", {"stage": {"kind": "vocoder", "artifacts": [
        manifests.artifact("stage/n_8.mlpackage", "stage/n_8.verify.json")]}})
    (root / "manifest.json").write_text(json.dumps(typed.as_json()))
    return ane["placement"]["op_devices"]


def test_ingest_puts_the_measurement_beside_the_prediction_and_lists_disagreements(kit, tmp_path):
    variant = tmp_path / "variant"
    predicted = _variant(variant)
    assert set(predicted.values()) == {"cpu"}  # fp32 compute: off the ANE

    def plan(entry):  # the schema device_check.compute_plan writes; one op measured elsewhere
        ops = [{"op": name, "type": "mul" if i == 0 else "relu", "device": device, "cost": 0.5}
               for i, (name, device) in enumerate(predicted.items())]
        ops[-1]["device"] = "ane"
        return ops
    report_file = tmp_path / "device_report.json"
    report_file.write_text(json.dumps(device_check.run_kit(kit, lambda e: _evaluator, plan, repeats=1)))
    (row,) = ingest_module.ingest(variant, report_file)
    assert row["measured"]["ane_op_share"] == 0.5 and row["measured"]["ane_cost_share"] == 0.5
    assert [d["predicted"] + ">" + d["measured"] for d in row["disagreements"]] == ["cpu>ane"]
    written = json.loads((variant / "stage" / "n_8.device.json").read_text())
    assert written["disagreements"] == row["disagreements"] and written["passed"]
    assert "1 ops disagree" in ingest_module.format_rows([row])


def test_ingest_refuses_a_report_of_another_variant_or_format(kit, tmp_path):
    variant = tmp_path / "variant"
    _variant(variant)
    report = device_check.run_kit(kit, lambda e: _evaluator, repeats=0)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**report, "variant": "other"}))
    with pytest.raises(ingest_module.DeviceReportError, match="variant 'other'"):
        ingest_module.ingest(variant, bad)
    bad.write_text(json.dumps({**report, "format": "x"}))
    with pytest.raises(ingest_module.DeviceReportError, match="format"):
        ingest_module.ingest(variant, bad)
    bad.write_text("{not json")
    with pytest.raises(ingest_module.DeviceReportError, match="not a readable JSON"):
        ingest_module.ingest(variant, bad)
