"""A release bundle as the chain's variant folder: a zip (unpacked to a temporary
folder for as long as it is used, after its files are checked against its manifest)
or the folder it unzips to."""
from __future__ import annotations

import hashlib
import json
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from kokoro_build.schema.manifest import RELEASE_FORMAT as FORMAT


class BundleError(RuntimeError):
    pass


@contextmanager
def open_bundle(path: str | Path) -> Iterator[Path]:
    """The folder holding the bundle's manifest.json (the chain's `variant_dir`)."""
    path = Path(path)
    if path.is_dir():
        found = [path] if (path / "manifest.json").is_file() else \
            [p.parent for p in path.glob("*/manifest.json")]
        if len(found) != 1:
            raise BundleError(f"{path}: no release here (a folder with manifest.json, or one level above it)")
        yield found[0]
        return
    if not zipfile.is_zipfile(path):
        raise BundleError(f"{path}: not a release zip or folder")
    problems = verify_release(path)
    if problems:
        raise BundleError(f"{path}: {len(problems)} problem(s), first: {problems[0]}")
    with tempfile.TemporaryDirectory(prefix="kokoro-bundle-") as folder, zipfile.ZipFile(path) as archive:
        archive.extractall(folder)
        (root,) = {name.split("/")[0] for name in archive.namelist()}
        yield Path(folder) / root


def verify_release(archive_path: str | Path) -> list[str]:
    """Re-hash every entry against the bundle's manifest.json; the problems found
    (empty: the archive is intact)."""
    problems = []
    try:
        archive = zipfile.ZipFile(archive_path)
    except (OSError, zipfile.BadZipFile) as error:
        return [f"not a readable zip: {error}"]
    with archive:
        names = archive.namelist()
        manifests = [n for n in names if n.count("/") == 1 and n.endswith("/manifest.json")]
        if len(manifests) != 1:
            return ["no <name>-<version>/manifest.json at the top of the archive"]
        root = manifests[0].split("/")[0]
        try:
            manifest = json.loads(archive.read(manifests[0]))
        except (ValueError, zipfile.BadZipFile) as error:
            return [f"manifest.json is unreadable: {error}"]
        if manifest.get("format") != FORMAT:
            return [f"manifest.json: format {manifest.get('format')!r}, expected {FORMAT}"]
        listed = manifest.get("files", {})
        present = {n.removeprefix(root + "/") for n in names if n != manifests[0]}
        problems += [f"{path}: listed in manifest.json, missing from the archive"
                     for path in sorted(set(listed) - present)]
        problems += [f"{path}: in the archive, not listed in manifest.json" for path in sorted(present - set(listed))]
        for path in sorted(set(listed) & present):
            try:
                data = archive.read(f"{root}/{path}")
            except (zipfile.BadZipFile, OSError) as error:  # a corrupted member fails its CRC
                problems.append(f"{path}: unreadable ({error})")
                continue
            expected = listed[path]
            if len(data) != expected["bytes"] or hashlib.sha256(data).hexdigest() != expected["sha256"]:
                problems.append(f"{path}: sha256 or size differs from manifest.json")
    return problems
