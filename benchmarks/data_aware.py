"""Benchmark: data-aware palettes (sensitive k-means) against data-free k-means, at the same bits.

    .venv/bin/python benchmarks/data_aware.py [--variant artifacts/default] [--stage vocoder]
        [--bits 4 3] [--held-out 4]

Both palettize every conv/linear weight of the stage's surgered fp32 torch twin (the
module the export step traces) with coremltools.optimize.torch, per tensor:
- PostTrainingPalettizer: k-means on the weight values alone (what the compress step
  does on the converted package);
- SKMPalettizer: k-means weighted per element by a sensitivity from calibration data
  (SqueezeLLM, arXiv 2306.07629; coremltools' `palettization/sensitive_k_means.py`).

The stage has no training target, so the sensitivity's loss is <f(x), v> with v drawn
from N(0, I) per calibration sample: the expected square of its gradient is the
diagonal of J^T J, the curvature of the output's squared error, which is what a
palette's error costs here. Calibration: the stage's inputs on tune's default texts;
evaluation: its inputs on the first --held-out sentences of
benchmarks/data/chain_sentences.txt, both captured through the torch chain. Reported:
SNR (dB) of the stage's output over the valid frames against the fp32 twin, per
held-out input and pooled. Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HELD_OUT = [line.strip() for line in (ROOT / "benchmarks" / "data" / "chain_sentences.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
PROBES_PER_INPUT = 4  # random projections v per calibration input


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", default=str(ROOT / "artifacts" / "default"))
    parser.add_argument("--config", default=str(ROOT / "pipeline.yaml"))
    parser.add_argument("--stage", default="vocoder")
    parser.add_argument("--bits", type=int, nargs="+", default=[4, 3])
    parser.add_argument("--held-out", type=int, default=4)
    args = parser.parse_args()

    import torch
    torch.set_num_threads(2)
    variant = Path(args.variant)
    calibration, held_out = _captures(variant, args.stage, args.held_out)
    module, names = _twin(args.config, variant, args.stage)
    inputs = lambda capture: tuple(torch.from_numpy(capture["inputs"][n]).float() for n in names)  # noqa: E731

    covered = sum(m.weight.numel() for m in module.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    total = sum(p.numel() for p in module.parameters())
    with torch.no_grad():
        references = [module(*inputs(c)) for c in held_out]
    results = {}
    for bits in args.bits:
        for method in ("kmeans", "sensitive_kmeans"):
            start = time.perf_counter()
            palettized = _palettize(module, method, bits, [inputs(c) for c in calibration])
            seconds = time.perf_counter() - start
            with torch.no_grad():
                snrs = [_snr(ref, palettized(*inputs(c)), c) for ref, c in zip(references, held_out)]
            pooled = _pooled(snrs)
            results[f"{method}_{bits}bit"] = {"snr_db": [round(s["db"], 2) for s in snrs],
                                              "pooled_snr_db": round(pooled, 2), "seconds": round(seconds, 1)}
            print(f"{method} {bits}-bit: pooled {pooled:.2f} dB in {seconds:.0f} s", file=sys.stderr, flush=True)
    print(json.dumps({"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.system()} {platform.machine()}",
                      "stage": args.stage, "calibration_inputs": len(calibration),
                      "held_out_inputs": len(held_out),
                      # coremltools.optimize.torch k-means covers Conv2d and Linear weights;
                      # the rest (ConvTranspose1d, biases, norms) stay fp32 in both methods
                      "palettized_share_of_parameters": round(covered / total, 4), "results": results}))


def _captures(variant: Path, stage: str, held_out: int) -> tuple[list[dict], list[dict]]:
    """The stage's inputs (and twin outputs) on tune's texts and on held-out sentences."""
    from kokoro_build.schema.manifest import load_manifest
    from kokoro_build.schema.config import DEFAULT_TUNE_TEXTS
    from kokoro_build.tune.capture import capture
    from kokoro_build.tune.trials import load_captures
    manifest = load_manifest(variant)
    voice = next(iter(json.loads((variant / "manifest.json").read_text())["runtime"]["voices"]))
    found = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, texts in (("calibration", list(DEFAULT_TUNE_TEXTS)), ("held_out", HELD_OUT[:held_out])):
            out = Path(scratch) / name
            out.mkdir()
            taken = []
            for text in texts:  # one text at a time: each call of the stage, not the commonest bucket
                taken += load_captures(str(capture(variant, manifest, [stage], [text], voice, out)[stage].path))
            found.append(taken)
    return found[0], found[1]


def _twin(config_path: str, variant: Path, stage: str):
    """The stage's surgered fp32 module at its largest bucket (masked: it runs any bucket)
    and its input names in call order."""
    from kokoro_build.model.prepare import prepare_stage
    from kokoro_build.plan.tasks import source_run
    from kokoro_build.schema.config import load_config
    run = source_run(load_config(config_path), stage, variant, None)
    prepared = prepare_stage(run)
    names = [spec.name for spec in prepared.stage.inputs(run.sizes)]
    return _conv1d_as_conv2d(prepared.module.eval()), names


def _conv1d_as_conv2d(module):
    """Every Conv1d as the equal Conv2d of height 1: coremltools.optimize.torch's k-means
    covers Conv2d and Linear, and Kokoro's convolutions are Conv1d."""
    import torch
    from torch import nn

    class Conv1dAsConv2d(nn.Conv2d):
        def forward(self, x):
            return super().forward(x.unsqueeze(2)).squeeze(2)

    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is not nn.Conv1d or child.padding_mode != "zeros":
                continue
            wide = Conv1dAsConv2d(child.in_channels, child.out_channels, (1, child.kernel_size[0]),
                                  stride=(1, child.stride[0]), padding=(0, child.padding[0]),
                                  dilation=(1, child.dilation[0]), groups=child.groups, bias=child.bias is not None)
            with torch.no_grad():
                wide.weight.copy_(child.weight.unsqueeze(2))
                if child.bias is not None:
                    wide.bias.copy_(child.bias)
            setattr(parent, name, wide)
    return module


def _palettize(module, method: str, bits: int, calibration: list[tuple]):
    """A palettized copy of `module`: every supported weight, `bits` per element, one table each."""
    import torch
    from coremltools.optimize.torch.palettization import (PostTrainingPalettizer, PostTrainingPalettizerConfig,
                                                          SKMPalettizer, SKMPalettizerConfig)
    config = {"global_config": {"n_bits": bits, "granularity": "per_tensor"}}
    if method == "kmeans":
        return PostTrainingPalettizer(module, PostTrainingPalettizerConfig.from_dict(config)).compress()
    generator = torch.Generator().manual_seed(0)
    samples = [(x, i) for x in calibration for i in range(PROBES_PER_INPUT)]

    def projected_output(model, sample):
        """<f(x), v>, v ~ N(0, I): its squared gradient estimates diag(J^T J)."""
        x, _ = sample
        out = model(*x)
        out = out[0] if isinstance(out, (tuple, list)) else out
        return (out * torch.randn(out.shape, generator=generator)).sum()

    # Only the k-means-able weights take gradients; one that the stage never reads (a
    # module of Kokoro's the split leaves unused) has none, and is left out of both.
    weights = {f"{name}.weight": m for name, m in module.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))}
    for name, parameter in module.named_parameters():
        parameter.requires_grad_(name in weights)
    module.zero_grad()
    projected_output(module, samples[0]).backward()
    unused = [name.removesuffix(".weight") for name, parameter in module.named_parameters()
              if name in weights and parameter.grad is None]
    for name in unused:
        module.get_submodule(name).weight.requires_grad_(False)
    module.zero_grad()
    config["module_name_configs"] = {name: None for name in unused}
    config["calibration_nsamples"] = len(samples)
    palettizer = SKMPalettizer(module, SKMPalettizerConfig.from_dict(config))
    return palettizer.compress(dataloader=samples, loss_fn=projected_output)


def _snr(reference, output, capture) -> dict:
    """Signal and error energy over the valid part of the output's last axis."""
    reference = reference[0] if isinstance(reference, (tuple, list)) else reference
    output = output[0] if isinstance(output, (tuple, list)) else output
    valid = capture["inputs"].get("valid_frames")
    if valid is not None:  # the valid share of a frame-rate-multiple axis
        bucket = capture["inputs"]["asr"].shape[-1] if "asr" in capture["inputs"] else None
        if bucket:
            keep = int(round(reference.shape[-1] * float(valid[0]) / bucket))
            reference, output = reference[..., :keep], output[..., :keep]
    signal = float((reference.double() ** 2).sum())
    error = float(((reference.double() - output.double()) ** 2).sum())
    return {"signal": signal, "error": error, "db": 10 * math.log10(signal / max(error, 1e-30))}


def _pooled(snrs: list[dict]) -> float:
    return 10 * math.log10(sum(s["signal"] for s in snrs) / max(sum(s["error"] for s in snrs), 1e-30))


if __name__ == "__main__":
    main()
