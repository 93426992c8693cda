"""Multifunction packaging: a bucketed stage's packages merged into one .mlpackage.

Each bucket's package becomes a function named after the bucket (`frames_400`), and
coremltools' `save_multifunction` deduplicates the weights the functions share, so
four vocoder buckets cost about one vocoder's weights (iOS18 / macOS15 and later).
The merge drops the packages' user metadata, so the surgery passes and provenance
are stamped again, per function.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from kokoro_build.store.package import atomic_path, digest_path, tree_digest, write_digest
from kokoro_build.store.reproducible import normalize_package, reset_mil_names


def merge_functions(functions: dict[str, str], default: str, out_path: str) -> None:
    """doit action: {function name: converted .mlpackage} -> one package at `out_path`
    (then its digest, last), with `default` as the default function."""
    start = time.time()
    metadata = {name: package_metadata(package) for name, package in functions.items()}
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=Path(out_path).parent, prefix=".merge-") as scratch:
        merged = Path(scratch) / "merged.mlpackage"
        save_functions(functions, default, merged)
        with atomic_path(out_path) as tmp:
            stamped_copy(merged, tmp, metadata, default)
    digest = tree_digest(out_path)
    parts = sum(json.loads(digest_path(p).read_text())["bytes"] for p in functions.values())
    write_digest(out_path, digest, functions=list(functions), default_function=default,
                 separate_bytes=parts, seconds=round(time.time() - start, 1))
    print(f"merge {Path(out_path).name}: {len(functions)} functions, {parts / 1e6:.1f} MB as separate "
          f"packages -> {digest['bytes'] / 1e6:.1f} MB in {time.time() - start:.0f} s", flush=True)


def save_functions(functions: dict[str, str | Path], default: str, out: str | Path) -> None:
    """Each package's `main` as a function named by its key, saved at `out` (weights
    deduplicated by coremltools); no metadata, no digest."""
    import coremltools as ct

    reset_mil_names()
    descriptor = ct.utils.MultiFunctionDescriptor()
    for name, package in functions.items():
        descriptor.add_function(str(package), src_function_name="main", target_function_name=name)
    descriptor.default_function_name = default
    ct.utils.save_multifunction(descriptor, str(out))


def package_metadata(package: str) -> dict[str, str]:
    import coremltools as ct
    spec = ct.utils.load_spec(str(package))
    return {k: v for k, v in spec.description.metadata.userDefined.items() if k.startswith("kokoro_build.")}


def stamped_copy(package: Path, out: Path, metadata: dict[str, dict[str, str]], default: str) -> None:
    """`package` saved again at `out` with the functions' provenance in its spec: the
    default function's keys as they were, plus `kokoro_build.functions` with every
    function's; `default` the default function."""
    import coremltools as ct
    from coremltools.models.utils import save_spec

    spec = ct.utils.load_spec(str(package))
    spec.description.defaultFunctionName = default
    user = spec.description.metadata.userDefined
    user.update(metadata[default])
    user["kokoro_build.functions"] = json.dumps(metadata, sort_keys=True)
    save_spec(spec, str(out), weights_dir=str(package / "Data" / "com.apple.CoreML" / "weights"))
    normalize_package(out)
