"""Artifact writing: atomic files and directories, content digests.

A killed build must never leave something that looks current, so every
artifact is written to a temporary sibling and renamed into place; the small
`*.digest.json` sidecar that downstream tasks depend on is written last.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

DIGEST_SUFFIX = ".digest.json"


def _tmp_sibling(path: Path) -> Path:
    # Keep the suffix: coremltools insists on `.mlpackage` when saving.
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write `path` (file or directory) into.

    On success the result replaces `path` in one rename; on any error the
    temporary is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    remove_path(tmp)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to {tmp}")
        if tmp.is_dir() and path.exists():
            # A directory can't be renamed over a non-empty one: move the old aside.
            old = path.with_name(f".{path.stem}.old-{os.getpid()}{path.suffix}")
            os.replace(path, old)
            os.replace(tmp, path)
            remove_path(old)
        else:
            os.replace(tmp, path)
    finally:
        remove_path(tmp)


def write_json(path: str | Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def remove_path(path: str | Path) -> None:
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def remove_targets(task) -> None:
    """doit `clean` action: remove file and directory targets (doit only rmdirs empty ones)."""
    for target in task.targets:
        remove_path(target)


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_digest(path: str | Path) -> dict:
    """sha256 and size of a file, or of a directory's files in sorted order."""
    path = Path(path)
    if path.is_file():
        return {"sha256": file_sha256(path), "bytes": path.stat().st_size}
    files = {p.relative_to(path).as_posix(): file_sha256(p)
             for p in sorted(path.rglob("*")) if p.is_file()}
    h = hashlib.sha256()
    for rel, sha in files.items():
        h.update(f"{rel}\0{sha}\n".encode())
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return {"sha256": h.hexdigest(), "bytes": size, "files": files}


def digest_path(artifact: str | Path) -> Path:
    artifact = Path(artifact)
    return artifact.with_name(artifact.name.split(".")[0] + DIGEST_SUFFIX)


def write_digest(artifact: str | Path, tree: dict | None = None, **extra) -> dict:
    """Write `<stem>.digest.json` beside `artifact`: the file downstream tasks depend on.
    `tree` is a precomputed `tree_digest(artifact)`."""
    digest = {"artifact": Path(artifact).name, **(tree or tree_digest(artifact)), **extra}
    write_json(digest_path(artifact), digest)
    return digest
