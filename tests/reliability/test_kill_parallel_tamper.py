"""Kill it, run it in parallel, tamper with it: on a small random-weight Kokoro (four
packages), real doit, real ct.convert. Every build must end at the digests of one
clean serial build, and after a kill only the unfinished work runs again."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kokoro_build.store.package import DIGEST_SUFFIX, artifact_problems
from tests.slow.tiny import NO_SPEECH_GATES, ROOT, header

PIPELINE = header("rel") + "defaults: {precision: fp32}\n" + NO_SPEECH_GATES.replace(
    "verify: {", "verify: {parity: {min_psnr_db: 20}, ") + """\
stages:
  duration: {kind: duration, shapes: {tokens: {buckets: [32]}}}
  prosody: {kind: prosody, shapes: {frames: {buckets: [8, 16]}}}
  vocoder: {kind: vocoder, shapes: {frames: {buckets: [8]}}}
"""
# (one vocoder bucket: the tiny model's vocoder keeps kokoro's full decoder width, 18 s a
# bucket to trace, convert and verify, where a prosody bucket takes 6 s)
ALL_TASKS = ["weights", "runtime", "duration:tokens_32.export", "duration:tokens_32.convert", "duration:tokens_32.verify",
             "prosody:frames_8.export", "prosody:frames_8.convert", "prosody:frames_8.verify",
             "prosody:frames_16.export", "prosody:frames_16.convert", "prosody:frames_16.verify",
             "vocoder:frames_8.export", "vocoder:frames_8.convert", "vocoder:frames_8.verify",
             "manifest", "report"]


def _command(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "doit", "-f", str(ROOT / "dodo.py"), *args, f"config={config}"]


def _env(fault: str | None = None) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("KOKORO_BUILD_FAULT", None)
    return {**env, "KOKORO_BUILD_FAULT": fault} if fault else env


def doit(config: Path, *args: str, fault: str | None = None) -> subprocess.CompletedProcess:
    # its own session: a fault's SIGKILL takes the build's process group, not pytest
    return subprocess.run(_command(config, *args), cwd=ROOT, capture_output=True, text=True,
                          env=_env(fault), start_new_session=True, timeout=900)


# doit prints ".  <task>" as it starts a task. Under -n 2 a worker's printed line can
# reach the pipe before its newline does, so the marker may follow other text.
TASK_STARTED = re.compile(r"(?:^|\S)\.  ([A-Za-z_][\w:.-]*)$")


def started(stdout: str) -> list[str]:
    return [m.group(1) for line in stdout.splitlines() for m in [TASK_STARTED.search(line)] if m]


def digests(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): json.loads(p.read_text())["sha256"]
            for p in sorted(out.rglob(f"*{DIGEST_SUFFIX}"))}


def no_digest_lies(out: Path) -> None:
    """Every digest on disk matches its artifact. (A killed writer's temporary may be
    left; the next write beside it clears it, and the final run asserts none remain.)"""
    assert [line for d in out.rglob(f"*{DIGEST_SUFFIX}") for line in artifact_problems(d)] == []


def session_processes(sid: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


def kill_on_line(config: Path, pattern: str, delay: float) -> list[str]:
    """Start doit; when a line matches, wait `delay` s and SIGKILL doit alone (as
    `kill -9 <pid>` would). Returns the tasks it started; asserts that every process
    it started (the forkserver, an export child) dies with it."""
    proc = subprocess.Popen(_command(config), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=_env(), start_new_session=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if re.search(pattern, line):
            time.sleep(delay)
            os.kill(proc.pid, signal.SIGKILL)
            break
    assert proc.wait(timeout=60) == -signal.SIGKILL, "".join(lines[-30:])
    deadline = time.time() + 20
    while session_processes(proc.pid) and time.time() < deadline:
        time.sleep(0.2)
    assert session_processes(proc.pid) == [], "a child outlived the killed build"
    lines += proc.stdout.readlines()
    return started("".join(lines))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One clean serial build: its digests and time."""
    folder = tmp_path_factory.mktemp("serial")
    (folder / "pipeline.yaml").write_text(PIPELINE)
    start = time.time()
    result = doit(folder / "pipeline.yaml")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert started(result.stdout) == ALL_TASKS
    return digests(folder / "artifacts" / "rel"), time.time() - start, folder


@pytest.mark.slow
def test_doit_n2_builds_the_same_digests_as_serial(reference, tmp_path):
    expected, serial_seconds, _ = reference
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    start = time.time()
    result = doit(tmp_path / "pipeline.yaml", "-n", "2", "-P", "process")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print(f"serial {serial_seconds:.0f} s, doit -n 2 {time.time() - start:.0f} s")
    assert sorted(started(result.stdout)) == sorted(ALL_TASKS)
    out = tmp_path / "artifacts" / "rel"
    assert digests(out) == expected
    assert not list(out.rglob("*.tmp-*")), "no temporaries left behind"
    assert started(doit(tmp_path / "pipeline.yaml").stdout) == [], "and the state file says so"


# (fault, what it interrupts). Each kill happens where the build is most exposed: an
# output complete but not renamed in, renamed in but its digest not yet written, or
# all written but doit not yet told.
KILLS = [
    ("publish:*/weights/kokoro.digest.json", "the weights step, after its last write"),
    ("write:*/_work/duration/tokens_32.traced.pt", "a trace (in its child process), before the rename"),
    ("publish:*/duration/tokens_32.mlpackage", "a conversion: package in place, no digest yet"),
    ("publish:*/duration/tokens_32.verify.json", "a stage boundary: duration verified"),
    ("line:export prosody .*tracing", "doit alone, while a child traces"),
    ("write:*/prosody/frames_16.mlpackage", "a package save, before the rename"),
    ("line:convert vocoder \\{'frames': 8\\}: ct.convert", "doit alone, inside ct.convert"),
    ("publish:*/artifacts/rel/manifest.json", "the manifest"),
]


@pytest.mark.slow
def test_after_each_kill_only_the_unfinished_work_runs(reference, tmp_path):
    expected, _, _ = reference
    config = tmp_path / "pipeline.yaml"
    config.write_text(PIPELINE)
    out = tmp_path / "artifacts" / "rel"
    finished: list[str] = []  # tasks that completed in an earlier (killed) run
    for fault, what in KILLS:
        if fault.startswith("line:"):
            ran = kill_on_line(config, fault[5:], delay=2.0)
        else:
            result = doit(config, fault=fault)
            assert result.returncode == -signal.SIGKILL, (what, result.stdout[-2000:], result.stderr[-2000:])
            ran = started(result.stdout)
        assert ran, what
        assert not set(ran) & set(finished), f"{what}: redid finished work {set(ran) & set(finished)}"
        assert ran[0] == (ALL_TASKS[len(finished)]), f"{what}: resumed at {ran[0]}"
        finished += ran[:-1]  # serial: every task it started but the last one finished
        no_digest_lies(out)
    result = doit(config)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert started(result.stdout) == ALL_TASKS[len(finished):]
    assert digests(out) == expected
    assert not list(out.rglob("*.tmp-*")) and not list(out.rglob("*.old-*"))
    assert started(doit(config).stdout) == []


@pytest.mark.slow
def test_tampered_packages_are_named_and_rebuilt(reference):
    """In place, in the serial build. Its step cache holds hard links to the same files:
    a file edited in place is edited there too (that entry fails its check and the step
    reruns); a deleted or added file is not (the entry is restored)."""
    expected, _, serial = reference
    config, out = serial / "pipeline.yaml", serial / "artifacts" / "rel"
    assert started(doit(config).stdout) == []
    coreml = "Data/com.apple.CoreML"
    weights = out / "vocoder" / "frames_8.mlpackage" / coreml / "weights" / "weight.bin"
    os.truncate(weights, weights.stat().st_size // 2)
    model = out / "duration" / "tokens_32.mlpackage" / coreml / "model.mlmodel"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    (out / "prosody" / "frames_16.mlpackage" / "Manifest.json").unlink()
    (out / "prosody" / "frames_8.mlpackage" / "Data" / "stray.bin").write_bytes(b"x")
    check = subprocess.run([sys.executable, "-m", "kokoro_build.cli", "verify", "rel", "--artifacts",
                            str(out.parent)], cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 1
    named = sorted(line.split(": ", 1)[0] for line in check.stderr.splitlines() if ".mlpackage/" in line)
    assert named == sorted(str(p) for p in [
        weights, model, out / "prosody" / "frames_16.mlpackage" / "Manifest.json",
        out / "prosody" / "frames_8.mlpackage" / "Data" / "stray.bin"]), check.stderr
    assert "(truncated)" in check.stderr and "4 problem(s)" in check.stderr
    rebuilt = started(doit(config).stdout)
    for stage, label in [("duration", "tokens_32"), ("prosody", "frames_16"),
                         ("vocoder", "frames_8"), ("prosody", "frames_8")]:
        assert f"{stage}:{label}.convert" in rebuilt and f"{stage}:{label}.export" not in rebuilt
    assert digests(out) == expected
    ok = subprocess.run([sys.executable, "-m", "kokoro_build.cli", "verify", "rel", "--artifacts",
                         str(out.parent)], cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
