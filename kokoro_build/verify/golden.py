"""Golden vectors: an artifact's fixed-seed inputs and the MIL evaluator's outputs on
them, as `<shape>.golden.npz` beside its verify report (schema/run.py `golden_path`). The release's device check kit
(verify/device_check.py, which also holds the reader) replays them on a Mac under the same gates.

Written as a zip of `.npy` members with one fixed timestamp, so two builds of the same
inputs give the same bytes (numpy's own savez stamps the current time); `numpy.load`
reads it as any `.npz`.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from kokoro_build.store.package import atomic_path
from kokoro_build.verify.device_check import INPUT, OUTPUT, read_golden  # noqa: F401  (one reader)

EPOCH = (1980, 1, 1, 0, 0, 0)


def write_golden(path: str | Path, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> None:
    members = {**{INPUT + k: v for k, v in inputs.items()}, **{OUTPUT + k: v for k, v in outputs.items()}}
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w") as archive:
            for name in sorted(members):
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.ascontiguousarray(members[name]), allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, buffer.getvalue())
