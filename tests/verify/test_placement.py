"""Predicted placement (verify/placement.py) on top of per-op eligibility (verify/ane.py)."""
import numpy as np

from kokoro_build.verify.placement import OpRow, predict_placement, supported_segments

CONV = OpRow("conv", "ane", 1_000)


def _ids(placement):
    return [rule["id"] for rule in placement["rules"]]


def test_a_fixed_shape_function_of_supported_ops_is_predicted_on_the_ane():
    placement = predict_placement([CONV] * 5, {}, [])
    assert placement["predicted"] and placement["device"] == "ane"
    assert placement["ane_flop_share"] == 1.0 and placement["segments"] == 1
    assert _ids(placement) == ["supported_is_not_placed"]


def test_a_range_shaped_input_keeps_every_supported_op_off_the_ane():
    placement = predict_placement([CONV] * 5, {"tokens": {"range": [2, 512]}}, ["input_ids"])
    assert placement["device"] == "cpu" and placement["ane_flop_share"] == 0.0
    rule = next(r for r in placement["rules"] if r["id"] == "range_shape_off_ane")
    assert "#1764" in rule["source"] and "compute-placement.json" in rule["source"]
    assert "disagree" in rule["effect"]  # #2370's 78 % at the default shape is said, not hidden


def test_several_range_inputs_go_to_the_gpu_only_where_the_gpu_is_allowed():
    flexible = {"frames": {"range": [24, 600]}}
    assert predict_placement([CONV], flexible, ["asr", "f0"], "all")["device"] == "gpu"
    assert predict_placement([CONV], flexible, ["asr", "f0"], "cpu_and_ne")["device"] == "cpu"
    assert predict_placement([CONV], flexible, ["asr"], "all")["device"] == "cpu"


def test_enumerated_shapes_are_judged_per_shape_except_with_layer_norm():
    enumerated = {"tokens": {"enumerated": [64, 128]}}
    judged = predict_placement([CONV] * 3, enumerated, ["input_ids"])
    assert judged["device"] == "ane" and "enumerated_judged_per_shape" in _ids(judged)
    with_norm = predict_placement([CONV, OpRow("layer_norm", "ane", 10)], enumerated, ["input_ids"])
    assert with_norm["device"] == "cpu" and "enumerated_layer_norm_off_ane" in _ids(with_norm)


def test_an_unknown_op_joins_its_neighbours_segment():
    ops = [CONV, OpRow("conv", "unknown", 1_000), CONV]  # a dilated conv between two convs
    assert supported_segments(ops) == 1
    placement = predict_placement(ops, {}, [])
    assert placement["segments"] == 1 and placement["ane_flop_share"] == 1.0
    leading = [OpRow("cumsum", "unknown", 0), OpRow("lstm", "cpu", 10), CONV]
    assert supported_segments(leading) == 2  # the leading unknown takes the first known device


def test_a_small_ane_island_between_cpu_ops_is_predicted_on_the_cpu():
    lstm = OpRow("lstm", "cpu", 100_000)
    island = [lstm, OpRow("add", "ane", 10), lstm, OpRow("conv", "ane", 100_000)] + [CONV] * 4
    placement = predict_placement(island, {}, [])
    assert "small_ane_islands" in _ids(placement)
    assert placement["segments"] == 2  # cpu (lstm, add, lstm), then the conv run
    big = [lstm] + [OpRow("conv", "ane", 100_000)] * 4 + [lstm]
    assert "small_ane_islands" not in _ids(predict_placement(big, {}, []))


def test_a_matmul_on_a_flexible_function_input_counts_its_flops():
    """The evaluator records the inputs' shapes too, so the analyzer counts a matmul whose
    operand is a range-shaped input (it counted 0 FLOPs before)."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import get_new_symbol, types

    from kokoro_build.verify.ane import analyze_program

    length = get_new_symbol()

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, length, 8), dtype=types.fp16),
                             mb.TensorSpec(shape=(1, 8, 4), dtype=types.fp16)],
                opset_version=ct.target.iOS17)
    def program(x, y):
        return mb.matmul(x=x, y=y, name="out")

    from kokoro_build.verify.mil_eval import MilEvaluator
    shapes: dict = {}
    MilEvaluator("test.mlpackage", "fp16", program=program).run(
        {"x": np.ones((1, 10, 8), np.float16), "y": np.ones((1, 8, 4), np.float16)}, shapes=shapes)
    assert shapes["x"] == (1, 10, 8)  # a function input's shape, as it was fed
    report = analyze_program(program, shapes=shapes, flexible={"tokens": {"range": [2, 64]}})
    assert report["flops"] == 2 * 10 * 4 * 8
    assert report["flop_share"] == 1.0  # supported ...
    assert report["placement"]["ane_flop_share"] == 0.0  # ... and predicted off the ANE
    assert np.isclose(report["op_share"], 1.0)


def _range_program(reads_shape: bool):
    """A fp16 relu on a range-shaped input; with `reads_shape`, the graph also builds a
    vector as long as its input (positions from a length, as Albert does)."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import get_new_symbol, types

    length = get_new_symbol()

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, length), dtype=types.fp16)], opset_version=ct.target.iOS17)
    def program(x):
        y = mb.relu(x=x)
        if reads_shape:
            positions = mb.cast(x=mb.range_1d(start=0, end=mb.gather(x=mb.shape(x=x), indices=1), step=1),
                                dtype="fp16")
            y = mb.add(x=y, y=positions)
        return mb.mul(x=y, y=np.float16(2.0), name="out")
    return program


def test_at_its_default_shape_a_range_graph_that_reads_its_shape_is_off_the_ane():
    from kokoro_build.verify.ane import analyze_program

    flexible = {"tokens": {"range": [2, 64]}}
    plain, reading = (analyze_program(_range_program(r), flexible=flexible)["placement"] for r in (False, True))
    assert plain["ane_flop_share"] == 0.0 and reading["ane_flop_share"] == 0.0  # at the shapes it runs at
    assert plain["default_shape"]["ane_op_share"] == 1.0 and "base/KokoroVocoder" in plain["default_shape"]["rule"]
    assert reading["default_shape"]["ane_op_share"] == 0.0 and reading["default_shape"]["blocker"] == "shape"
    assert "RangeDim Albert" in reading["default_shape"]["rule"]
    assert predict_placement([CONV], {}, [])["default_shape"] is None  # fixed: one shape, nothing to split


def test_a_recurrence_keeps_a_range_graph_off_the_ane_at_its_default_shape_too():
    flexible = {"frames": {"range": [1, 1200]}}
    convs = predict_placement([CONV] * 4, flexible, ["en"])
    with_lstm = predict_placement([OpRow("lstm", "cpu", 10)] + [CONV] * 4, flexible, ["en"], range_blocker="lstm")
    assert convs["default_shape"]["ane_flop_share"] == 1.0 and convs["default_shape"]["blocker"] is None
    assert with_lstm["default_shape"]["ane_flop_share"] == 0.0 and "Prosody" in with_lstm["default_shape"]["rule"]
