"""The ExecuTorch target: config, task graph, lowering with its op census, the runtime."""
from pathlib import Path

import pytest
import torch
from torch import nn

from kokoro_build.schema.config import ConfigError, load_config
from kokoro_build.plan.tasks import generate_tasks

ROOT = Path(__file__).resolve().parents[1]


def _tasks(path: Path) -> dict:
    config = load_config(path)
    return {f"{t['basename']}:{t['name']}" if t.get("name") else t["basename"]: t
            for t in generate_tasks(config, path)}


def test_the_recipe_adds_a_program_and_its_check_beside_each_package():
    tasks = _tasks(ROOT / "recipes" / "executorch.yaml")
    programs = sorted(n for n in tasks if n.endswith(".pte"))
    # g2p and duration: one program over their range; prosody/noise/vocoder/tail: a bucket each
    assert programs[:2] == ["duration:tokens_range.pte", "g2p:chars_range.pte"]
    assert len(programs) == 2 + 4 * 4
    lower = tasks["vocoder:frames_120.pte"]
    targets = [Path(t) for t in lower["targets"]]
    assert [t.relative_to(ROOT / "artifacts" / "executorch").as_posix() for t in targets] == [
        "executorch/vocoder_frames_120.pte", "executorch/vocoder_frames_120.report.json",
        "executorch/vocoder_frames_120.digest.json"]
    check = tasks["vocoder:frames_120.pte_verify"]
    assert str(targets[2]) in check["file_dep"]  # the program's digest
    assert any(d.endswith("_work/vocoder/frames_120.digest.json") for d in check["file_dep"])  # its twin
    assert str(targets[2]) in tasks["manifest"]["file_dep"]
    assert check["targets"][0].endswith("executorch/vocoder_frames_120.verify.json")
    assert check["targets"][0] in tasks["manifest"]["file_dep"]


def test_the_default_pipeline_builds_no_program():
    assert not any(".pte" in name for name in _tasks(ROOT / "recipes" / "ios17.yaml"))


def _errors(tmp_path, extra: str) -> str:
    path = tmp_path / "p.yaml"
    path.write_text(f"extends: {ROOT / 'recipes' / 'ios17.yaml'}\nname: t\n{extra}")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


def test_targets_are_checked_with_file_line_and_field(tmp_path):
    assert "p.yaml:3: targets: must include coreml" in _errors(tmp_path, "targets: [executorch]\n")
    assert "p.yaml:3: targets[1]: Input should be 'coreml' or 'executorch'" in _errors(
        tmp_path, "targets: [coreml, tflite]\n")
    assert "p.yaml:5: stages.g2p.targets: lists a target twice" in _errors(
        tmp_path, "stages:\n  g2p:\n    targets: [coreml, coreml]\n")
    message = _errors(tmp_path, "stages:\n  vocoder: {executorch: {export: lax}}\n")
    assert "p.yaml:4: stages.vocoder.executorch.export: Input should be 'strict' or 'nonstrict'" in message


def test_a_stage_can_take_executorch_alone_and_thresholds_come_from_verify(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(f"extends: {ROOT / 'recipes' / 'ios17.yaml'}\nname: t\nstages:\n"
                    "  vocoder: {targets: [coreml, executorch], executorch: {export: strict}}\n"
                    "verify: {executorch: {min_psnr_db: 50, outputs: {vocoder.features: 40, f0: 60}}}\n")
    config = load_config(path)
    assert config.stage_targets("vocoder") == ["coreml", "executorch"]
    assert config.stage_targets("prosody") == ["coreml"]
    assert config.executorch_thresholds("vocoder") == {"min_psnr_db": 50, "outputs": {"features": 40, "f0": 60}}
    tasks = _tasks(path)
    assert {n for n in tasks if ".pte" in n} == {f"vocoder:frames_{f}.{s}" for f in (120, 200, 400, 1200)
                                                for s in ("pte", "pte_verify")}
    (run,) = tasks["vocoder:frames_120.pte"]["actions"][0][1]
    assert run.executorch_export == "strict"


class Toy(nn.Module):
    """A conv (XNNPACK takes it) and atan2 + cumsum (XNNPACK doesn't: portable kernels)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(4, 8, 3, padding=1)

    def forward(self, x, style):
        h = self.conv(x) + style[..., None]
        return torch.atan2(h, h + 1), torch.cumsum(h, -1)


@pytest.fixture(scope="module")
def toy_program(tmp_path_factory):
    from kokoro_build.targets.executorch.lower import lower_module
    torch.manual_seed(0)
    module = Toy().eval()
    example = (torch.randn(1, 4, 16), torch.randn(1, 8))
    program, census = lower_module(module, example, ({2: torch.export.Dim("frames", min=2, max=64)}, None))
    path = tmp_path_factory.mktemp("toy") / "toy.pte"
    path.write_bytes(program)
    return module, path, census


def test_the_census_names_what_xnnpack_took_and_what_stayed_portable(toy_program):
    _, _, census = toy_program
    assert {"aten.convolution": 1, "aten.add.Tensor": 2}.items() <= census["delegated"].items()
    assert {"aten.atan2", "aten.cumsum"} <= set(census["portable"])
    assert not {"aten.atan2", "aten.cumsum"} & set(census["delegated"])
    assert census["delegated_ops"] == sum(census["delegated"].values()) and census["delegate_calls"] >= 1
    assert census["delegated_share"] == round(
        census["delegated_ops"] / (census["delegated_ops"] + census["portable_ops"]), 4)


def test_a_dynamic_program_runs_every_size_of_its_dim_and_refuses_past_it(toy_program):
    from kokoro_build.runtime.executorch_program import Program, ProgramError
    module, path, _ = toy_program
    program = Program(path)
    style = torch.randn(1, 8)
    for frames in (2, 17, 64):
        x = torch.randn(1, 4, frames)
        with torch.no_grad():
            expected = module(x, style)
        for got, want in zip(program.run([x, style.numpy().astype("float64")]), expected):  # cast
            assert got.shape == tuple(want.shape)
            assert torch.allclose(torch.from_numpy(got), want, atol=1e-5)
    with pytest.raises(ProgramError, match=r"toy.pte: the ExecuTorch runtime refused inputs of shapes \(1, 4, 65\)"):
        program.run([torch.randn(1, 4, 65), style])
    assert program.input_dtypes == ["float32", "float32"]
    with pytest.raises(ProgramError, match="input 1 is int64, the program takes float32"):
        program.run([torch.randn(1, 4, 8), torch.ones(1, 8, dtype=torch.long)])
    with pytest.raises(ProgramError, match="1 inputs given, the program takes 2"):
        program.run([torch.randn(1, 4, 8)])
    with pytest.raises(ProgramError, match="no such ExecuTorch program"):
        Program(path.with_name("missing.pte"))


def test_dynamic_shapes_mark_the_axes_a_flexible_dim_moves():
    from kokoro_build.targets.executorch.lower import dynamic_shapes
    from kokoro_build.model.stages.base import TensorSpec

    class Stage:
        def inputs(self, sizes):
            n = sizes["tokens"]
            return [TensorSpec("input_ids", (1, n), "int32"), TensorSpec("ref_s", (1, 256)),
                    TensorSpec("twice", (1, 2 * n))]

    with pytest.raises(ValueError, match="input twice: axis 1 moves with tokens but isn't equal to it"):
        dynamic_shapes(Stage(), {"tokens": 40}, {"tokens": {"range": [2, 40]}})
    Stage.inputs = lambda self, sizes: [TensorSpec("input_ids", (1, sizes["tokens"]), "int32"),
                                        TensorSpec("ref_s", (1, 256))]
    ids, ref = dynamic_shapes(Stage(), {"tokens": 40}, {"tokens": {"range": [2, 40]}})
    assert ref is None and list(ids) == [1]
    assert (ids[1].min, ids[1].max) == (2, 40)
    assert dynamic_shapes(Stage(), {"tokens": 40}, {}) is None


def test_strict_export_lowers_the_same_function(toy_program, tmp_path):
    """`executorch: {export: strict}`: TorchDynamo captures the module instead."""
    from kokoro_build.targets.executorch.lower import lower_module
    from kokoro_build.runtime.executorch_program import Program
    module, _, _ = toy_program
    example = (torch.randn(1, 4, 16), torch.randn(1, 8))
    program, _ = lower_module(module, example, strict=True)
    (tmp_path / "strict.pte").write_bytes(program)
    with torch.no_grad():
        expected = module(*example)
    for got, want in zip(Program(tmp_path / "strict.pte").run(list(example)), expected):
        assert torch.allclose(torch.from_numpy(got), want, atol=1e-5)


def test_lowering_is_byte_for_byte_repeatable(toy_program):
    from kokoro_build.targets.executorch.lower import lower_module
    module, _, _ = toy_program
    example = (torch.ones(1, 4, 16), torch.ones(1, 8))
    assert lower_module(module, example)[0] == lower_module(module, example)[0]
