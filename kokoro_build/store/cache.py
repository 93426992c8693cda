"""Content-addressed step cache, shared by the variants in one `artifacts/` folder.

Each recipe builds in its own `artifacts/<name>/`, so without this a recipe that only
changes the vocoder's compression would redo the weights, the traces and the
conversions its base already made. A cached step (weights, export, convert, compress, materialize) is keyed
by sha256 over: the step, the config slice it reads, and its inputs, which are its
task's `file_dep` (the content sha256 recorded in an upstream `*.digest.json`, else
the file's own sha256: the code it runs and the lock files). A hit hard-links the
stored outputs into place; a miss runs the step and stores its outputs.

Outputs are never modified in place (every write is a new file renamed into place,
package.py), so a hard link can't be changed behind the cache's back; and a restored
output is checked against the sha256 its digest records before it counts as a hit.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable

from kokoro_build.store.package import DIGEST_SUFFIX, artifact_problems, atomic_path, file_sha256, remove_path

CACHE_DIR = ".cache"


def cache_root(artifacts: Path) -> Path:
    return artifacts / CACHE_DIR


# What a digest sidecar records that is not a fact about its artifact: timings, and the
# stat fingerprint (mtimes) that lets a check skip re-hashing.
VOLATILE_DIGEST_FIELDS = frozenset({"seconds", "stat"})


def _input_digest(path: str) -> str:
    """An upstream artifact's digest sidecar: the content sha256 and everything else it
    records (a trace's bucket list, I/O specs, provenance), but not timings. A step reads
    those too: keyed on the content alone, a conversion whose trace was the same bytes
    for a new bucket list came from the cache with the old list in its report."""
    if path.endswith(DIGEST_SUFFIX):
        recorded = json.loads(Path(path).read_text())
        if "sha256" in recorded:
            facts = {k: v for k, v in recorded.items() if k not in VOLATILE_DIGEST_FIELDS}
            return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()
    return file_sha256(path)


def step_key(step: str, config_slice, inputs: list[str]) -> str:
    material = {"step": step, "config": config_slice,
                "inputs": sorted(_input_digest(p) for p in inputs)}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _link_tree(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, copy_function=os.link)
    else:
        os.link(source, target)


def _outputs_match_digests(targets: list[Path]) -> bool:
    return not any(artifact_problems(t) for t in targets if t.name.endswith(DIGEST_SUFFIX))


def restore(entry: Path, targets: list[Path]) -> bool:
    """Link a cache entry's outputs into place (digests last); False if there is no
    entry, or it is damaged or its outputs don't match their recorded sha256: then the
    entry is dropped, so the rebuilt step stores (and uploads) a whole one."""
    if not entry.exists():
        return False
    stored = [entry / "outputs" / str(i) for i in range(len(targets))]
    if not (entry / "complete").is_file() or not all(p.exists() for p in stored):
        remove_path(entry)
        return False
    order = sorted(range(len(targets)), key=lambda i: targets[i].name.endswith(DIGEST_SUFFIX))
    for i in order:
        with atomic_path(targets[i]) as tmp:
            _link_tree(stored[i], tmp)
    if not _outputs_match_digests(targets):
        for target in targets:
            remove_path(target)
        remove_path(entry)
        return False
    return True


def store(entry: Path, targets: list[Path]) -> None:
    if (entry / "complete").is_file():
        return
    scratch = entry.with_name(f".{entry.name}.tmp-{os.getpid()}")
    remove_path(scratch)
    (scratch / "outputs").mkdir(parents=True)
    for i, target in enumerate(targets):
        _link_tree(target, scratch / "outputs" / str(i))
    (scratch / "complete").write_text(json.dumps([t.name for t in targets]) + "\n")
    try:
        os.replace(scratch, entry)
    except OSError:  # another process stored the same entry first
        remove_path(scratch)


def run_cached(root: str, step: str, config_slice, inputs: list[str], targets: list[str],
               build: Callable[[], None], remote: dict | None = None) -> None:
    """Run `build` unless the cache holds its outputs for these inputs. `remote`
    ({url, endpoint_url}): a remote cache behind the local one (store/remote.py),
    read on a local miss and written after a build."""
    key = step_key(step, config_slice, inputs)
    entry = Path(root) / step / key
    paths = [Path(t) for t in targets]
    names = ", ".join(p.name for p in paths)
    if restore(entry, paths):
        print(f"cache hit: {step} {key[:12]} -> {names}", flush=True)
        return
    from kokoro_build.store.remote import RemoteCache
    remote_cache = RemoteCache(**remote) if remote else None
    if remote_cache and remote_cache.fetch(step, key, entry) and restore(entry, paths):
        print(f"cache hit (remote): {step} {key[:12]} -> {names}", flush=True)
        return
    build()
    store(entry, paths)
    if remote_cache:
        remote_cache.upload(step, key, entry)
        print(f"cache upload: {step} {key[:12]} -> {remote_cache.url}", flush=True)
