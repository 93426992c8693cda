"""A remote step cache behind the local one (`cache: {url: ...}` in a pipeline file),
shared by machines: a CI runner and a laptop stop redoing each other's conversions,
as Bazel's remote cache does, with the same content keys as the local cache
(store/cache.py).

One object per entry, `<url>/<step>/<key>.tar`: the entry's outputs and `index.json`,
the step and key it was stored under and the sha256 and size of every file in it.

- Upload: the tar goes to a temporary key under `<url>/.incoming/` and is then moved
  to its final key. On S3 a move is a server-side copy, and a copied object appears
  whole or not at all; on a local or mounted folder (file://) it is a rename. A killed
  upload leaves at most a stray temporary, never a final key.
- Fetch: the object is read into a scratch folder beside the local entry, unpacked,
  and every file checked against the index before the scratch folder is renamed into
  the local cache. A missing object is a miss. A truncated or corrupt one, or one
  stored under another step or key, is a miss and a warning; the rebuilt step's
  upload replaces it. One that lacks a part of an entry is dropped when it is linked
  in (cache.restore), so it is a miss too.
- An unreachable server is an error naming the URL: the step fails, and what was
  already built stays in place.

Credentials come from the environment as boto3 reads them (AWS_ACCESS_KEY_ID,
AWS_PROFILE, ~/.aws/config ...); the pipeline file holds only the URL and an optional
endpoint, so nothing secret reaches a report or manifest.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from kokoro_build.errors import BuildError
from kokoro_build.store.package import file_sha256, remove_path

INDEX = "index.json"
INCOMING = ".incoming"


class RemoteCacheError(BuildError):
    pass


@dataclass(frozen=True)
class RemoteCache:
    url: str                           # s3://bucket/prefix or file:///folder
    endpoint_url: str | None = None    # an S3-compatible server other than AWS

    def filesystem(self):
        import fsspec
        options = {}
        if self.url.startswith("s3://"):
            # fail in seconds, not minutes, when the server is down
            options = {"config_kwargs": {"connect_timeout": 5, "read_timeout": 60,
                                                       "retries": {"max_attempts": 1}}}
            if self.endpoint_url:
                options["endpoint_url"] = self.endpoint_url
        fs, root = fsspec.core.url_to_fs(self.url, **options)
        return fs, root.rstrip("/")

    def fetch(self, step: str, key: str, entry: Path) -> bool:
        """Put the remote entry at `entry` (the local cache's folder for it); False on
        a miss. A corrupt object, or one stored under another step or key, is a miss
        with a warning."""
        fs, root = self.filesystem()
        final = f"{root}/{step}/{key}.tar"
        scratch = entry.with_name(f".{entry.name}.remote-{os.getpid()}")
        download = scratch.with_suffix(".tar")
        remove_path(scratch)
        entry.parent.mkdir(parents=True, exist_ok=True)
        try:
            try:
                fs.invalidate_cache()  # another machine may have written it since we last looked
                if not fs.exists(final):
                    return False
                fs.get_file(final, str(download))  # streamed: a weights entry is hundreds of MB
            except FileNotFoundError:
                return False
            except Exception as error:  # the server is down or refuses us
                raise self._unreachable("read", final, error) from None
            problem = _unpack_verified(download, scratch, step, key)
            if problem:
                print(f"warning: remote cache object {self._shown(final)} is unusable ({problem}); "
                      "treating it as a miss and rebuilding", file=sys.stderr, flush=True)
                return False
            try:
                os.replace(scratch, entry)
            except OSError:  # another process restored the same entry first
                pass
            return True
        finally:
            remove_path(scratch)
            remove_path(download)

    def upload(self, step: str, key: str, entry: Path) -> None:
        fs, root = self.filesystem()
        final = f"{root}/{step}/{key}.tar"
        incoming = f"{root}/{INCOMING}/{key}.{uuid.uuid4().hex}.tar"
        packed = entry.with_name(f".{entry.name}.upload-{os.getpid()}.tar")
        try:
            _pack(entry, packed, step, key)
            if not self.url.startswith("s3://"):  # S3 has no folders, and s3fs's makedirs
                fs.makedirs(f"{root}/{INCOMING}", exist_ok=True)  # would create a missing bucket
                fs.makedirs(f"{root}/{step}", exist_ok=True)
            fs.put_file(str(packed), incoming)
            from kokoro_build.store.faults import checkpoint
            checkpoint("upload", final)  # the reliability tests kill an upload here
            fs.mv(incoming, final)
        except Exception as error:
            raise self._unreachable("write", final, error) from None
        finally:
            remove_path(packed)
            try:
                if fs.exists(incoming):
                    fs.rm(incoming)
            except Exception:
                pass  # a stray temporary is never read: only final keys are

    def _shown(self, key: str) -> str:
        return key if "://" in key else f"{self.url.split('://')[0]}://{key}"

    def _unreachable(self, verb: str, key: str, error: Exception) -> RemoteCacheError:
        return RemoteCacheError(
            f"remote cache: could not {verb} {self._shown(key)}: {type(error).__name__}: {error}. "
            "Is the server up, and are the credentials (the usual AWS environment or config) "
            "right? Everything built so far is in place and in the local cache; run doit again "
            "when the cache is back, or remove `cache:` from the pipeline file to build without it.")


def _pack(entry: Path, out: Path, step: str, key: str) -> None:
    """The entry's files as a tar at `out`, with an index: the step and key it was
    stored under and the sha256 and size of every file."""
    files = sorted(p for p in entry.rglob("*") if p.is_file())
    index = {"step": step, "key": key,
             "files": {p.relative_to(entry).as_posix(): {"sha256": file_sha256(p), "bytes": p.stat().st_size}
                       for p in files}}
    with tarfile.open(out, mode="w") as tar:
        data = json.dumps(index, sort_keys=True).encode()
        info = tarfile.TarInfo(INDEX)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for path in files:
            tar.add(path, arcname=path.relative_to(entry).as_posix(), recursive=False)


def _unpack_verified(packed: Path, target: Path, step: str, key: str) -> str | None:
    """Unpack into `target`; the problem, or None when the object is this step's and
    key's and every file matches the index. (An entry that lacks a part is dropped by
    store/cache.restore when it is linked in, as a damaged local entry is.)"""
    try:
        with tarfile.open(packed, mode="r") as tar:
            index = json.loads(tar.extractfile(tar.getmember(INDEX)).read())
            if (index["step"], index["key"]) != (step, key):
                return f"it holds {index['step']} {str(index['key'])[:12]}"
            files = index["files"]
            members = [m for m in tar.getmembers() if m.name != INDEX]
            if sorted(m.name for m in members) != sorted(files):
                return "its files differ from its index"
            for member in members:
                if not member.isfile():
                    return f"{member.name} is not a regular file"
                path = target / member.name
                if target.resolve() not in path.resolve().parents:
                    return f"{member.name} points outside the entry"
                path.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                with tar.extractfile(member) as source, open(path, "wb") as out:
                    for block in iter(lambda: source.read(1 << 20), b""):
                        digest.update(block)
                        out.write(block)
                if digest.hexdigest() != files[member.name]["sha256"]:
                    return f"{member.name} does not match its sha256"
    except (tarfile.TarError, KeyError, ValueError, EOFError, TypeError, AttributeError) as error:
        return f"not a complete entry: {type(error).__name__}: {error}"
    return None

