"""The remote step cache (store/remote.py) against a real S3 server on loopback (moto):
a second machine's miss is a remote hit; a corrupt, truncated or foreign object is a
miss and rebuilt; a damaged local entry never replaces a good object; a killed upload
leaves no final key; a stopped server or a missing bucket is a clear error, in a build
and in a sweep."""
import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
from types import SimpleNamespace

import pytest

from kokoro_build.errors import BuildError
from kokoro_build.store.cache import run_cached
from tests.scale.s3_server import BUCKET, final_keys, s3_server
from tests.test_cache import make_step

URL = f"s3://{BUCKET}/steps"


@pytest.fixture
def s3(monkeypatch):
    with s3_server(monkeypatch) as server:
        yield server


def build(machine, calls, remote, content="traced"):
    """One cached step on `machine` (its own local cache and outputs)."""
    target = machine / "out" / "stage.traced.pt"
    run_cached(str(machine / "cache"), "export", {"sizes": 120}, [],
               [str(target), str(machine / "out" / "stage.digest.json")],
               make_step(calls, content)(target), remote=remote)
    return target


def test_a_second_machine_takes_the_step_from_the_remote_cache(tmp_path, s3, capsys):
    endpoint, client, _ = s3
    remote = {"url": URL, "endpoint_url": endpoint}
    calls = []
    build(tmp_path / "ci", calls, remote)
    keys = final_keys(client)
    assert len(keys) == 1 and keys[0].startswith("steps/export/") and keys[0].endswith(".tar")
    laptop = build(tmp_path / "laptop", calls, remote)
    assert len(calls) == 1 and laptop.read_text() == "traced"
    assert "cache hit (remote): export" in capsys.readouterr().out
    # the laptop's local cache now holds it: a third build reads neither the server nor the step
    (tmp_path / "laptop" / "out" / "stage.traced.pt").unlink()
    build(tmp_path / "laptop", calls, {"url": URL, "endpoint_url": "http://127.0.0.1:9"})
    assert len(calls) == 1


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_a_corrupt_remote_object_is_a_miss_and_is_rebuilt(tmp_path, s3, capsys, damage):
    endpoint, client, _ = s3
    remote = {"url": URL, "endpoint_url": endpoint}
    calls = []
    build(tmp_path / "ci", calls, remote)
    key = final_keys(client)[0]
    blob = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        at = tar.getmember("outputs/0").offset_data  # the traced output's own bytes
    assert blob[at:at + 6] == b"traced"
    damaged = {"flip": blob[:at] + b"TRACED" + blob[at + 6:], "truncate": blob[: len(blob) // 3],
               "garbage": b"not a tar"}[damage]
    client.put_object(Bucket=BUCKET, Key=key, Body=damaged)
    laptop = build(tmp_path / "laptop", calls, remote)
    assert len(calls) == 2 and laptop.read_text() == "traced"  # rebuilt, not the bad bytes
    assert "is unusable" in capsys.readouterr().err
    # the rebuild's upload replaced the bad object: the next machine hits
    assert client.get_object(Bucket=BUCKET, Key=key)["Body"].read() != damaged
    build(tmp_path / "third", calls, remote)
    assert len(calls) == 2


def test_an_object_stored_under_another_key_is_a_miss(tmp_path, s3, capsys):
    endpoint, client, _ = s3
    remote = {"url": URL, "endpoint_url": endpoint}
    calls = []
    build(tmp_path / "ci", calls, remote)                    # key A: "traced"
    target = tmp_path / "ci2" / "out" / "stage.traced.pt"  # key B: other content
    run_cached(str(tmp_path / "ci2" / "cache"), "export", {"sizes": 240}, [],
               [str(target), str(target.parent / "stage.digest.json")], make_step(calls, "other")(target),
               remote=remote)
    other = next(k for k in final_keys(client)
                 if b"other" in client.get_object(Bucket=BUCKET, Key=k)["Body"].read())
    mine = next(k for k in final_keys(client) if k != other)
    client.copy_object(Bucket=BUCKET, Key=mine, CopySource={"Bucket": BUCKET, "Key": other})  # a valid tar
    laptop = build(tmp_path / "laptop", calls, remote)
    assert len(calls) == 3 and laptop.read_text() == "traced"
    assert "is unusable (it holds export" in capsys.readouterr().err


def test_an_object_lacking_an_output_is_a_miss_and_is_rebuilt(tmp_path, s3):
    endpoint, client, _ = s3
    remote = {"url": URL, "endpoint_url": endpoint}
    calls = []
    build(tmp_path / "ci", calls, remote)
    key = final_keys(client)[0]
    with tarfile.open(fileobj=io.BytesIO(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())) as tar:
        index = json.loads(tar.extractfile("index.json").read())
        del index["files"]["outputs/0"]  # a consistent index of an entry without its output
        kept = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.name not in ("index.json", "outputs/0")}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in {"index.json": json.dumps(index).encode(), **kept}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    client.put_object(Bucket=BUCKET, Key=key, Body=buffer.getvalue())
    laptop = build(tmp_path / "laptop", calls, remote)
    assert len(calls) == 2 and laptop.read_text() == "traced"  # rebuilt
    build(tmp_path / "third", calls, remote)  # the rebuild's upload replaced the object
    assert len(calls) == 2


def test_a_damaged_local_entry_is_dropped_and_the_good_remote_object_kept(tmp_path, s3):
    endpoint, client, _ = s3
    remote = {"url": URL, "endpoint_url": endpoint}
    calls = []
    built = build(tmp_path / "ci", calls, remote)
    key = final_keys(client)[0]
    good = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    entry = next((tmp_path / "ci" / "cache" / "export").iterdir())
    (entry / "outputs" / "0").unlink()
    built.unlink()
    build(tmp_path / "ci", calls, remote)  # a local miss; the remote object is whole: a remote hit
    assert len(calls) == 1 and built.read_text() == "traced"
    assert client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == good
    assert (entry / "outputs" / "0").exists()  # the damaged entry was replaced by the fetched one


def test_a_missing_bucket_is_a_clear_error_and_is_not_created(tmp_path, s3):
    endpoint, client, _ = s3
    calls = []
    with pytest.raises(BuildError, match=r"remote cache: could not write s3://no-such-bucket/steps/export/"):
        build(tmp_path / "ci", calls, {"url": "s3://no-such-bucket/steps", "endpoint_url": endpoint})
    assert [b["Name"] for b in client.list_buckets()["Buckets"]] == [BUCKET]
    assert len(calls) == 1 and (tmp_path / "ci" / "out" / "stage.traced.pt").read_text() == "traced"


def test_a_server_stopping_before_the_upload_keeps_the_build_and_its_local_entry(tmp_path, s3):
    endpoint, client, server = s3
    remote = {"url": URL, "endpoint_url": endpoint}
    calls = []
    target = tmp_path / "ci" / "out" / "stage.traced.pt"
    step = make_step(calls, "traced")(target)

    def build_then_lose_the_server():
        step()
        server.stop()

    with pytest.raises(BuildError, match=r"remote cache: could not write .*Is the server up"):
        run_cached(str(tmp_path / "ci" / "cache"), "export", {"sizes": 120}, [],
                   [str(target), str(target.parent / "stage.digest.json")], build_then_lose_the_server,
                   remote=remote)
    assert target.read_text() == "traced"
    target.unlink()
    build(tmp_path / "ci", calls, remote)  # a local hit: the server is not asked
    assert len(calls) == 1 and target.read_text() == "traced"


def test_a_killed_upload_leaves_no_final_key(tmp_path, s3):
    endpoint, client, _ = s3
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(os.getcwd())!r})
        os.setpgid(0, 0)
        from pathlib import Path
        from tests.scale.test_remote_cache import build
        build(Path({str(tmp_path / 'ci')!r}), [], {{"url": {URL!r}, "endpoint_url": {endpoint!r}}})
        """)
    env = {**os.environ, "KOKORO_BUILD_FAULT": "upload:*"}
    killed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    everything = client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    assert any("/.incoming/" in o["Key"] for o in everything)  # it died mid-upload ...
    assert final_keys(client) == []                              # ... and published nothing
    calls = []
    build(tmp_path / "laptop", calls, {"url": URL, "endpoint_url": endpoint})
    assert len(calls) == 1 and len(final_keys(client)) == 1


def test_a_stopped_server_is_a_clear_error_and_keeps_what_was_built(tmp_path, s3):
    endpoint, client, server = s3
    remote = {"url": URL, "endpoint_url": endpoint}
    calls = []
    built = build(tmp_path / "ci", calls, remote)
    server.stop()
    with pytest.raises(BuildError, match=r"remote cache: could not read s3://kokoro-cache/steps/export/.*"
                                         r"Is the server up"):
        build(tmp_path / "laptop", calls, remote)
    assert built.read_text() == "traced" and len(calls) == 1


def test_a_file_url_is_a_remote_cache_too(tmp_path, capsys):
    remote = {"url": (tmp_path / "share").as_uri()}
    calls = []
    build(tmp_path / "ci", calls, remote)
    assert len(list((tmp_path / "share" / "export").glob("*.tar"))) == 1
    assert not list((tmp_path / "share" / ".incoming").iterdir())
    build(tmp_path / "laptop", calls, remote)
    assert len(calls) == 1 and "cache hit (remote)" in capsys.readouterr().out


def test_a_server_stopping_mid_sweep_fails_the_variants_after_it_and_keeps_the_rest(tmp_path, s3):
    """A sweep whose variants share the remote cache (a stand-in build: one cached step
    per variant, no doit): the server stops after the first variant. The others fail at
    their cache read with the cache's message, not a hang or a traceback; the first
    keeps its output, its row and its local cache entry."""
    from kokoro_build.scale.executors import InProcess
    from kokoro_build.scale.sweep import run_sweep
    from tests.scale.test_sweep import GRID, write
    endpoint, client, server = s3
    remote = {"url": URL, "endpoint_url": endpoint}
    calls, outputs = [], {}

    def build_variant(job):
        machine = tmp_path / "shared"  # one box: one local cache, each variant its own output
        target = tmp_path / "out" / job.name / "stage.traced.pt"
        run_cached(str(machine / "cache"), "export", {"variant": job.name}, [],
                   [str(target), str(target.parent / "stage.digest.json")],
                   make_step(calls, job.name)(target), remote=remote)
        outputs[job.name] = target
        if len(outputs) == 1:
            server.stop()
        return {"status": "ok", "seconds": 1.0, "mb": 1.0}

    lines = []
    rows, folder = run_sweep(write(tmp_path, GRID), tmp_path / "out", InProcess(), build=build_variant,
                             log=lines.append)
    first, *rest = rows
    assert first["status"] == "ok" and outputs[first["name"]].read_text() == first["name"]
    assert rest and all(r["status"] == "failed" for r in rest)
    assert all("remote cache: could not" in r["error"] and "Is the server up" in r["error"] for r in rest)
    assert len(calls) == 1  # the others stopped at their cache read, before building
    table = (folder / "results.md").read_text()
    assert f"| {first['label']}" in table and "## Failed variants" in table and "Is the server up" in table
    # the first variant's step stays in the local cache: rebuilt with the server down, it is a local hit
    outputs[first["name"]].unlink()
    build_variant(SimpleNamespace(name=first["name"]))
    assert outputs[first["name"]].read_text() == first["name"] and len(calls) == 1
