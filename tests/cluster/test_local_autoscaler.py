"""cluster/local.yaml: the autoscaler on one machine adds a node when a job needs more than the head has."""
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import tiny_overrides
from tests.ray_head import free_port, ray_head

REPO = Path(__file__).resolve().parents[2]


def test_job_larger_than_the_head_gets_a_node_from_the_autoscaler(tiny_dataset, tmp_path):
    gcs_port = free_port()
    config = yaml.safe_load((REPO / "cluster" / "local.yaml").read_text())
    config["provider"]["gcs_address"] = f"127.0.0.1:{gcs_port}"
    autoscaling_config = tmp_path / "local.yaml"
    autoscaling_config.write_text(yaml.safe_dump(config))
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}

    with ray_head(num_cpus=1, env={"RAY_FAKE_CLUSTER": "1", **auth}, gcs_port=gcs_port, log=tmp_path / "head.log",
                  extra_args=[f"--autoscaling-config={autoscaling_config}"]) as head:
        # 2 workers x 0.5 CPU + 1 CPU for Ray Data: two CPUs, where the head has one.
        command = [sys.executable, "-m", "jobs.train", *tiny_overrides(tiny_dataset, tmp_path / "runs"),
                   "scaling.use_gpu=false", "scaling.autoscale_timeout_s=240"]
        done = subprocess.run(command, cwd=REPO, env={**os.environ, **auth, "RAY_ADDRESS": head.gcs_address},
                              capture_output=True, text=True, timeout=540)

    assert done.returncode == 0, done.stderr[-3000:]
    assert "asked the autoscaler for" in done.stderr and "the autoscaler added nodes" in done.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "env.json").read_text())["ray_cluster"]["CPU"] >= 2
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
