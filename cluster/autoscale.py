"""Grow an autoscaling cluster until a resource plan fits, or say what is still missing."""
from __future__ import annotations

import sys
import time

from ray.autoscaler.sdk import request_resources

from cluster.connect import node_resources
from cluster.resources import PlanError, ResourcePlan, make_plan
from core.config.sections import ScalingConfig


def plan_when_it_fits(scaling: ScalingConfig, poll_s: float = 2.0) -> ResourcePlan:
    """The plan for this cluster; with scaling.autoscale_timeout_s > 0, first ask for nodes and wait."""
    try:
        return make_plan(scaling, node_resources())
    except PlanError:
        if scaling.autoscale_timeout_s <= 0:
            raise
    bundles = requested_bundles(scaling)
    request_resources(bundles=bundles)
    print(f"the plan does not fit the cluster yet: asked the autoscaler for {bundles}, "
          f"waiting up to {scaling.autoscale_timeout_s:g} s", file=sys.stderr, flush=True)
    deadline = time.monotonic() + scaling.autoscale_timeout_s
    while True:
        time.sleep(poll_s)
        try:
            plan = make_plan(scaling, node_resources())
        except PlanError as err:
            if time.monotonic() > deadline:
                release()
                raise PlanError(f"{err} (waited {scaling.autoscale_timeout_s:g} s for the autoscaler)") from None
            continue
        print(f"the autoscaler added nodes: the cluster now has {len(node_resources())} nodes", file=sys.stderr, flush=True)
        return plan


def requested_bundles(scaling: ScalingConfig) -> list[dict[str, float]]:
    worker = {"CPU": scaling.cpus_per_worker}
    if scaling.use_gpu is True:
        worker["GPU"] = scaling.gpus_per_worker or 1.0
    return [dict(worker) for _ in range(scaling.max_workers)] + [{"CPU": scaling.data_cpus}]


def release() -> None:
    """Withdraw the request, so the autoscaler may remove idle nodes again."""
    request_resources(bundles=[])
