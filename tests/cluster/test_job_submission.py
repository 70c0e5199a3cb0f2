"""Submission as users do it: a head with token authentication, a job through the job API."""
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
from ray._private.authentication_test_utils import reset_auth_token_state
from ray.job_submission import JobStatus, JobSubmissionClient

from cluster.connect import SHIPPING_EXCLUDES
from tests.conftest import tiny_overrides
from tests.ray_head import ray_head

REPO = Path(__file__).resolve().parents[2]
TOKEN = secrets.token_hex(32)
HEAD_ENV = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN, "RAY_metrics_report_interval_ms": "1000"}


@pytest.fixture(scope="module")
def token_head(tmp_path_factory):
    with ray_head(num_cpus=2, env=HEAD_ENV, log=tmp_path_factory.mktemp("head") / "ray_start.log") as head:
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


def _metrics_text(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return response.read().decode()
    except OSError:
        return ""


def test_submitted_training_job_succeeds_and_exports_dashboard_metrics(token_head, tiny_dataset, tmp_path, client_env):
    client_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=TOKEN)
    client = JobSubmissionClient(token_head.dashboard_url)
    overrides = tiny_overrides(tiny_dataset, tmp_path / "runs") + ["train.epochs=3"]
    job = client.submit_job(
        entrypoint=" ".join([sys.executable, "-m", "jobs.train", *map(shlex.quote, overrides)]),
        runtime_env={"working_dir": str(REPO), "excludes": SHIPPING_EXCLUDES},
    )
    exported: set[str] = set()  # every line of every scrape: each rank's gauges reach the exporter on their own schedule
    deadline = time.monotonic() + 300
    while (status := client.get_job_status(job)) not in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}:
        assert time.monotonic() < deadline, "job did not finish in 300 s"
        exported |= set(_metrics_text(token_head.metrics_port).splitlines())
        time.sleep(1)
    logs = client.get_job_logs(job)
    assert status == JobStatus.SUCCEEDED, logs[-3000:]

    run_dir = Path(re.search(r"^run directory: (.+)$", logs, re.M).group(1))
    assert run_dir.parent == tmp_path / "runs"
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"

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
