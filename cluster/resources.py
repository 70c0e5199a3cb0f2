"""The resource plan of a training run, checked against the cluster before anything is launched.

On a small cluster the classic failure is silent: Ray Train workers hold every CPU, Ray Data's
read and decode tasks wait for one forever, and training never starts. The plan therefore places
the workers node by node and then requires CPUs left over for data tasks, and says what to change
when they do not fit.
"""
from __future__ import annotations

from dataclasses import dataclass

from core.config import ScalingConfig


class PlanError(RuntimeError):
    """The requested resources cannot fit this cluster; the message says what to change."""


@dataclass(frozen=True)
class ResourcePlan:
    num_workers: int
    cpus_per_worker: float
    gpus_per_worker: float
    data_cpus: float
    torch_threads: int

    @property
    def use_gpu(self) -> bool:
        return self.gpus_per_worker > 0

    @property
    def data_task_cpus(self) -> float:
        """CPUs asked for by each Ray Data read/decode task (a fraction where less than one is reserved)."""
        return min(1.0, self.data_cpus)

    def resources_per_worker(self) -> dict[str, float]:
        resources = {"CPU": self.cpus_per_worker}
        if self.use_gpu:
            resources["GPU"] = self.gpus_per_worker
        return resources


def make_plan(scaling: ScalingConfig, nodes: list[dict[str, float]]) -> ResourcePlan:
    """nodes: the total resources of each alive node, as in ray.nodes()[i]["Resources"]."""
    cluster_gpus = sum(node.get("GPU", 0.0) for node in nodes)
    use_gpu = scaling.use_gpu is True or (scaling.use_gpu == "auto" and cluster_gpus > 0)
    plan = ResourcePlan(
        num_workers=scaling.num_workers,
        cpus_per_worker=scaling.cpus_per_worker,
        gpus_per_worker=(scaling.gpus_per_worker or 1.0) if use_gpu else 0.0,
        data_cpus=scaling.data_cpus,
        torch_threads=scaling.torch_threads or max(1, round(scaling.cpus_per_worker)),
    )
    _check(plan, nodes)
    return plan


def _check(plan: ResourcePlan, nodes: list[dict[str, float]]) -> None:
    free = [{"CPU": n.get("CPU", 0.0), "GPU": n.get("GPU", 0.0)} for n in nodes]
    need = plan.resources_per_worker()
    for worker in range(plan.num_workers):
        fitting = [n for n in free if all(n.get(k, 0.0) + 1e-9 >= v for k, v in need.items())]
        if not fitting:
            raise PlanError(_too_big(plan, nodes, placed=worker))
        # Best fit, as Ray Train's PACK placement does: keep whole CPUs free for Ray Data's tasks.
        node = min(fitting, key=lambda n: n["CPU"])
        for key, value in need.items():
            node[key] -= value
    left = [n["CPU"] for n in free]
    if sum(left) + 1e-9 < plan.data_cpus or max(left, default=0.0) + 1e-9 < plan.data_task_cpus:
        raise PlanError(
            f"after placing {plan.num_workers} training workers x {plan.cpus_per_worker:g} CPU, the cluster has "
            f"{_fmt(left)} CPUs left per node, but Ray Data needs {plan.data_cpus:g} "
            f"(scaling.data_cpus) to read and decode, or training would wait forever for data. "
            f"Lower scaling.cpus_per_worker or scaling.num_workers, or add CPUs to the cluster."
        )


def _too_big(plan: ResourcePlan, nodes: list[dict[str, float]], placed: int) -> str:
    cpus = _fmt([n.get("CPU", 0.0) for n in nodes])
    gpus = _fmt([n.get("GPU", 0.0) for n in nodes])
    wanted = f"{plan.num_workers} workers x {plan.cpus_per_worker:g} CPU"
    if plan.use_gpu:
        wanted += f" + {plan.gpus_per_worker:g} GPU"
    return (
        f"the plan does not fit the cluster: it asks for {wanted} (plus {plan.data_cpus:g} CPU for Ray Data), "
        f"but only {placed} worker(s) fit on nodes with CPUs {cpus} and GPUs {gpus}. "
        f"Lower scaling.num_workers or scaling.cpus_per_worker/gpus_per_worker, or add nodes."
    )


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"
