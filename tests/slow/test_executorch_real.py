"""The seed's ExecuTorch question on the real Kokoro-82M: its attempt (ExecuTorch 0.7)
ran the whole decoder on XNNPACK to 100% NaN. With the Core ML surgery (conv STFT,
noise as inputs, no complex ops) and executorch 1.5.1, the whole decoder, source and
iSTFT included, lowers and runs finite, close to torch."""
import pytest
import torch

from kokoro_build.targets.executorch.lower import EXECUTORCH_PASSES, lower_module
from kokoro_build.runtime.executorch_program import Program
from kokoro_build.model.stages import get_stage_kind
from kokoro_build.model.surgery import apply_passes
from kokoro_build.schema.pass_catalog import COREML_DEFAULT
from kokoro_build.model.surgery.registry import psnr_db


@pytest.mark.slow
def test_the_whole_real_decoder_runs_on_xnnpack_without_nan(config, kmodel, voice_pack, tmp_path):
    specs = [(p, {}) for p in COREML_DEFAULT] + [tuple(p) for p in EXECUTORCH_PASSES]
    stage = get_stage_kind("vocoder")(config, specs)  # no islands: the seed's full decoder
    sizes = {"frames": 120}
    inputs = stage.example_inputs(sizes, torch.from_numpy(voice_pack))
    module = apply_passes(stage.build_module(kmodel), specs, inputs).module
    program, census = lower_module(module, inputs)
    assert census["delegated_share"] > 0.3 and "aten.convolution" in census["delegated"]
    path = tmp_path / "vocoder.pte"
    path.write_bytes(program)
    audio = torch.from_numpy(Program(path).run(list(inputs))[0])
    with torch.no_grad():
        expected = module(*inputs)
    assert torch.isfinite(audio).all()
    psnr, _ = psnr_db(expected, audio)
    assert psnr >= 35, psnr  # measured 60.6 dB
