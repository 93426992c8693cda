"""Equal models give equal package bytes: content-derived item ids, deterministic
spec serialization, no build date; the build stamp says what made the package."""
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from kokoro_build.store.package import tree_digest
from kokoro_build.store.reproducible import build_stamp, normalize_package

ct = pytest.importorskip("coremltools")


class Net(nn.Module):
    def __init__(self, channels: int = 8):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv1d(channels, 8, 3, padding=1)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        return y.reshape(1, -1) + y.flatten(1).mean()  # ops coremltools names itself


def convert(channels: int = 8):
    from kokoro_build.store.reproducible import reset_mil_names
    reset_mil_names()  # as convert.py does before each conversion
    traced = torch.jit.trace(Net(channels).eval(), torch.zeros(1, channels, 10))
    model = ct.convert(traced, inputs=[ct.TensorType(name="x", shape=(1, channels, 10))], convert_to="mlprogram",
                       minimum_deployment_target=ct.target.iOS17)
    # several metadata keys: a protobuf map, whose serialized order may vary
    for key in ("b", "a", "c", "kokoro_build.passes"):
        model.user_defined_metadata[key] = key * 3
    return model


def test_two_conversions_save_to_identical_bytes(tmp_path):
    paths = []
    for i in range(2):
        path = tmp_path / f"{i}.mlpackage"
        convert().save(str(path))
        paths.append(path)
        convert(channels=4)  # another conversion in between: names must not carry over
    raw = [tree_digest(p) for p in paths]
    assert raw[0]["files"]["Manifest.json"] != raw[1]["files"]["Manifest.json"]  # random item ids
    for path in paths:
        normalize_package(path)
    assert tree_digest(paths[0]) == tree_digest(paths[1])
    manifest = json.loads((paths[0] / "Manifest.json").read_text())
    assert manifest["rootModelIdentifier"] in manifest["itemInfoEntries"]
    loaded = ct.models.MLModel(str(paths[0]), skip_model_load=True)
    assert "com.github.apple.coremltools.conversion_date" not in loaded.user_defined_metadata
    assert loaded.user_defined_metadata["a"] == "aaa"  # the rest is kept
    normalize_package(paths[0])  # idempotent
    assert tree_digest(paths[0]) == tree_digest(paths[1])


def test_the_build_stamp_names_config_tools_locks_and_commit():
    stamp = json.loads(build_stamp({"kind": "vocoder", "sizes": {"frames": 120}}))
    assert len(stamp["config_sha256"]) == 64
    assert stamp["config_sha256"] != json.loads(build_stamp({"kind": "vocoder"}))["config_sha256"]
    assert stamp["versions"]["coremltools"] == ct.__version__ and "kokoro-build" in stamp["versions"]
    assert set(stamp["locks"]) == {"requirements/lock.txt", "requirements/nodeps.txt"}
    assert stamp["git_commit"] == "unknown" or len(stamp["git_commit"].removesuffix("+dirty")) == 40


def test_mil_names_restart_after_a_reset():
    """coremltools names ops it makes itself from process-wide counters (a clean build
    measured `reshape_0_shape_0` in one run and `reshape_1_shape_0` in another)."""
    from coremltools.converters.mil import Builder as mb

    from kokoro_build.store.reproducible import reset_mil_names

    def names():
        @mb.program(input_specs=[mb.TensorSpec(shape=(4,))], opset_version=ct.target.iOS17)
        def program(x):
            return mb.reshape(x=x, shape=[2, 2])
        return [op.name for op in program.functions["main"].operations]

    reset_mil_names()
    first = names()
    assert names() != first  # the counters moved on
    reset_mil_names()
    assert names() == first


def test_doit_runs_with_the_hash_seed_pinned(tmp_path):
    """coremltools' passes iterate sets of names: with random string hashing, ops it
    names itself were numbered differently per run. dodo.py re-runs doit pinned."""
    import os
    import subprocess
    import sys
    dodo = tmp_path / "dodo.py"
    dodo.write_text("import os\nfrom kokoro_build.store.reproducible import pin_hash_seed\npin_hash_seed()\n"
                    "def task_seed():\n"
                    "    return {'actions': [lambda: print('seed', os.environ.get('PYTHONHASHSEED'))],\n"
                    "            'verbosity': 2}\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-m", "doit", "-f", str(dodo), "--db-file", str(tmp_path / "db")],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "seed 0" in out.stdout


def test_generated_names_are_numbered_in_program_order(tmp_path):
    """Two clean builds named the same two reshapes `reshape_0`/`reshape_1` in either
    order (coremltools' passes walk sets of ops): normalizing numbers them by position."""
    import numpy as np
    from coremltools.converters.mil import Builder as mb

    from kokoro_build.verify.mil_eval import MilEvaluator, load_program

    def build(first: str, second: str):
        @mb.program(input_specs=[mb.TensorSpec(shape=(4,))], opset_version=ct.target.iOS17)
        def program(x):
            a = mb.reshape(x=x, shape=mb.const(val=[2, 2], name=f"{first}_shape_0"), name=first)
            b = mb.reshape(x=mb.mul(x=a, y=2.0, name="var_3"),
                           shape=mb.const(val=[4], name=f"{second}_shape_0"), name=second)
            return mb.add(x=b, y=1.0, name="out")
        model = ct.convert(program, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
                           pass_pipeline=ct.PassPipeline.EMPTY)
        path = tmp_path / f"{first}.mlpackage"
        model.save(str(path))
        normalize_package(path)
        return path

    swapped, ordered = build("reshape_1", "reshape_0"), build("reshape_0", "reshape_1")
    assert tree_digest(swapped)["files"]["Data/com.apple.CoreML/model.mlmodel"] == \
        tree_digest(ordered)["files"]["Data/com.apple.CoreML/model.mlmodel"]
    names = [op.name for op in load_program(swapped).functions["main"].operations]
    assert names.index("reshape_0") < names.index("reshape_1") and "reshape_0_shape_0" in names
    assert "var_3" in names and "out" in names  # torch-style names stay
    x = np.arange(4, dtype=np.float32)
    assert np.allclose(MilEvaluator(swapped, "fp32").run({"x": x})["out"], 2 * x + 1)


def test_renumbering_never_collides_with_a_folded_op_of_the_same_type(tmp_path):
    """A const can carry a generated name of another type (a folded `concat_11` held an
    LSTM's weights): renumbering the real ops must not reuse it."""
    import numpy as np
    from coremltools.converters.mil import Builder as mb

    from kokoro_build.verify.mil_eval import MilEvaluator, load_program

    @mb.program(input_specs=[mb.TensorSpec(shape=(4,))], opset_version=ct.target.iOS17)
    def program(x):
        folded = mb.const(val=np.full(4, 3.0, dtype=np.float32), name="add_0")
        a = mb.add(x=x, y=1.0, name="add_5")
        return mb.add(x=a, y=folded, name="add_9")
    model = ct.convert(program, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
                       pass_pipeline=ct.PassPipeline.EMPTY)
    path = tmp_path / "m.mlpackage"
    model.save(str(path))
    normalize_package(path)
    names = [op.name for op in load_program(path).functions["main"].operations]
    assert len(names) == len(set(names))
    x = np.arange(4, dtype=np.float32)
    assert np.allclose(MilEvaluator(path, "fp32").run({"x": x})[next(iter(model.get_spec().description.output)).name],
                       x + 4)
