"""A small fp16 Core ML model, its package and its fp32 twin's captures: what a tune
trial runs on, in seconds."""
import numpy as np
import pytest
import torch
from torch import nn

ct = pytest.importorskip("coremltools")


class Small(nn.Module):
    """conv -> conv_transpose -> linear: the three channel-axis cases of compression."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv1d(64, 64, 3, padding=1)
        self.up = nn.ConvTranspose1d(64, 48, 4, stride=2, padding=1)
        self.proj = nn.Linear(48, 64)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(0.1 * torch.randn(p.shape, generator=g))

    def forward(self, x):
        return self.proj(torch.tanh(self.up(torch.relu(self.conv(x)))).transpose(1, 2))


@pytest.fixture(scope="session")
def small_package(tmp_path_factory):
    """(package path, captures path, fp16 MLModel): fp16 weights, captures of 2 inputs."""
    from kokoro_build.tune.trials import save_captures
    folder = tmp_path_factory.mktemp("tune-small")
    module = Small().eval()
    example = torch.randn(1, 64, 20, generator=torch.Generator().manual_seed(1))
    model = ct.convert(torch.jit.trace(module, example), inputs=[ct.TensorType(name="x", shape=(1, 64, 20))],
                       outputs=[ct.TensorType(name="y")], convert_to="mlprogram",
                       minimum_deployment_target=ct.target.iOS17)
    package = folder / "small.mlpackage"
    model.save(str(package))
    captures = []
    for seed in (2, 3):
        x = torch.randn(1, 64, 20, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            captures.append({"inputs": {"x": x.numpy()}, "reference": {"y": module(x).numpy()}})
    save_captures(folder / "small.captures.npz", captures)
    return package, folder / "small.captures.npz", model


def probe_of(small_package, min_weight_elements: int = 2048):
    from kokoro_build.store.package import tree_digest
    from kokoro_build.tune.trials import Probe
    package, captures, _ = small_package
    return Probe("small", str(package), "main", str(captures), min_weight_elements, tree_digest(package)["sha256"])


@pytest.fixture
def rng():
    return np.random.default_rng(0)
