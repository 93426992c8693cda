"""A real S3-compatible server on loopback for the remote-cache tests: moto's server
mode (its HTTP API, spoken to by s3fs/aiobotocore as to AWS), on a free port."""
from __future__ import annotations

import socket
from contextlib import contextmanager

BUCKET = "kokoro-cache"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def s3_server(monkeypatch):
    """Yields (endpoint_url, boto3 client); the usual AWS environment points at it."""
    import boto3
    from moto.server import ThreadedMotoServer
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(name, value)
    # moto's backends are global to the process: start each test from an empty server
    import requests
    requests.post(f"{endpoint}/moto-api/reset", timeout=10).raise_for_status()
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=BUCKET)
    try:
        yield endpoint, client, server
    finally:
        server.stop()


def final_keys(client, prefix: str = "") -> list[str]:
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in listed if "/.incoming/" not in f"/{o['Key']}")
