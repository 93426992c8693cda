"""The compute-plan ANE analyzer needs macOS (MLComputePlan): tested there, skipped here."""
import platform

import pytest

from kokoro_build.verify.ane import compute_plan_report


@pytest.mark.skipif(platform.system() == "Darwin", reason="the refusal is for other systems")
def test_off_macos_the_compute_plan_analyzer_refuses_clearly(tmp_path):
    with pytest.raises(RuntimeError, match="needs macOS"):
        compute_plan_report(tmp_path / "x.mlpackage")


@pytest.mark.skipif(platform.system() != "Darwin", reason="MLComputePlan exists only on macOS")
def test_compute_plan_report_has_the_static_schema(tmp_path):  # pragma: no cover (macOS)
    import coremltools as ct
    import numpy as np
    from coremltools.converters.mil import Builder as mb

    from kokoro_build.verify.ane import analyze_package

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4, 16))], opset_version=ct.target.iOS17)
    def program(x):
        return mb.conv(x=x, weight=np.ones((4, 4, 3), np.float16), pad_type="same")
    package = tmp_path / "conv.mlpackage"
    ct.convert(program, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17).save(str(package))
    measured = analyze_package(package, "compute-plan")
    static = analyze_package(package, "static")
    assert measured["measured"] is True and set(measured) == set(static)
