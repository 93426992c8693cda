"""Trials on the small package: a resumed run equals a full one, fewer bits cost more,
results are cached by content and a damaged cache entry is a miss."""
import json

import numpy as np
import pytest

from kokoro_build.schema.compress_schema import LinearQuantization, Palettization
from kokoro_build.scale.executors import InProcess, LocalPool
from kokoro_build.tune.settings import as_weight_method
from kokoro_build.tune.cost import added_cost, cost
from kokoro_build.tune.trials import ProbeSession, Trial, TrialCache, mean_errors, output_errors, run_trial
from kokoro_build.tune.weights import compressed_value

from .conftest import probe_of

SETTINGS = {"pal6": Palettization(nbits=6), "pal2": Palettization(nbits=2), "int8": LinearQuantization()}


def trial(probe, weight):
    return Trial(probe, weight, tuple((label, as_weight_method(m).model_dump_json()) for label, m in SETTINGS.items()))


@pytest.fixture(scope="module")
def session(small_package):
    return ProbeSession(probe_of(small_package))


def weights(session) -> list[str]:
    return [name for name, op in session.consts.items()
            if isinstance(op.outputs[0].val, np.ndarray) and op.outputs[0].val.ndim >= 2]


def conv_weight(session):
    return next(name for name in weights(session)
                if any(c.op_type == "conv" for c in session.consts[name].outputs[0].child_ops))


def test_resuming_from_a_checkpoint_equals_a_full_run(session):
    assert len(weights(session)) == 3
    for name in weights(session):
        op = session.consts[name]
        value, _ = compressed_value(op, Palettization(nbits=2), 2048)
        resumed = session.errors_with(name, value)
        with session.evaluator.substituted({op.outputs[0]: value}):
            full = mean_errors([output_errors(session.evaluator.run(c["inputs"]), c["reference"])
                                for c in session.captures])
        assert resumed["y"]["power"] == pytest.approx(full["y"]["power"], rel=1e-12), name
        assert resumed["y"]["power"] > session.baseline["y"]["power"]
        unchanged = session.errors_with(name, op.outputs[0].val)
        assert unchanged["y"]["power"] == pytest.approx(session.baseline["y"]["power"], rel=1e-12)


def test_fewer_bits_cost_more_error(small_package, session):
    results = {r.label: r for r in run_trial(trial(probe_of(small_package), conv_weight(session)))}
    def priced(label):
        return added_cost(results[label].errors, results[label].baseline)
    assert priced("pal2") > priced("pal6") > 0
    assert results["pal2"].bytes < results["pal6"].bytes < results["int8"].bytes
    assert results["pal6"].baseline == session.baseline and cost(session.baseline) > 0  # fp16 vs the fp32 twin


def test_cache_round_trip_and_damaged_entries_are_misses(small_package, session, tmp_path):
    probe = probe_of(small_package)
    result = run_trial(trial(probe, conv_weight(session)))[0]
    method = as_weight_method(SETTINGS[result.label]).model_dump_json()
    cache = TrialCache(tmp_path)
    assert cache.get(probe, result.weight, result.label, method) is None
    cache.put(probe, result, method)
    assert cache.get(probe, result.weight, result.label, method) == result
    other = as_weight_method(Palettization(nbits=8)).model_dump_json()
    assert cache.get(probe, result.weight, result.label, other) is None  # the method is in the key
    entry = next(tmp_path.rglob("*.json"))
    entry.write_text(entry.read_text()[:20])  # truncated
    assert cache.get(probe, result.weight, result.label, method) is None
    entry.write_text(json.dumps({"unexpected": 1}))
    assert cache.get(probe, result.weight, result.label, method) is None


def test_a_local_pool_gives_the_in_process_results(small_package, session):
    probe = probe_of(small_package)
    names = weights(session)[:2]
    trials = [trial(probe, n) for n in names]
    serial = {t.weight: r for t, r in InProcess().map_unordered(run_trial, trials)}
    pooled = {t.weight: r for t, r in LocalPool(2).map_unordered(run_trial, trials)}
    assert pooled == serial


def test_the_duration_output_also_counts_the_tokens_whose_rounding_would_change():
    reference = {"durations": np.array([[3.2, 4.9, 7.0, 1.5]]), "d": np.ones((1, 4, 8))}
    shifted = {"durations": reference["durations"] + np.array([[0.0, 0.2, 2.0, 0.0]]), "d": np.ones((1, 4, 8))}
    errors = output_errors(shifted, reference)
    assert errors["durations"]["frames"] == pytest.approx((0.2 + 1.0) / 4)  # capped at a frame a token
    assert "frames" not in errors["d"] and errors["d"]["power"] == 0.0
    # 30 % of tokens expected to change against a 2 % tolerance: 15 tolerances, plus d's 0
    assert cost(errors) == pytest.approx(0.3 / 0.02)
    assert added_cost(errors, output_errors(reference, reference)) == pytest.approx(cost(errors))
    assert added_cost(None, errors) is None
