"""Sensitive k-means palettes: the measured sensitivities, the weighted palette, and
the compress step writing what a tune trial measured."""
import numpy as np
import pytest
import torch
from torch import nn

from kokoro_build.schema.compress_schema import CompressConfig, Palettization
from kokoro_build.targets.coreml.sensitive_palettes import (FORMAT, Sensitivities, SensitivityError, value_key,
                                                            weighted_palette)
from kokoro_build.tune.sensitivity import by_const_value, fisher_diagonal

from .conftest import Small, probe_of

ct = pytest.importorskip("coremltools")


def test_a_linear_maps_fisher_is_the_inputs_second_moment():
    """y = W x: d<y, v>/dW_ij = v_i x_j, so E[grad^2] = E[x_j^2] for every row i."""
    layer = nn.Linear(3, 2, bias=False)
    scale = torch.tensor([0.1, 1.0, 3.0])
    calls = [(torch.randn(1, 3, generator=torch.Generator().manual_seed(s)) * scale,) for s in range(200)]
    fisher = fisher_diagonal(layer, calls, probes=8)["weight"]
    second_moment = np.mean([c[0].numpy()[0] ** 2 for c in calls], axis=0)
    np.testing.assert_allclose(fisher, np.broadcast_to(second_moment, (2, 3)), rtol=0.25)
    assert fisher[:, 2].min() > 100 * fisher[:, 0].max()


def test_the_weighted_palette_favors_the_sensitive_values(rng):
    values = rng.normal(size=4096).astype(np.float16)
    weights = np.where(np.abs(values) > 1.5, 1000.0, 1.0).astype(np.float32)  # the tails matter

    def weighted_error(table, indices):
        return float(np.sum(weights * (values.astype(np.float32) - table.astype(np.float32)[indices]) ** 2))

    plain = weighted_palette(values, np.ones_like(weights), 2)
    weighted = weighted_palette(values, weights, 2)
    assert weighted[0].dtype == np.float16 and weighted[1].dtype == np.uint8 and len(weighted[0]) == 4
    assert weighted_error(*weighted) < 0.5 * weighted_error(*plain)
    assert np.all(np.diff(weighted[0].astype(np.float32)) >= 0)  # a sorted table


def test_few_distinct_values_are_kept_exactly():
    values = np.array([0.5, -1.0, 0.5, 2.0, -1.0], np.float16)
    table, indices = weighted_palette(values, np.ones(5, np.float32), 3)
    assert len(table) == 8 and np.array_equal(table[indices], values)


def test_a_weight_is_found_by_its_values_whatever_its_shape(tmp_path):
    """A Conv1d's [O, I, K] weight reaches the program as [O, I, 1, K]."""
    weight = np.arange(24, dtype=np.float16).reshape(2, 3, 4)
    np.savez(tmp_path / "s.npz", format=np.asarray(FORMAT), **{value_key(weight): np.ones((2, 3, 4), np.float32)})
    found = Sensitivities(tmp_path / "s.npz").of(weight.reshape(2, 3, 1, 4))
    assert found.shape == (2, 3, 1, 4)
    assert Sensitivities(tmp_path / "s.npz").of(weight + 1) is None


def test_a_file_of_another_format_is_refused(tmp_path):
    path = tmp_path / "s.npz"
    np.savez(path, format=np.asarray("something-else/1"))
    with pytest.raises(SensitivityError, match="format"):
        Sensitivities(path)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(SensitivityError, match="not a sensitivity file"):
        Sensitivities(tmp_path / "bad.npz")


@pytest.fixture(scope="module")
def sensitivity_file(small_package, tmp_path_factory):
    """The Small twin's sensitivities on its two captures, keyed by const value."""
    from kokoro_build.tune.trials import load_captures
    _, captures, _ = small_package
    module = Small().eval()
    calls = [(torch.from_numpy(c["inputs"]["x"]),) for c in load_captures(str(captures))]
    found = by_const_value(module, fisher_diagonal(module, calls))
    path = tmp_path_factory.mktemp("sensitivity") / "sensitivity.npz"
    np.savez(path, format=np.asarray(FORMAT), **found)
    return path


def test_every_tunable_weight_of_the_package_has_a_sensitivity(small_package, sensitivity_file):
    from kokoro_build.tune.weights import tunable_weights
    from kokoro_build.verify.mil_eval import load_program
    package, _, _ = small_package
    function = load_program(package).functions["main"]
    consts = {op.name: op.outputs[0].val for op in function.operations if op.op_type == "const"}
    sensitivities = Sensitivities(sensitivity_file)
    for weight in tunable_weights(function, 2048):
        found = sensitivities.of(consts[weight.name])
        assert found is not None and found.shape == weight.shape and found.max() > 0, weight.name


def test_an_lstms_weights_are_found_in_core_mls_gate_order(tmp_path):
    """PyTorch's gates are i, f, g, o; the converted lstm's are i, f, o, g."""
    from kokoro_build.tune.weights import tunable_weights
    from kokoro_build.verify.mil_eval import load_program
    class Recurrent(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(16, 32, batch_first=True)

        def forward(self, x):  # an explicit state: coremltools 9.0 can't trace the default one here
            state = torch.zeros(1, 1, 32)
            return self.lstm(x, (state, state))[0]

    lstm = Recurrent().eval()
    example = torch.randn(1, 5, 16)
    traced = torch.jit.trace(lstm, example)
    model = ct.convert(traced, inputs=[ct.TensorType(name="x", shape=example.shape)], convert_to="mlprogram",
                       minimum_deployment_target=ct.target.iOS17)
    model.save(str(tmp_path / "lstm.mlpackage"))
    function = load_program(tmp_path / "lstm.mlpackage").functions["main"]
    consts = {op.name: op.outputs[0].val for op in function.operations if op.op_type == "const"}
    found = by_const_value(lstm, fisher_diagonal(lstm, [(example,)], probes=1))
    weights = tunable_weights(function, 256)
    assert {w.readers for w in weights} == {("lstm",)} and len(weights) == 2
    assert all(value_key(consts[w.name]) in found for w in weights)


def _decoded_constexprs(path):
    from kokoro_build.verify.kernels import KERNELS, Args
    from kokoro_build.verify.mil_eval import MilEvaluator
    evaluator = MilEvaluator(path)
    decoded = []
    for op in evaluator.program.functions["main"].operations:
        if op.op_type.startswith("constexpr_"):
            value = KERNELS[op.op_type](op, Args(op, lambda var: evaluator._value(var, {}), evaluator, {}))
            decoded.append(np.asarray(value, dtype=np.float32).astype(np.float16).astype(np.float32))
    return decoded


@pytest.mark.parametrize("method, target", [
    (Palettization(nbits=2, mode="sensitive_kmeans"), "iOS17"),
    (Palettization(nbits=3, mode="sensitive_kmeans", granularity="per_grouped_channel", group_size=16), "iOS18")],
    ids=["skm2", "skm3g16"])
def test_the_compress_step_writes_the_palette_the_trial_measured(small_package, sensitivity_file, tmp_path,
                                                                   method, target):
    """Compress the whole package with sensitive palettes (coremltools' pass, custom
    mode), decode each weight: equal to compressed_value's, weight by weight, and
    different from the data-free palette at the same bits."""
    from kokoro_build.targets.coreml.compress import compress_model
    from kokoro_build.targets.coreml.sensitive_palettes import SensitiveWeights
    from kokoro_build.tune.weights import compressed_value, tunable_weights
    from kokoro_build.verify.mil_eval import load_program
    package, _, model = small_package
    if target != "iOS17":  # the same weights, converted for a newer target (3-bit and grouped tables)
        example = torch.zeros(1, 64, 20)
        model = ct.convert(torch.jit.trace(Small().eval(), example), inputs=[ct.TensorType(name="x", shape=example.shape)],
                           outputs=[ct.TensorType(name="y")], convert_to="mlprogram",
                           minimum_deployment_target=getattr(ct.target, target))
        package = tmp_path / "base.mlpackage"
        model.save(str(package))
    program = load_program(package)
    ops = {op.name: op for op in program.functions["main"].operations if op.op_type == "const"}
    sensitivities = Sensitivities(sensitivity_file)
    sensitive = SensitiveWeights(ops.values(), sensitivities)
    block = CompressConfig.model_validate({"palettize": method.model_dump(), "min_weight_elements": 2048})
    compress_model(model, block, sensitive=sensitive).save(str(tmp_path / "c.mlpackage"))
    assert sensitive.summary()["groups_unweighted"] == 0 and sensitive.summary()["weights_measured"] == 3
    decoded = _decoded_constexprs(tmp_path / "c.mlpackage")
    weights = tunable_weights(program.functions["main"], 2048)
    assert len(decoded) == len(weights) == 3
    for weight in weights:
        value, _ = compressed_value(ops[weight.name], method, 2048, sensitivities)
        plain, _ = compressed_value(ops[weight.name], method.model_copy(update={"mode": "kmeans"}), 2048)
        assert any(v.shape == value.shape and np.array_equal(v, value.astype(np.float32)) for v in decoded), \
            weight.name
        assert not np.array_equal(value, plain)


def test_sensitive_palettes_need_sensitivities(small_package):
    from kokoro_build.targets.coreml.compress import compress_model
    _, _, model = small_package
    block = CompressConfig.model_validate({"palettize": {"nbits": 3, "mode": "sensitive_kmeans"}})
    with pytest.raises(SensitivityError, match="sensitive_kmeans"):
        compress_model(model, block)


def test_a_sensitive_trial_runs_and_its_key_follows_the_sensitivities(small_package, sensitivity_file, tmp_path):
    from dataclasses import replace

    from kokoro_build.tune.settings import as_weight_method
    from kokoro_build.tune.trials import Trial, TrialCache, run_trial
    from kokoro_build.tune.weights import tunable_weights
    from kokoro_build.verify.mil_eval import load_program
    probe = replace(probe_of(small_package), sensitivities=str(sensitivity_file))
    skm = as_weight_method(Palettization(nbits=2, mode="sensitive_kmeans")).model_dump_json()
    pal = as_weight_method(Palettization(nbits=2)).model_dump_json()
    name = tunable_weights(load_program(probe.package).functions["main"], 2048)[0].name
    results = {r.label: r for r in run_trial(Trial(probe, name, (("skm2", skm), ("pal2", pal))))}
    assert results["skm2"].errors is not None and results["skm2"].errors != results["pal2"].errors
    cache = TrialCache(tmp_path, code="c")
    other = tmp_path / "other.npz"
    np.savez(other, format=np.asarray(FORMAT))
    assert cache.key(probe, name, "skm2", skm) != cache.key(replace(probe, sensitivities=str(other)), name, "skm2", skm)
    assert cache.key(probe, name, "pal2", pal) == cache.key(replace(probe, sensitivities=str(other)), name, "pal2", pal)
