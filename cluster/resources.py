"""The resource plan of a training run, checked against the cluster before anything is launched.

On a small cluster the classic failure is silent: Ray Train workers hold every CPU, Ray Data's
read and decode tasks wait for one forever, and training never starts. The plan therefore places
the workers node by node and then requires CPUs left over for data tasks, and says what to change
when they do not fit.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from core.config.sections import ScalingConfig


class PlanError(RuntimeError):
    """The requested resources cannot fit this cluster; the message says what to change."""


@dataclass(frozen=True)
class ResourcePlan:
    num_workers: int  # the workers that must fit: an elastic run's MIN
    cpus_per_worker: float
    gpus_per_worker: float
    data_cpus: float
    torch_threads: int
    max_workers: int | None = None  # an elastic run's MAX; None: a fixed size
    resize_check_s: float = 60.0

    @property
    def elastic(self) -> bool:
        return self.max_workers is not None

    @property
    def use_gpu(self) -> bool:
        return self.gpus_per_worker > 0

    @property
    def data_task_cpus(self) -> float:
        """CPUs asked for by each Ray Data read/decode task (a fraction where less than one is reserved)."""
        return min(1.0, self.data_cpus)

    @property
    def data_tasks_at_once(self) -> int:
        return max(1, int(self.data_cpus / self.data_task_cpus + 1e-9))

    def resources_per_worker(self) -> dict[str, float]:
        resources = {"CPU": self.cpus_per_worker}
        if self.use_gpu:
            resources["GPU"] = self.gpus_per_worker
        return resources


def make_plan(scaling: ScalingConfig, nodes: list[dict[str, float]], runs: int = 1, driver_cpus: float = 0.0) -> ResourcePlan:
    """nodes: the total resources of each alive node, as in ray.nodes()[i]["Resources"].

    runs > 1 checks that many copies of the plan at once (concurrent sweep trials), each with a
    driver of driver_cpus (the Tune trial that runs the TorchTrainer) and its own Ray Data share.
    """
    cluster_gpus = sum(node.get("GPU", 0.0) for node in nodes)
    use_gpu = scaling.use_gpu is True or (scaling.use_gpu == "auto" and cluster_gpus > 0)
    plan = ResourcePlan(
        num_workers=scaling.min_workers,
        max_workers=scaling.max_workers if scaling.elastic else None,
        resize_check_s=scaling.resize_check_s,
        cpus_per_worker=scaling.cpus_per_worker,
        gpus_per_worker=(scaling.gpus_per_worker or 1.0) if use_gpu else 0.0,
        data_cpus=scaling.data_cpus,
        torch_threads=scaling.torch_threads or max(1, round(scaling.cpus_per_worker)),
    )
    _check(plan, nodes, runs, driver_cpus)
    return plan


def growth(plan: ResourcePlan, nodes: list[dict[str, float]]) -> str | None:
    """An elastic plan: what its MAX workers need and whether these nodes hold them; None for a fixed size."""
    if not plan.elastic:
        return None
    largest = replace(plan, num_workers=plan.max_workers)
    missing = shortfall(largest, nodes)
    start = f"elastic: starts with {plan.num_workers} worker(s) and grows to {plan.max_workers}"
    if missing is None:
        return f"{start}; the cluster holds all {plan.max_workers} now"
    return f"{start} when the cluster has {_what(largest, 1, 0.0)} plus {plan.data_cpus:g} CPU for Ray Data: now {missing}"


def shortfall(plan: ResourcePlan, nodes: list[dict[str, float]]) -> str | None:
    """None when the plan fits these nodes; otherwise what is missing, to say why a run that lost nodes cannot go on."""
    try:
        _check(plan, nodes, runs=1, driver_cpus=0.0)
        return None
    except PlanError as err:
        need = {"CPU": plan.num_workers * plan.cpus_per_worker + plan.data_cpus, "GPU": plan.num_workers * plan.gpus_per_worker}
        have = {key: sum(node.get(key, 0.0) for node in nodes) for key in need}
        missing = {key: need[key] - have[key] for key in need if need[key] > have[key] + 1e-9}
        if not missing:
            return f"the {len(nodes)} alive node(s) have the resources in total but not on one node where needed: {err}"
        short = ", ".join(f"{amount:g} {key}" for key, amount in missing.items())
        return f"missing {short} (the plan needs {_fmt_totals(need)}, the {len(nodes)} alive node(s) have {_fmt_totals(have)}): {err}"


def _check(plan: ResourcePlan, nodes: list[dict[str, float]], runs: int, driver_cpus: float) -> None:
    free = [{"CPU": n.get("CPU", 0.0), "GPU": n.get("GPU", 0.0)} for n in nodes]
    bundles = ([{"CPU": driver_cpus}] if driver_cpus else []) + [plan.resources_per_worker()] * plan.num_workers
    for index, need in enumerate(bundles * runs):
        fitting = [n for n in free if all(n.get(k, 0.0) + 1e-9 >= v for k, v in need.items())]
        if not fitting:
            raise PlanError(_too_big(plan, nodes, runs, driver_cpus, placed=index))
        # Best fit, as Ray Train's PACK placement does: keep whole CPUs free for Ray Data's tasks.
        node = min(fitting, key=lambda n: n["CPU"])
        for key, value in need.items():
            node[key] -= value
    left = [n["CPU"] for n in free]
    if sum(left) + 1e-9 < runs * plan.data_cpus or max(left, default=0.0) + 1e-9 < plan.data_task_cpus:
        raise PlanError(
            f"after placing {_what(plan, runs, driver_cpus)}, the cluster has {_fmt(left)} CPUs left per node, "
            f"but Ray Data needs {plan.data_cpus:g} (scaling.data_cpus){' per run' if runs > 1 else ''} to read and decode, "
            f"or training would wait forever for data. Lower scaling.cpus_per_worker or scaling.num_workers"
            f"{' or the number of concurrent trials' if runs > 1 else ''}, or add CPUs to the cluster."
        )


def _what(plan: ResourcePlan, runs: int, driver_cpus: float) -> str:
    one = f"{plan.num_workers} training workers x {plan.cpus_per_worker:g} CPU"
    if plan.use_gpu:
        one += f" + {plan.gpus_per_worker:g} GPU"
    if runs == 1:
        return one
    return f"{runs} concurrent trials of ({one} + {driver_cpus:g} CPU for the trial)"


def _too_big(plan: ResourcePlan, nodes: list[dict[str, float]], runs: int, driver_cpus: float, placed: int) -> str:
    cpus = _fmt([n.get("CPU", 0.0) for n in nodes])
    gpus = _fmt([n.get("GPU", 0.0) for n in nodes])
    per_run = plan.num_workers + (1 if driver_cpus else 0)
    fitted = f"only {placed} worker(s) fit" if runs == 1 else f"only {placed // per_run} full trial(s) fit"
    return (
        f"the plan does not fit the cluster: it asks for {_what(plan, runs, driver_cpus)} (plus {plan.data_cpus:g} CPU "
        f"for Ray Data{' per trial' if runs > 1 else ''}), but {fitted} on nodes with CPUs {cpus} and GPUs {gpus}. "
        f"Lower scaling.num_workers or scaling.cpus_per_worker/gpus_per_worker"
        f"{', or the number of concurrent trials' if runs > 1 else ''}, or add nodes."
    )


def _fmt_totals(totals: dict[str, float]) -> str:
    return ", ".join(f"{amount:g} {key}" for key, amount in totals.items() if amount or key == "CPU")


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"
