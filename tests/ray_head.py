"""A Ray head started as its own process group, on loopback and free ports, stopped by its PID.

`ray stop` would stop every Ray of the user on the machine; this stops only what it started.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cluster.connect import IDLE_WORKER_KEEP, IDLE_WORKER_KEEP_MS

RAY = str(Path(sys.executable).with_name("ray"))
NODE_ENV = {IDLE_WORKER_KEEP: str(IDLE_WORKER_KEEP_MS)}  # as ray_cluster.yaml starts its nodes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Head:
    pid: int
    gcs_address: str
    dashboard_url: str
    temp_dir: str


@contextmanager
def ray_head(num_cpus: int, env: dict[str, str], extra_args: list[str] = (), log: Path | None = None, gcs_port: int | None = None):
    ports = {name: free_port() for name in ("gcs", "dashboard", "metrics", "client", "agent")}
    ports["gcs"] = gcs_port or ports["gcs"]
    temp_dir = tempfile.mkdtemp(prefix="rayh")  # short: Ray's socket paths must fit in 107 bytes
    command = [RAY, "start", "--head", "--block", f"--num-cpus={num_cpus}", "--node-ip-address=127.0.0.1",
               f"--port={ports['gcs']}", "--dashboard-host=127.0.0.1", f"--dashboard-port={ports['dashboard']}",
               f"--metrics-export-port={ports['metrics']}", f"--ray-client-server-port={ports['client']}",
               f"--dashboard-agent-listen-port={ports['agent']}", f"--temp-dir={temp_dir}", *extra_args]
    output = open(log or os.devnull, "w")
    own = {"RAY_ADDRESS": f"127.0.0.1:{ports['gcs']}"}  # its workers find their own Ray among others (cluster.connect)
    process = subprocess.Popen(command, env={**os.environ, **NODE_ENV, **env, **own}, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    head = Head(process.pid, f"127.0.0.1:{ports['gcs']}", f"http://127.0.0.1:{ports['dashboard']}", temp_dir)
    try:
        _wait_for_port(ports["dashboard"], process, timeout=90)
        yield head
    finally:
        _stop_group(process)
        output.close()


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ray start exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"Ray head did not open port {port} within {timeout} s")


def _stop_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=5)  # `ray start --block` can sit on SIGTERM for long; the group is killed next
    except subprocess.TimeoutExpired:
        pass
    except ProcessLookupError:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)  # drains leftovers: raylets and workers of the group
    except ProcessLookupError:
        pass
    process.wait(timeout=10)
