"""A real S3 endpoint for tests: moto_server on 127.0.0.1 and a free port, with a bucket, stopped by its PID.

s3fs, pyarrow and the Ray workers talk to it over HTTP exactly as they would to AWS or MinIO. The
credentials are put in the environment (where the AWS tools look) before any Ray starts, so that
Ray's workers inherit them as they would on a cluster; they are distinctive, so that a test can
search files and logs for them.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ray_fixtures import SHARED
from tests.ray_head import free_port
from tests.tcp_proxy import TcpProxy

MOTO_SERVER = str(Path(sys.executable).with_name("moto_server"))
SECRET = "moto-secret-never-in-a-file-7f3a"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "moto-key-id-9c1e", "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1"}
BUCKET = "vision-data"


@dataclass
class S3Endpoint:
    url: str
    bucket: str


@contextmanager
def moto_s3(log: Path):
    port = free_port()
    saved = {name: os.environ.get(name) for name in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    with open(log, "w") as handle:
        server = subprocess.Popen([MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)], stdout=handle, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, server, log)
        import s3fs

        s3fs.S3FileSystem(client_kwargs={"endpoint_url": url}, skip_instance_cache=True).mkdir(BUCKET)
        yield S3Endpoint(url, BUCKET)
    finally:
        server.terminate()
        server.wait(timeout=30)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with moto_s3(tmp_path_factory.mktemp("moto") / "moto.log") as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def s3_dataset(s3):
    """TINY_DATA written to the endpoint."""
    from data_pipeline.sources.synthetic import generate
    from data_pipeline.storage.datastore import DataStore
    from tests.conftest import TINY_DATA

    store = DataStore.at(f"s3://{s3.bucket}/tiny", s3.url)
    generate(store, TINY_DATA)
    return store


@pytest.fixture
def s3_proxy(s3):
    """The same endpoint behind a TcpProxy (tests.tcp_proxy), to take it off the network or slow it down."""
    proxy = TcpProxy(int(s3.url.rsplit(":", 1)[1]))
    proxy.up()
    yield proxy
    proxy.down()


@pytest.fixture(scope="module")
def ray_with_s3_credentials(s3):
    """Started after the credentials are in the environment, so that the workers inherit them (and keep them after
    the module: the credentials are the same in every module)."""
    return SHARED.use("ray_with_s3_credentials", include_dashboard=False)


def _wait_until_up(url: str, server: subprocess.Popen, log: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"moto_server exited with {server.returncode}: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"moto_server did not answer on {url} within {timeout_s:g} s")
