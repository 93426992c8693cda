"""A full disk and a read-only disk, for real: a small tmpfs under the build. Needs
root (mount); elsewhere it skips, and test_digests.py's injected ENOSPC/EROFS stand in."""
import os
import shutil
import subprocess
import sys

import pytest

from tests.reliability.test_kill_parallel_tamper import digests, doit, no_digest_lies, started
from tests.slow.tiny import NO_SPEECH_GATES, ROOT, header

PIPELINE = header("full") + "defaults: {precision: fp32}\n" + NO_SPEECH_GATES + """\
stages:
  prosody: {kind: prosody, shapes: {frames: {buckets: [16]}}}
"""


def _mount(folder, options: str) -> bool:
    if shutil.which("mount") is None or os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


def _remount(folder, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True)


@pytest.fixture
def tmpfs(tmp_path):
    folder = tmp_path / "fs"
    folder.mkdir()
    if not _mount(folder, "size=1g"):
        pytest.skip("can't mount a tmpfs here (needs root); the injected write failures still ran")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def _free_bytes(folder) -> int:
    return shutil.disk_usage(folder).free


@pytest.mark.slow
def test_a_full_disk_keeps_the_good_build_and_a_read_only_one_is_refused(tmpfs):
    config, out = tmpfs / "pipeline.yaml", tmpfs / "artifacts" / "full"
    config.write_text(PIPELINE)
    first = doit(config)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    good = digests(out)

    # A new bucket: room for its trace (~47 MB) but not for its package as well.
    config.write_text(PIPELINE.replace("[16]", "[16, 24]"))
    traced = (out / "_work" / "prosody" / "frames_16.traced.pt").stat().st_size
    used = shutil.disk_usage(tmpfs).used
    _remount(tmpfs, f"size={used + traced + (8 << 20)}")
    full = doit(config)
    text = full.stdout + full.stderr
    assert full.returncode == 1, text[-3000:]
    assert "TaskFailed - taskid:prosody:frames_24.convert" in text, text[-3000:]
    assert f"could not write {out}/prosody/frames_24.mlpackage: No space left on device [errno ENOSPC]" in text
    assert "Traceback" not in text
    now = digests(out)
    assert {name: now.get(name) for name in good} == good, "the good build is untouched"
    assert set(now) - set(good) == {"_work/prosody/frames_24.digest.json"}, "the trace fit; no package"
    no_digest_lies(out)
    assert not list(out.rglob("*.tmp-*")), "the failed write's temporary is gone"

    _remount(tmpfs, "size=1g")
    resumed = doit(config)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "prosody:frames_16.convert" not in started(resumed.stdout)
    assert "prosody:frames_24.verify" in started(resumed.stdout)

    _remount(tmpfs, "ro")
    read_only = doit(config)
    assert read_only.returncode == 1
    assert f"kokoro-build: {out}: can't write here (Read-only file system)" in read_only.stderr
    assert "Traceback" not in read_only.stdout + read_only.stderr
    check = subprocess.run([sys.executable, "-m", "kokoro_build.cli", "verify", "full", "--artifacts",
                            str(out.parent)], cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 0 and "5 artifacts match" in check.stdout, check.stdout + check.stderr
