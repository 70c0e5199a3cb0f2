import subprocess
import sys
from pathlib import Path

import pytest

from cluster.resources import PlanError, make_plan, shortfall
from core.config.sections import ScalingConfig

REPO = Path(__file__).resolve().parents[2]
TWO_CPUS = [{"CPU": 2.0, "memory": 1e10}]


def test_fractional_workers_leave_a_cpu_for_data():
    plan = make_plan(ScalingConfig(num_workers=2, cpus_per_worker=0.5, data_cpus=1.0), TWO_CPUS)
    assert plan.resources_per_worker() == {"CPU": 0.5}
    assert plan.torch_threads == 1 and not plan.use_gpu


def test_workers_taking_every_cpu_would_starve_ray_data():
    with pytest.raises(PlanError, match="Ray Data needs 1 .*wait forever"):
        make_plan(ScalingConfig(num_workers=2, cpus_per_worker=1.0, data_cpus=1.0), TWO_CPUS)


def test_more_workers_than_fit_names_what_fits():
    with pytest.raises(PlanError, match="only 2 worker\\(s\\) fit"):
        make_plan(ScalingConfig(num_workers=3, cpus_per_worker=1.0), [{"CPU": 1.0}, {"CPU": 1.0}, {"CPU": 0.5}])


def test_a_plan_that_lost_a_node_names_the_missing_resources():
    nodes = [{"CPU": 8.0, "GPU": 4.0}, {"CPU": 8.0, "GPU": 4.0}]
    plan = make_plan(ScalingConfig(num_workers=8, cpus_per_worker=1.0, data_cpus=2.0), nodes)
    assert shortfall(plan, nodes) is None
    assert shortfall(plan, nodes[:1]).startswith("missing 2 CPU, 4 GPU (the plan needs 10 CPU, 8 GPU, the 1 alive node(s) have 8 CPU, 4 GPU)")
    # Enough CPUs in all, but no node with room for a 1.5-CPU worker:
    fragmented = shortfall(make_plan(ScalingConfig(num_workers=1, cpus_per_worker=1.5, data_cpus=0.5), TWO_CPUS), [{"CPU": 1.0}] * 3)
    assert "in total but not on one node" in fragmented and "only 0 worker(s) fit" in fragmented


def test_gpus_are_used_when_the_cluster_has_them_and_checked_per_node():
    nodes = [{"CPU": 8.0, "GPU": 4.0}, {"CPU": 8.0, "GPU": 4.0}]
    plan = make_plan(ScalingConfig(num_workers=8, cpus_per_worker=1.0), nodes)
    assert plan.use_gpu and plan.resources_per_worker() == {"CPU": 1.0, "GPU": 1.0}
    with pytest.raises(PlanError, match="GPU"):
        make_plan(ScalingConfig(num_workers=9, cpus_per_worker=1.0), nodes)
    with pytest.raises(PlanError, match="only 0 worker"):
        make_plan(ScalingConfig(num_workers=1, use_gpu=True), TWO_CPUS)


def test_torch_threads_follow_the_cpu_share():
    assert make_plan(ScalingConfig(num_workers=1, cpus_per_worker=2.0), [{"CPU": 4.0}]).torch_threads == 2
    assert make_plan(ScalingConfig(num_workers=1, cpus_per_worker=1.0, torch_threads=3), TWO_CPUS).torch_threads == 3


def test_train_job_refuses_an_impossible_plan_quickly_instead_of_hanging(tmp_path):
    # A subprocess with a time limit: if the check were missing, this run would hang, and the limit turns that into a failure.
    command = [sys.executable, "-m", "jobs.train", "ray.num_cpus=2", "ray.include_dashboard=false",
               "scaling.num_workers=2", "scaling.cpus_per_worker=1", f"data.uri={tmp_path / 'data'}", f"output.root={tmp_path / 'runs'}"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=180)
    assert done.returncode == 2, done.stderr
    assert "Ray Data needs 1" in done.stderr and "scaling.cpus_per_worker" in done.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "data").exists()


def test_workers_are_packed_so_a_whole_cpu_stays_free_for_data():
    plan = make_plan(ScalingConfig(num_workers=2, cpus_per_worker=0.5, data_cpus=1.0), [{"CPU": 1.0}, {"CPU": 1.0}])
    assert plan.num_workers == 2
