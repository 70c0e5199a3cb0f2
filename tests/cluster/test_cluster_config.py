"""ray_cluster.yaml: valid for Ray's autoscaler, and closed to the internet except SSH."""
import copy
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from cluster.connect import IDLE_WORKER_KEEP, IDLE_WORKER_KEEP_MS

REPO = Path(__file__).resolve().parents[2]
RAY_PORTS = (6379, 8265, 10001, 8076)


@pytest.fixture
def cluster():
    return yaml.safe_load((REPO / "ray_cluster.yaml").read_text())


def _validate(config):
    validate_config(prepare_config(copy.deepcopy(config)))


def test_ray_accepts_the_cluster_config(cluster):
    _validate(cluster)
    types = cluster["available_node_types"]
    assert types[cluster["head_node_type"]]["resources"]["GPU"] == 0
    assert sorted(t["resources"].get("GPU", 0) for t in types.values()) == [0, 4, 8]
    assert all(t.get("max_workers", 0) >= t.get("min_workers", 0) for t in types.values())


def test_ray_refuses_a_broken_variant(cluster):
    broken = copy.deepcopy(cluster)
    broken["available_node_types"]["worker.gpu4"]["unknown_field"] = 1
    with pytest.raises(jsonschema.ValidationError):
        _validate(broken)


def test_no_inbound_rule_opens_ray_ports_to_the_internet(cluster):
    for rule in cluster["provider"]["security_group"]["IpPermissions"]:
        opened = range(rule.get("FromPort", 0), rule.get("ToPort", 65535) + 1)
        public = any(r.get("CidrIp") == "0.0.0.0/0" for r in rule.get("IpRanges", []))
        assert not (public and any(port in opened for port in RAY_PORTS)), rule


def test_every_node_starts_ray_with_token_auth_and_a_loopback_dashboard(cluster):
    head = " ".join(cluster["head_start_ray_commands"])
    workers = " ".join(cluster["worker_start_ray_commands"])
    assert "RAY_AUTH_MODE=token" in head and "RAY_AUTH_MODE=token" in workers
    assert "--dashboard-host=127.0.0.1" in head and "0.0.0.0" not in head
    assert "~/.ray/auth_token" in cluster["file_mounts"]


def test_every_node_keeps_its_idle_workers_as_a_local_instance_does(cluster):
    for commands in (cluster["head_start_ray_commands"], cluster["worker_start_ray_commands"]):
        assert f"{IDLE_WORKER_KEEP}={IDLE_WORKER_KEEP_MS}" in " ".join(commands)


def test_nodes_install_the_pinned_requirements(cluster):
    assert any("requirements.txt" in command for command in cluster["setup_commands"])
    assert cluster["file_mounts"]["~/vision-train"] == "."
