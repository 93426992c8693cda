"""Every surgery pass on the real Kokoro-82M submodule it exists for, gated on parity."""
import pytest
import torch

from kokoro_build.model.stages import get_stage_kind
from kokoro_build.model.surgery import apply_passes, registered_passes

PADDED = {"kokoro::unpack_lstm": {"masked": True}, "kokoro::albert_inputs": {"mask": "additive"}}
BASE = ["kokoro::remove_dropout", "kokoro::fold_weight_norm"]
# pass id (+ options label) -> (stage kind, passes before it, its options, min sites)
CASES = {
    "kokoro::remove_dropout": ("duration", [], {}, 10),
    "kokoro::fold_weight_norm": ("vocoder", ["kokoro::remove_dropout"], {}, 70),
    "kokoro::constant_rsqrt": ("vocoder", BASE, {}, 5),
    "kokoro::stft_conv": ("vocoder", BASE, {}, 1),
    "kokoro::deterministic_noise[input]": ("vocoder", BASE + ["kokoro::stft_conv"], {"mode": "input"}, 2),
    "kokoro::deterministic_noise[zero]": ("vocoder", BASE + ["kokoro::stft_conv"], {"mode": "zero"}, 2),
    "kokoro::deterministic_noise[hash]": ("vocoder", BASE + ["kokoro::stft_conv"], {"mode": "hash"}, 2),
    "kokoro::unpack_lstm": ("duration", BASE, {"masked": True}, 3 + 5),
    "kokoro::albert_inputs": ("duration", BASE, {"mask": "additive"}, 1),
    "kokoro::cos_snake": ("vocoder", BASE, {}, 8),
    "kokoro::linear_to_conv": ("duration", BASE, {}, 10),
    "kokoro::mask_padding[vocoder]": ("vocoder", BASE + ["kokoro::stft_conv", "kokoro::deterministic_noise"],
                                      {}, 100),
    "kokoro::mask_padding[prosody]": ("prosody", BASE + ["kokoro::deterministic_noise"], {}, 30),
    # ExecuTorch's: unpack_lstm (masked) leaves 5 bidirectional LSTMs as 10 one-way ones
    "executorch::recurrent_scan[duration]": ("duration", BASE + ["kokoro::unpack_lstm"], {}, 10),
    "executorch::recurrent_scan[prosody]": ("prosody", BASE, {}, 1),
}


def test_every_registered_pass_has_a_real_model_case():
    assert {case.split("[")[0] for case in CASES} == set(registered_passes())


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_pass_on_the_real_submodule(case, config, kmodel, voice_pack):
    kind, before, options, min_sites = CASES[case]
    pass_id = case.split("[")[0]
    specs = [(p, PADDED.get(p, {})) for p in before] + [(pass_id, options)]
    stage = get_stage_kind(kind)(config, specs)
    sizes = stage.parity_sizes({"tokens": 64} if kind == "duration" else {"frames": 120})
    inputs = stage.example_inputs(sizes, torch.from_numpy(voice_pack))
    result = apply_passes(stage.build_module(kmodel), specs, inputs)  # raises below its gate
    record = result.records[-1]
    assert record.sites >= min_sites, record
    assert record.step_psnr_db >= record.min_psnr_db and record.psnr_db >= 20, record
