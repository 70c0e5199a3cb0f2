"""Submission as users do it: a head with token authentication and the autoscaler of cluster/local.yaml, a job through
the job API that needs more than the head has, and gets a node from the autoscaler."""
import re
import secrets
import shlex
import sys
import time
import urllib.error
import urllib.request
import json
from pathlib import Path

import pytest
import yaml
from ray._private.authentication_test_utils import reset_auth_token_state
from ray.job_submission import JobStatus, JobSubmissionClient

from cluster.connect import SHIPPING_EXCLUDES
from tests.conftest import tiny_overrides
from tests.ray_head import free_port, ray_head

REPO = Path(__file__).resolve().parents[2]
TOKEN = secrets.token_hex(32)
HEAD_ENV = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN, "RAY_metrics_report_interval_ms": "1000"}


@pytest.fixture(scope="module")
def token_head(tmp_path_factory):
    """One CPU, and Ray's fake multi-node provider adding nodes on this machine (each another raylet)."""
    folder = tmp_path_factory.mktemp("head")
    gcs_port = free_port()
    config = yaml.safe_load((REPO / "cluster" / "local.yaml").read_text())
    config["provider"]["gcs_address"] = f"127.0.0.1:{gcs_port}"
    (folder / "local.yaml").write_text(yaml.safe_dump(config))
    with ray_head(num_cpus=1, env={"RAY_FAKE_CLUSTER": "1", **HEAD_ENV}, gcs_port=gcs_port, log=folder / "ray_start.log",
                  extra_args=[f"--autoscaling-config={folder / 'local.yaml'}"]) as head:
        yield head


@pytest.fixture
def client_env(monkeypatch):
    """Token mode in this process; Ray caches the auth settings, so they are reset on the way in and out."""

    def apply(**env):
        for name, value in env.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        reset_auth_token_state()

    yield apply
    monkeypatch.undo()
    reset_auth_token_state()


def _metrics_text(address: str) -> str:
    try:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
            return response.read().decode()
    except OSError:
        return ""


def _scrape(head) -> set[str]:
    """The lines every node's metrics agent exports now, found as Prometheus finds them: Ray's service discovery file."""
    try:
        (targets,) = json.loads((Path(head.temp_dir) / "prom_metrics_service_discovery.json").read_text())
    except (OSError, ValueError):
        return set()
    return {line for address in targets["targets"] for line in _metrics_text(address).splitlines()}


def test_a_submitted_job_larger_than_the_head_gets_a_node_from_the_autoscaler_and_exports_dashboard_metrics(
        token_head, tiny_dataset, tmp_path, client_env):
    client_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=TOKEN)
    client = JobSubmissionClient(token_head.dashboard_url)
    # 2 workers x 0.5 CPU + 1 CPU for Ray Data: two CPUs, where the head has one.
    overrides = tiny_overrides(tiny_dataset, tmp_path / "runs") + ["train.epochs=3", "scaling.use_gpu=false",
                                                                   "scaling.autoscale_timeout_s=240"]
    job = client.submit_job(
        entrypoint=" ".join([sys.executable, "-m", "jobs.train", *map(shlex.quote, overrides)]),
        runtime_env={"working_dir": str(REPO), "excludes": SHIPPING_EXCLUDES},
    )
    exported: set[str] = set()  # every line of every scrape: each rank's gauges reach the exporter on their own schedule
    deadline = time.monotonic() + 400
    while (status := client.get_job_status(job)) not in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}:
        assert time.monotonic() < deadline, "job did not finish in 400 s"
        exported |= _scrape(token_head)
        time.sleep(1)
    logs = client.get_job_logs(job)
    assert status == JobStatus.SUCCEEDED, logs[-3000:]
    assert "asked the autoscaler for" in logs and "the autoscaler added nodes" in logs, logs[-3000:]

    run_dir = Path(re.search(r"^run directory: (.+)$", logs, re.M).group(1))
    assert run_dir.parent == tmp_path / "runs"
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    assert json.loads((run_dir / "env.json").read_text())["ray_cluster"]["CPU"] >= 2

    run_tag = f'run="{run_dir.name}"'
    for name in ("samples_per_second", "step_seconds", "data_wait_share", "loss", "learning_rate"):
        lines = [line for line in exported if line.startswith(f"ray_train_{name}{{") and run_tag in line]
        assert {re.search(r'rank="(\d)"', line).group(1) for line in lines} == {"0", "1"}, name
    loss = [line for line in exported if line.startswith("ray_train_loss{")][0]
    assert float(loss.rsplit(" ", 1)[1]) > 0


@pytest.mark.parametrize("header", [None, "Bearer " + "0" * 64])
def test_job_api_refuses_a_submission_without_the_token(token_head, header):
    request = urllib.request.Request(
        f"{token_head.dashboard_url}/api/jobs/", method="POST",
        data=json.dumps({"entrypoint": "echo should-not-run"}).encode(), headers={"Content-Type": "application/json"},
    )
    if header:
        request.add_header("Authorization", header)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code in (401, 403)


def test_job_client_without_token_is_refused(token_head, client_env):
    client_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=None, RAY_AUTH_TOKEN_PATH="/nonexistent/auth_token", HOME="/nonexistent")
    with pytest.raises(Exception, match="(?i)token"):
        JobSubmissionClient(token_head.dashboard_url).submit_job(entrypoint="echo should-not-run")
