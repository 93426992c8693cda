"""Artifact writing: atomic files and directories, content digests.

A killed build must never leave something that looks current, so every
artifact is written to a temporary sibling and renamed into place; the small
`*.digest.json` sidecar that downstream tasks depend on is written last. The
digest records every file's sha256, size and mtime: `artifact_problems` finds a
file changed, truncated, removed or added since (doit's `outputs_intact` check
and `kokoro-build verify`).
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from kokoro_build.store import faults

DIGEST_SUFFIX = ".digest.json"


def _tmp_sibling(path: Path, pid: int | str | None = None) -> Path:
    # Keep the suffix: coremltools insists on `.mlpackage` when saving.
    return path.with_name(f".{path.stem}.tmp-{os.getpid() if pid is None else pid}{path.suffix}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def remove_stale_temporaries(path: Path) -> None:
    """The temporaries a killed build left beside `path`: their writer is gone."""
    for leftover in path.parent.glob(_tmp_sibling(path, "*").name):
        pid = leftover.name.rsplit(".tmp-", 1)[1].split(".")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            remove_path(leftover)


WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def write_error(error: BaseException | None) -> OSError | None:
    """The full-disk / read-only / permission OSError behind `error`, if any. torch
    and coremltools wrap it (torch.save: a RuntimeError whose context is ENOSPC)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in WRITE_ERRNOS:
            return error
        if isinstance(error, shutil.Error):  # copytree (coremltools' save) keeps only messages
            for code in map(int, re.findall(r"\[Errno (\d+)\]", str(error))):
                if code in WRITE_ERRNOS:
                    return OSError(code, os.strerror(code))
        error = error.__cause__ or error.__context__
    return None


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
    remove_stale_temporaries(path)
    try:
        try:
            yield tmp
        except Exception as error:
            failed = write_error(error)
            if failed is not None and failed.filename is None:  # torch names no file: say which
                raise OSError(failed.errno, failed.strerror, str(path)) from error
            raise
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to {tmp}")
        faults.checkpoint("write", path)  # the temporary is complete, not yet in place
        if tmp.is_dir() and path.exists():
            # A directory can't be renamed over a non-empty one: move the old aside.
            old = path.with_name(f".{path.stem}.old-{os.getpid()}{path.suffix}")
            os.replace(path, old)
            os.replace(tmp, path)
            remove_path(old)
        else:
            os.replace(tmp, path)
        faults.checkpoint("publish", path)
    finally:
        remove_path(tmp)


class OutputDirError(OSError):
    pass


def prepare_output_dir(path: str | Path) -> None:
    """Create the variant's folder and prove it takes a write, before doit opens its
    state file there (else: a dbm traceback, or a failure deep in the first step)."""
    path = Path(path)
    probe = path / f".write-probe-{os.getpid()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise OutputDirError(
            f"{path}: can't write here ({error.strerror}). doit keeps every artifact and its "
            "state in this folder: make it writable, or copy the pipeline file to a writable "
            "folder and build from there (it builds into that folder's artifacts/).") from None


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


def _files(path: Path) -> dict[str, Path]:
    if path.is_file():
        return {path.name: path}
    return {p.relative_to(path).as_posix(): p for p in sorted(path.rglob("*")) if p.is_file()}


def stat_fingerprint(path: str | Path) -> dict[str, list[int]]:
    """{file: [bytes, mtime_ns]}: what a cheap check compares before hashing."""
    return {rel: [p.stat().st_size, p.stat().st_mtime_ns] for rel, p in _files(Path(path)).items()}


def write_digest(artifact: str | Path, tree: dict | None = None, **extra) -> dict:
    """Write `<stem>.digest.json` beside `artifact`: the file downstream tasks depend on.
    `tree` is a precomputed `tree_digest(artifact)`."""
    tree = tree or tree_digest(artifact)
    if "files" not in tree:  # a single file: its own entry, so every check reads one map
        tree = {**tree, "files": {Path(artifact).name: tree["sha256"]}}
    digest = {"artifact": Path(artifact).name, **tree, **extra, "stat": stat_fingerprint(artifact)}
    write_json(digest_path(artifact), digest)
    return digest


def artifact_problems(digest_file: str | Path, fast: bool = False) -> list[str]:
    """What differs between an artifact and its digest, one line per file ([] if
    intact). `fast`: files whose size and mtime still match are taken as intact."""
    digest_file = Path(digest_file)
    try:
        recorded = json.loads(digest_file.read_text())
        artifact = digest_file.with_name(recorded["artifact"])
        expected = recorded.get("files") or {recorded["artifact"]: recorded["sha256"]}
        stat = recorded.get("stat", {})
    except (OSError, ValueError, KeyError, TypeError) as error:
        return [f"{digest_file}: unreadable digest ({type(error).__name__}: {error})"]
    if not artifact.exists():
        return [f"{artifact}: missing"]
    files = _files(artifact)
    where = (lambda rel: artifact) if artifact.is_file() else (lambda rel: artifact / rel)
    problems = [f"{where(rel)}: missing" for rel in expected if rel not in files]
    problems += [f"{where(rel)}: not in the digest (an added file)" for rel in files if rel not in expected]
    for rel in (r for r in expected if r in files):
        size = files[rel].stat().st_size
        if fast and stat.get(rel) == [size, files[rel].stat().st_mtime_ns]:
            continue
        if rel in stat and size != stat[rel][0]:
            problems.append(f"{where(rel)}: {size} bytes, the digest records {stat[rel][0]}"
                            f"{' (truncated)' if size < stat[rel][0] else ''}")
        elif file_sha256(files[rel]) != expected[rel]:
            problems.append(f"{where(rel)}: content differs from its digest (sha256 "
                            f"{expected[rel][:12]}… recorded)")
    return problems


def outputs_intact(task, values) -> bool:
    """doit `uptodate` check: every digest among the task's targets still matches its
    artifact (size and mtime, then sha256 of what changed), so a tampered, truncated
    or half-replaced output is rebuilt."""
    return not any(artifact_problems(t, fast=True) for t in task.targets
                   if t.endswith(DIGEST_SUFFIX) and Path(t).exists())
