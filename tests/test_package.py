"""Atomic artifact writes and digests."""
import json

import pytest

from kokoro_build.store.package import atomic_path, digest_path, tree_digest, write_digest, write_json


def test_failed_write_leaves_the_old_file_and_no_temporaries(tmp_path):
    target = tmp_path / "a.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_failed_first_write_leaves_nothing(tmp_path):
    target = tmp_path / "model.mlpackage"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "weights.bin").write_bytes(b"partial")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_directory_is_replaced_whole(tmp_path):
    target = tmp_path / "model.mlpackage"
    for content in (b"one", b"two"):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "w.bin").write_bytes(content)
            assert tmp.suffix == ".mlpackage"
    assert (target / "w.bin").read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["model.mlpackage"]


def test_an_empty_write_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing was written"):
        with atomic_path(tmp_path / "x.bin"):
            pass


def test_digest_of_directory_depends_on_names_and_content(tmp_path):
    pkg = tmp_path / "m.mlpackage"
    (pkg / "Data").mkdir(parents=True)
    (pkg / "Data" / "w.bin").write_bytes(b"abc")
    first = tree_digest(pkg)
    (pkg / "Data" / "w.bin").write_bytes(b"abd")
    assert tree_digest(pkg)["sha256"] != first["sha256"]
    digest = write_digest(pkg, kind="vocoder")
    assert digest_path(pkg) == tmp_path / "m.digest.json"
    assert json.loads(digest_path(pkg).read_text())["kind"] == "vocoder" and digest["bytes"] == 3
