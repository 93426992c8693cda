"""A remote step cache behind the local one (`cache: {url: ...}` in a pipeline file),
shared by machines: a CI runner and a laptop stop redoing each other's conversions,
as Bazel's remote cache does, with the same content keys as the local cache
(store/cache.py).

One object per entry, `<url>/<step>/<key>.tar`: the entry's outputs and `index.json`,
the sha256 and size of every file in them.

- Upload: the tar goes to a temporary key under `<url>/.incoming/` and is then moved
  to its final key. On S3 a move is a server-side copy, and a copied object appears
  whole or not at all; on a local or mounted folder (file://) it is a rename. A killed
  upload leaves at most a stray temporary, never a final key.
- Fetch: the object is read into a scratch folder beside the local entry, unpacked,
  and every file checked against the index before the scratch folder is renamed into
  the local cache. A missing object is a miss. A truncated or corrupt one is a miss
  and a warning; the rebuilt step's upload replaces it.
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

    def object_key(self, step: str, key: str) -> str:
        return f"{self.filesystem()[1]}/{step}/{key}.tar"

    def fetch(self, step: str, key: str, entry: Path) -> bool:
        """Put the remote entry at `entry` (the local cache's folder for it); False on
        a miss. A corrupt object is a miss with a warning."""
        fs, root = self.filesystem()
        final = f"{root}/{step}/{key}.tar"
        try:
            fs.invalidate_cache()  # another machine may have written it since we last looked
            if not fs.exists(final):
                return False
            blob = fs.cat_file(final)
        except FileNotFoundError:
            return False
        except Exception as error:  # the server is down or refuses us
            raise self._unreachable("read", final, error) from None
        scratch = entry.with_name(f".{entry.name}.remote-{os.getpid()}")
        remove_path(scratch)
        try:
            problem = _unpack_verified(blob, scratch)
            if problem:
                print(f"warning: remote cache object {self._shown(final)} is unusable ({problem}); "
                      "treating it as a miss and rebuilding", file=sys.stderr, flush=True)
                return False
            entry.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(scratch, entry)
            except OSError:  # another process restored the same entry first
                pass
            return True
        finally:
            remove_path(scratch)

    def upload(self, step: str, key: str, entry: Path) -> None:
        fs, root = self.filesystem()
        final = f"{root}/{step}/{key}.tar"
        incoming = f"{root}/{INCOMING}/{key}.{uuid.uuid4().hex}.tar"
        blob = _pack(entry)
        try:
            fs.makedirs(f"{root}/{INCOMING}", exist_ok=True)
            fs.makedirs(f"{root}/{step}", exist_ok=True)
            fs.pipe_file(incoming, blob)
            from kokoro_build.store.faults import checkpoint
            checkpoint("upload", final)  # the reliability tests kill an upload here
            fs.mv(incoming, final)
        except Exception as error:
            raise self._unreachable("write", final, error) from None
        finally:
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


def _pack(entry: Path) -> bytes:
    """The entry's files as a tar with an index of their sha256 and sizes."""
    files = sorted(p for p in entry.rglob("*") if p.is_file())
    index = {p.relative_to(entry).as_posix(): {"sha256": file_sha256(p), "bytes": p.stat().st_size}
             for p in files}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = json.dumps(index, sort_keys=True).encode()
        info = tarfile.TarInfo(INDEX)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for path in files:
            tar.add(path, arcname=path.relative_to(entry).as_posix(), recursive=False)
    return buffer.getvalue()


def _unpack_verified(blob: bytes, target: Path) -> str | None:
    """Unpack into `target`; the problem, or None when every file matches the index."""
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r") as tar:
            index_member = tar.getmember(INDEX)
            index = json.loads(tar.extractfile(index_member).read())
            members = [m for m in tar.getmembers() if m.name != INDEX]
            if sorted(m.name for m in members) != sorted(index):
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
                if digest.hexdigest() != index[member.name]["sha256"]:
                    return f"{member.name} does not match its sha256"
    except (tarfile.TarError, KeyError, ValueError, EOFError) as error:
        return f"not a complete entry: {type(error).__name__}: {error}"
    return None
