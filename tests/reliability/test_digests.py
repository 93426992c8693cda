"""Tamper detection and write failures on synthetic artifacts (no model): a package's
digest names each changed, truncated, removed or added file; doit's `outputs_intact`
check takes a touched file as intact and a changed one as stale; a failed write keeps
the previous artifact; a killed writer's temporaries are cleared."""
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kokoro_build.store import faults
from kokoro_build.cli import main as cli
from kokoro_build.store.package import (artifact_problems, atomic_path, digest_path, outputs_intact,
                                  prepare_output_dir, write_digest, OutputDirError)
from kokoro_build.plan.actions import action as _action


def _package(folder: Path, name="frames_8.mlpackage") -> Path:
    package = folder / name
    with atomic_path(package) as tmp:
        (tmp / "Data" / "com.apple.CoreML" / "weights").mkdir(parents=True)
        (tmp / "Data" / "com.apple.CoreML" / "model.mlmodel").write_bytes(b"spec" * 100)
        (tmp / "Data" / "com.apple.CoreML" / "weights" / "weight.bin").write_bytes(bytes(range(256)) * 40)
        (tmp / "Manifest.json").write_text("{}")
    write_digest(package)
    return package


class FakeTask:
    def __init__(self, *targets):
        self.targets = [str(t) for t in targets]


def test_an_untouched_package_is_intact_and_a_touched_one_too(tmp_path):
    package = _package(tmp_path)
    task = FakeTask(package, digest_path(package))
    assert artifact_problems(digest_path(package)) == [] and outputs_intact(task, {})
    weights = package / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    os.utime(weights, ns=(1, 1))  # same bytes, new mtime: hashed, still intact
    assert artifact_problems(digest_path(package), fast=True) == [] and outputs_intact(task, {})


@pytest.mark.parametrize("tamper, expected", [
    ("truncate", "Data/com.apple.CoreML/weights/weight.bin: 5000 bytes, the digest records 10240 (truncated)"),
    ("edit", "Data/com.apple.CoreML/model.mlmodel: content differs from its digest"),
    ("delete", "Manifest.json: missing"),
    ("add", "Data/extra.bin: not in the digest (an added file)"),
])
def test_each_tampered_file_is_named(tmp_path, tamper, expected):
    package = _package(tmp_path)
    data = package / "Data" / "com.apple.CoreML"
    if tamper == "truncate":
        os.truncate(data / "weights" / "weight.bin", 5000)
    elif tamper == "edit":  # same size, same mtime: only the sha256 can tell
        model = data / "model.mlmodel"
        stat = model.stat()
        model.write_bytes(b"spec" * 99 + b"SPEC")
        os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    elif tamper == "delete":
        (package / "Manifest.json").unlink()
    else:
        (package / "Data" / "extra.bin").write_bytes(b"x")
    problems = artifact_problems(digest_path(package))
    assert len(problems) == 1 and problems[0].startswith(f"{package}/{expected}"), problems
    if tamper != "edit":  # the cheap check sees size and mtime; the edit needs a full hash
        assert not outputs_intact(FakeTask(package, digest_path(package)), {})


def test_a_single_file_artifact_and_a_missing_one(tmp_path):
    weights = tmp_path / "kokoro.pt"
    weights.write_bytes(b"w" * 1000)
    write_digest(weights)
    assert artifact_problems(digest_path(weights)) == []
    weights.write_bytes(b"w" * 999 + b"v")
    assert artifact_problems(digest_path(weights))[0].startswith(f"{weights}: content differs")
    weights.unlink()
    assert artifact_problems(digest_path(weights)) == [f"{weights}: missing"]
    digest_path(weights).write_text("{not json")
    assert "unreadable digest" in artifact_problems(digest_path(weights))[0]


def test_kokoro_build_verify_names_the_wrong_file(tmp_path, capsys):
    variant = tmp_path / "artifacts" / "v"
    package = _package(variant / "vocoder")
    _package(variant / "prosody")
    assert cli(["verify", "v", "--artifacts", str(tmp_path / "artifacts")]) == 0
    assert "2 artifacts match their digests" in capsys.readouterr().out
    os.truncate(package / "Manifest.json", 1)
    assert cli(["verify", "v", "--artifacts", str(tmp_path / "artifacts")]) == 1
    err = capsys.readouterr().err
    assert f"{package}/Manifest.json: 1 bytes, the digest records 2 (truncated)" in err
    assert "prosody" not in err and "1 problem(s)" in err
    assert cli(["verify", "nothing", "--artifacts", str(tmp_path / "artifacts")]) == 1
    assert "no artifact digests" in capsys.readouterr().err


@pytest.mark.parametrize("effect, code", [("enospc", errno.ENOSPC), ("erofs", errno.EROFS)])
def test_a_failed_write_keeps_the_previous_artifact(tmp_path, monkeypatch, effect, code):
    package = _package(tmp_path)
    before = json.loads(digest_path(package).read_text())["sha256"]
    monkeypatch.setenv(faults.ENV, f"write:*/frames_8.mlpackage:{effect}")
    with pytest.raises(OSError) as failure:
        with atomic_path(package) as tmp:
            (tmp / "Manifest.json").parent.mkdir(parents=True)
            (tmp / "Manifest.json").write_text('{"new": 1}')
    assert failure.value.errno == code
    assert artifact_problems(digest_path(package)) == []
    assert json.loads(digest_path(package).read_text())["sha256"] == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([package.name, digest_path(package).name])


def _fail_with(code):
    raise OSError(code, os.strerror(code), "/artifacts/v/vocoder/frames_8.mlpackage")


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_a_write_failure_is_a_clear_task_failure_not_a_traceback(code):
    from doit.exceptions import TaskFailed
    run = _action("tests.reliability.test_digests:_fail_with")
    result = run(code)
    assert isinstance(result, TaskFailed)
    assert result.message.startswith(f"could not write /artifacts/v/vocoder/frames_8.mlpackage: "
                                     f"{os.strerror(code)} [errno {errno.errorcode[code]}]")
    assert "nothing half-written was published" in result.message


def _bad_input():
    from kokoro_build.model.source.weights import WeightsError
    raise WeightsError("voice 'v' is (510, 256); a Kokoro voice pack is (510, 1, 256)")


def test_a_bad_input_is_a_task_failure_with_its_message():
    from doit.exceptions import TaskFailed
    result = _action("tests.reliability.test_digests:_bad_input")()
    assert isinstance(result, TaskFailed) and result.message.startswith("voice 'v' is (510, 256)")


def test_other_errors_still_raise():
    with pytest.raises(OSError):
        _action("tests.reliability.test_digests:_fail_with")(errno.EIO)


def test_a_killed_writers_temporaries_are_cleared(tmp_path):
    package = _package(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    leftover = tmp_path / f".frames_8.tmp-{dead}.mlpackage"
    (leftover / "Data").mkdir(parents=True)
    mine = tmp_path / f".frames_8.tmp-{os.getppid()}.mlpackage"  # a live process's: kept
    mine.mkdir()
    _package(tmp_path)
    assert not leftover.exists() and mine.exists()
    assert artifact_problems(digest_path(package)) == []


def test_a_read_only_output_folder_is_refused_clearly(tmp_path, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(OutputDirError, match=r"artifacts/v: can't write here \(Read-only file system\)"):
        prepare_output_dir(tmp_path / "artifacts" / "v")


def test_a_wrapped_write_error_is_found():
    import shutil
    from kokoro_build.store.package import write_error
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] unexpected pos")  # torch.save
    except RuntimeError as wrapped:
        assert write_error(wrapped).errno == errno.ENOSPC
    copy = shutil.Error([("/tmp/a", "/b/a", "[Errno 28] No space left on device: '/tmp/a' -> '/b/a'")])
    assert write_error(copy).errno == errno.ENOSPC  # copytree keeps only the message
    assert write_error(RuntimeError("boom")) is None
    assert write_error(OSError(errno.EIO, "I/O error")) is None
