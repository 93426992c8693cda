"""Benchmark: a second machine's build from a warm remote step cache against a cold
build, through a real S3 server on loopback (moto's server mode).

1. cold: a fresh folder, an empty local cache and an empty bucket; the build uploads
   every cached step;
2. second machine: another fresh folder with an empty local cache, the same pipeline
   file, the bucket from 1.

Both build `--tasks` (default: everything). Prints one JSON line: both wall times, the
ratio, the counts of remote hits and uploads, and whether the packages' digests match.

    .venv/bin/python benchmarks/remote_cache.py --config PIPELINE [--tasks manifest ...]

The config must not have a `cache:` block: this script adds one. Run nothing heavy beside it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.scale.s3_server import BUCKET  # noqa: E402


def build(folder: Path, text: str, tasks: list[str], env: dict) -> dict:
    folder.mkdir(parents=True)
    (folder / "pipeline.yaml").write_text(text)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "doit", "-f", str(ROOT / "dodo.py"),
                             f"config={folder / 'pipeline.yaml'}", *tasks], cwd=ROOT,
                            capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(result.stdout[-3000:] + result.stderr[-3000:])
    digests = {p.relative_to(folder).as_posix(): json.loads(p.read_text()).get("sha256")
               for p in sorted(folder.rglob("*.digest.json")) if ".cache" not in p.parts}
    return {"seconds": round(seconds, 1), "remote_hits": result.stdout.count("cache hit (remote):"),
            "uploads": result.stdout.count("cache upload:"), "digests": digests}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--tasks", nargs="*", default=[])
    args = parser.parse_args()
    import boto3
    import requests
    from moto.server import ThreadedMotoServer

    from tests.scale.s3_server import free_port
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}
    try:
        requests.post(f"{endpoint}/moto-api/reset", timeout=10)
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench", aws_secret_access_key="bench",
                     region_name="us-east-1").create_bucket(Bucket=BUCKET)
        source = Path(args.config).resolve()
        text = source.read_text().replace("model:\n", f"cache: {{url: 's3://{BUCKET}/bench'}}\nmodel:\n", 1)
        with tempfile.TemporaryDirectory(prefix="remote-cache-") as scratch:
            cold = build(Path(scratch) / "cold", text, args.tasks, env)
            second = build(Path(scratch) / "second", text, args.tasks, env)
    finally:
        server.stop()
    print(json.dumps({
        "benchmark": "remote_cache", "config": str(args.config), "tasks": args.tasks or ["(default)"],
        "machine": f"{platform.machine()} {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"),
        "cold_seconds": cold["seconds"], "second_machine_seconds": second["seconds"],
        "ratio": round(second["seconds"] / cold["seconds"], 3),
        "cold_uploads": cold["uploads"], "second_remote_hits": second["remote_hits"],
        "second_uploads": second["uploads"], "same_digests": cold["digests"] == second["digests"]}))


if __name__ == "__main__":
    main()
