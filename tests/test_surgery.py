"""The pass registry, the parity gate, and each pass on a tiny module."""
import math

import pytest
import torch
from pydantic import BaseModel, ConfigDict
from torch import nn

from kokoro_build.model.surgery import (SurgeryError, SurgeryPass, apply_passes, make_pass,
                                  register_pass, registered_passes)
from kokoro_build.model.surgery import registry
from kokoro_build.model.surgery.passes.stft import ConvSTFT
from kokoro_build.model.source.kmodel import import_kokoro_model

kokoro = import_kokoro_model()
from kokoro.istftnet import AdainResBlk1d, TorchSTFT  # noqa: E402


@pytest.fixture
def scratch_registry(monkeypatch):
    """Register test passes without leaking them into the real registry."""
    registered_passes()
    monkeypatch.setattr(registry, "_PASSES", dict(registry._PASSES))


def test_builtin_passes_are_namespaced_and_registered():
    ids = set(registered_passes())
    assert {"kokoro::remove_dropout", "kokoro::fold_weight_norm",
            "kokoro::constant_rsqrt", "kokoro::stft_conv"} <= ids
    # kokoro:: passes are the config's (surgery: add/remove/options); executorch:: ones are
    # applied by the ExecuTorch target alone (torch.jit.trace can't trace them)
    assert all(i.startswith(("kokoro::", "executorch::")) for i in ids)
    assert "executorch::recurrent_scan" in ids


def test_catalog_and_registry_agree():
    from kokoro_build.schema.pass_catalog import PASS_OPTIONS, PRESETS
    passes = registered_passes()
    assert set(PASS_OPTIONS) == {i for i in passes if i.startswith("kokoro::")}
    assert all(passes[i].Options is PASS_OPTIONS[i] for i in PASS_OPTIONS)
    assert all(p in PASS_OPTIONS for preset in PRESETS.values() for p in preset)


def test_every_pass_module_registers_something():
    import importlib
    import pkgutil
    from kokoro_build.model.surgery import passes
    modules = {f"{passes.__name__}.{m.name}" for m in pkgutil.iter_modules(passes.__path__)}
    owners = {cls.__module__ for cls in registered_passes().values()}
    assert modules == owners, "every file in surgery/passes/ must register a pass"
    for name in modules:
        importlib.import_module(name)


def test_duplicate_and_unnamespaced_ids_are_rejected(scratch_registry):
    with pytest.raises(ValueError, match="already registered"):
        register_pass("kokoro::remove_dropout")(type("Again", (SurgeryPass,), {}))
    with pytest.raises(ValueError, match="namespaced"):
        register_pass("plain")(type("Plain", (SurgeryPass,), {}))


def test_unknown_pass_and_bad_options_are_clear():
    with pytest.raises(SurgeryError, match="unknown surgery pass 'kokoro::nope'"):
        make_pass("kokoro::nope")
    with pytest.raises(Exception, match="extra"):
        make_pass("kokoro::remove_dropout", {"bogus": 1})


def test_order_rule_is_enforced(scratch_registry):
    @register_pass("test::needs_fold")
    class NeedsFold(SurgeryPass):
        requires = ("kokoro::fold_weight_norm",)

        def apply(self, module):
            return 0

    module, inputs = nn.Linear(3, 3).eval(), (torch.randn(2, 3),)
    with pytest.raises(SurgeryError, match="must run after kokoro::fold_weight_norm"):
        apply_passes(module, [("test::needs_fold", {})], inputs)
    done = apply_passes(module, [("kokoro::fold_weight_norm", {}), ("test::needs_fold", {})], inputs)
    assert [r.id for r in done.records] == ["kokoro::fold_weight_norm", "test::needs_fold"]


def test_parity_gate_fails_a_pass_that_changes_the_function(scratch_registry):
    @register_pass("test::negate")
    class Negate(SurgeryPass):
        class Options(BaseModel):
            model_config = ConfigDict(extra="forbid")
            scale: float = -1.0

        def apply(self, module):
            module.weight.data *= self.options.scale
            return 1

    module, inputs = nn.Linear(4, 4).eval(), (torch.randn(3, 4),)
    with pytest.raises(SurgeryError, match=r"test::negate: parity .* below its 60 dB gate"):
        apply_passes(module, [("test::negate", {})], inputs)
    ok = apply_passes(module, [("test::negate", {"scale": 1.0})], inputs)
    assert ok.records[0].psnr_db == math.inf and ok.records[0].options == {"scale": 1.0}
    assert torch.equal(module.weight, ok.module.weight), "the original module is never modified"


def test_remove_dropout():
    module = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.LSTM(4, 4, num_layers=2, dropout=0.3))
    sites = make_pass("kokoro::remove_dropout").apply(module)
    assert sites == 2
    assert isinstance(module[1], nn.Identity) and module[2].dropout == 0.0
    assert not module.training and not any(p.requires_grad for p in module.parameters())


def test_fold_weight_norm_hook_and_parametrization():
    hooked = torch.nn.utils.weight_norm(nn.Conv1d(3, 5, 3))
    parametrized = torch.nn.utils.parametrizations.weight_norm(nn.ConvTranspose1d(5, 2, 4, 2))
    module = nn.Sequential(hooked, parametrized).eval()
    result = apply_passes(module, [("kokoro::fold_weight_norm", {})], (torch.randn(1, 3, 16),))
    folded = result.module
    assert result.records[0].sites == 2 and result.records[0].psnr_db >= 60
    names = {n for n, _ in folded.named_parameters()}
    assert names == {"0.weight", "0.bias", "1.weight", "1.bias"}


def test_constant_rsqrt_on_kokoro_block():
    block = AdainResBlk1d(8, 6, style_dim=4).eval()
    inputs = (torch.randn(1, 8, 10), torch.randn(1, 4))
    result = apply_passes(block, [("kokoro::constant_rsqrt", {})], inputs)
    assert result.records[0].sites == 1 and result.records[0].psnr_db >= 60
    graph = str(torch.jit.trace(result.module, inputs).graph)
    assert "rsqrt" not in graph


def test_conv_stft_matches_torch_stft():
    reference, conv = TorchSTFT(20, 5, 20), ConvSTFT(20, 5, 20)
    x = 0.1 * torch.sin(torch.linspace(0, 300, 2400))[None] + 0.01 * torch.randn(1, 2400)
    (mag_r, phase_r), (mag_c, phase_c) = reference.transform(x), conv.transform(x)
    assert torch.allclose(mag_r, mag_c, atol=1e-5)
    # Equal phase modulo 2*pi everywhere; bit-for-bit beyond the symmetric first frame.
    wrapped = torch.remainder(phase_r - phase_c + math.pi, 2 * math.pi) - math.pi
    assert wrapped.abs().max() < 1e-3
    assert (phase_r - phase_c)[..., 1:].abs().max() < 1e-3
    audio_r, audio_c = reference.inverse(mag_r, phase_r), conv.inverse(mag_r, phase_r)
    assert audio_r.shape == audio_c.shape and torch.allclose(audio_r, audio_c, atol=1e-6)


def test_conv_stft_dc_and_nyquist_phase_is_pi_for_negative_real():
    conv = ConvSTFT(8, 2, 8)
    x = -torch.ones(1, 64)  # DC component negative: phase must be pi, not 0
    _, phase = conv.transform(x)
    assert torch.allclose(phase[0, 0, 2:-2], torch.full_like(phase[0, 0, 2:-2], math.pi))


def test_stft_conv_pass_removes_complex_ops():
    class Spectral(nn.Module):
        def __init__(self):
            super().__init__()
            self.stft = TorchSTFT(20, 5, 20)

        def forward(self, x):
            mag, phase = self.stft.transform(x)
            return self.stft.inverse(mag, phase)

    inputs = (0.1 * torch.randn(1, 1200),)
    before = {n.kind() for n in torch.jit.trace(Spectral(), inputs, check_trace=False).inlined_graph.nodes()}
    assert "aten::stft" in before
    result = apply_passes(Spectral().eval(), [("kokoro::stft_conv", {})], inputs)
    assert result.records[0].psnr_db >= 30
    graph = torch.jit.trace(result.module, inputs).inlined_graph
    kinds = {node.kind() for node in graph.nodes()}
    assert not kinds & {"aten::stft", "aten::istft", "aten::angle", "aten::abs", "aten::complex",
                        "aten::index_put_", "aten::nonzero"}, kinds


def test_exact_pass_after_an_approximation_inherits_its_tolerance(scratch_registry):
    @register_pass("test::approximate")
    class Approximate(SurgeryPass):
        min_psnr_db = 20.0

        def apply(self, module):
            module.weight.data += 0.01 * module.weight.data.abs().max()
            return 1

    module, inputs = nn.Linear(8, 8).eval(), (torch.randn(4, 8),)
    result = apply_passes(module, [("test::approximate", {}), ("kokoro::remove_dropout", {})], inputs)
    approx, exact = result.records
    assert 20 <= approx.psnr_db < 60 and approx.step_psnr_db == approx.psnr_db
    assert exact.step_psnr_db == math.inf and exact.psnr_db == approx.psnr_db


def test_an_expected_pass_that_matches_nothing_fails_loudly():
    """A pass finds its sites by class name: after a rename in kokoro it would match
    nothing, and the stage would build without it. The kind table says where each pass
    must match; there, 0 sites is an error."""
    class Renamed(nn.Module):  # what AdainResBlk1d might be called in another kokoro
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(2, 2, 3, padding=1)

        def forward(self, x):
            return self.conv(x)

    inputs = (torch.randn(1, 2, 8),)
    passes = [("kokoro::constant_rsqrt", {})]
    assert apply_passes(Renamed(), passes, inputs).records[0].sites == 0  # silently nothing
    with pytest.raises(SurgeryError, match="constant_rsqrt found nothing to rewrite"):
        apply_passes(Renamed(), passes, inputs, expected=frozenset({"kokoro::constant_rsqrt"}))


def test_the_kind_table_expects_what_the_default_surgery_finds(tmp_path):
    """Every kind's expected passes do match on the small model (and so prepare_stage's
    check can't fail a correct build)."""
    from kokoro_build.model.prepare import prepare_stage
    from kokoro_build.model.source.weights import build_weights
    from kokoro_build.schema.config import StageConfig
    from kokoro_build.schema.kinds import KINDS
    from kokoro_build.schema.run import RunPaths, StageRun
    from tests.conftest import TINY_CONFIG

    weights = tmp_path / "kokoro.pt"
    build_weights({"source": {"kind": "random", "random_seed": 0, "config": str(TINY_CONFIG)}, "voices": ["v"]},
                  str(weights))
    sizes = {"frames": 24, "tokens": 16}
    for kind, row in KINDS.items():
        if not row.expects:
            continue
        stage = StageConfig(kind=kind, shapes={d: {"buckets": [sizes[d]]} for d in row.dims})
        run = StageRun(stage=kind, paths=RunPaths(weights=str(weights), traced="", converted="", bucket="",
                                                  package="", verified=""),
                       kind=kind, sizes={d: sizes[d] for d in row.dims}, flexible={}, passes=stage.passes(),
                       voice="v", options={})
        try:
            records = {r.id: r.sites for r in prepare_stage(run).records}
        except SurgeryError as error:  # a parity gate on random weights is not what this checks
            assert "found nothing" not in str(error), kind
            continue
        assert all(records[p] > 0 for p in row.expected_passes(flexible=False) if p in records), (kind, records)
