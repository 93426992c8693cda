"""The device-risk lint (verify/lint.py): each rule on a tiny program that triggers it
and on one that doesn't."""
import numpy as np
import pytest
import coremltools as ct
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import types

from kokoro_build.schema.lint_catalog import LINT_RULES
from kokoro_build.verify.lint import CHECKS, LintContext, failing, lint_program

rng = np.random.default_rng(0)


def _ids(program, **context):
    return {f["id"] for f in lint_program(program, LintContext(**context))}


def _palettized(nbits):
    from coremltools.optimize._utils import pack_elements_into_bits

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 6), dtype=types.fp16)], opset_version=ct.target.iOS16)
    def program(x):
        indices = rng.integers(0, 2 ** nbits, 24).astype(np.uint8)
        weight = mb.constexpr_lut_to_dense(indices=pack_elements_into_bits(indices, nbits),
                                           lut=np.linspace(-1, 1, 2 ** nbits).astype(np.float16),
                                           shape=np.array([4, 6], np.uint32))
        return mb.linear(x=x, weight=weight)
    return program


def test_four_bit_palettes_are_flagged_for_coremltools_9_0_only():
    assert "palette_4bit_coremltools_9_0" in _ids(_palettized(4), coremltools_version="9.0")
    assert "palette_4bit_coremltools_9_0" not in _ids(_palettized(4), coremltools_version="8.3.0")
    assert "palette_4bit_coremltools_9_0" not in _ids(_palettized(2), coremltools_version="9.0")


def _int8(scale_shape):
    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 8), dtype=types.fp16)], opset_version=ct.target.iOS18)
    def program(x):
        weight = mb.constexpr_blockwise_shift_scale(
            data=rng.integers(-8, 8, (4, 8)).astype(np.int8), scale=rng.random(scale_shape).astype(np.float16))
        return mb.linear(x=x, weight=weight)
    return program


def test_per_block_int8_is_flagged_where_the_ane_may_run_it():
    per_block, per_channel = _int8((4, 2)), _int8((4, 1))  # blocks of 4 along the inputs
    assert "per_block_int8_on_ane" in _ids(per_block, compute_units="cpu_and_ne")
    assert "per_block_int8_on_ane" not in _ids(per_block, compute_units="cpu_only")
    assert "per_block_int8_on_ane" not in _ids(per_channel, compute_units="all")


def _two_functions():
    from coremltools.converters.mil.mil import Program

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4))], opset_version=ct.target.iOS18)
    def first(x):
        return mb.relu(x=x)
    merged = Program()
    merged.add_function("main", first.functions["main"])
    merged.add_function("frames_48", first.functions["main"])
    return first, merged


def test_a_multifunction_package_is_flagged():
    single, merged = _two_functions()
    assert "multifunction_load" in _ids(merged)
    assert "multifunction_load" not in _ids(single)


def _relu(shape):
    @mb.program(input_specs=[mb.TensorSpec(shape=shape)], opset_version=ct.target.iOS17)
    def program(x):
        return mb.relu(x=x)
    return program


def test_enumerated_shapes_too_many_or_on_several_inputs():
    many = {"tokens": {"enumerated": list(range(2, 200))}}
    few = {"tokens": {"enumerated": [64, 128]}}
    program = _relu((1, 4))
    assert "too_many_enumerated_shapes" in _ids(program, flexible=many)
    assert "too_many_enumerated_shapes" not in _ids(program, flexible=few)
    assert "enumerated_shapes_on_several_inputs" in _ids(program, flexible=few, flexible_inputs=("a", "b"))
    assert "enumerated_shapes_on_several_inputs" not in _ids(program, flexible=few, flexible_inputs=("a",))


def test_range_streams_are_flagged_when_there_are_two_and_the_gpu_may_run_them():
    ranged = {"frames": {"range": [24, 600]}}
    program = _relu((1, 4))
    assert "range_streams_on_gpu" in _ids(program, compute_units="all", flexible=ranged,
                                          flexible_inputs=("asr", "f0"))
    assert "range_streams_on_gpu" not in _ids(program, compute_units="all", flexible=ranged, flexible_inputs=("asr",))
    assert "range_streams_on_gpu" not in _ids(program, compute_units="cpu_and_ne", flexible=ranged,
                                              flexible_inputs=("asr", "f0"))


def _lstm():
    @mb.program(input_specs=[mb.TensorSpec(shape=(3, 1, 4))], opset_version=ct.target.iOS17)
    def program(x):
        h = np.zeros((1, 2), np.float32)
        return mb.lstm(x=x, initial_h=h, initial_c=h, weight_ih=rng.random((8, 4)).astype(np.float32),
                       weight_hh=rng.random((8, 2)).astype(np.float32))[0]
    return program


def test_rnn_ops_are_flagged_where_the_gpu_may_run_them():
    assert "rnn_on_gpu" in _ids(_lstm(), compute_units="all")
    assert "rnn_on_gpu" not in _ids(_lstm(), compute_units="cpu_and_ne")
    assert "rnn_on_gpu" not in _ids(_relu((1, 4)), compute_units="all")


def _masked(fill):
    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4))], opset_version=ct.target.iOS17)
    def program(x):
        mask = np.array([[0, 0, fill, fill]], np.float32)
        return mb.softmax(x=mb.add(x=x, y=mask), axis=-1)
    return program


def test_a_float32_min_mask_is_flagged_and_a_finite_one_is_not():
    assert "fp32_min_constant" in _ids(_masked(np.finfo(np.float32).min))
    assert "fp32_min_constant" in _ids(_masked(-np.inf))  # as an fp16 conversion leaves it
    assert "fp32_min_constant" not in _ids(_masked(-1e4))


def test_every_rule_has_a_check_a_source_and_fail_on_selects_by_id_or_severity():
    assert CHECKS.keys() == LINT_RULES.keys()
    assert all(rule.source and rule.on_device for rule in LINT_RULES.values())
    findings = lint_program(_masked(np.finfo(np.float32).min), LintContext())
    assert failing(findings, []) == []
    assert failing(findings, ["warning"]) == findings == failing(findings, ["fp32_min_constant"])
    assert failing(findings, ["error"]) == [] and failing(findings, ["info"]) == []


def test_an_unknown_fail_on_entry_is_a_located_config_error(tmp_path):
    from kokoro_build.schema.config import ConfigError, load_config
    path = tmp_path / "pipeline.yaml"
    path.write_text("version: 1\nname: x\nstages:\n  duration: {kind: duration, shapes: {tokens: {buckets: [64]}}}\n"
                    "verify:\n  lint: {fail_on: [no_such_rule]}\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert "pipeline.yaml" in message and ":6" in message and "no_such_rule" in message
