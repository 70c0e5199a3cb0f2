"""The runs under a folder, read back from their run directories: table rows, ablation groups, diffs."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.tasks.catalog import DEFAULT_TASK, task_config
from core.tasks.registry import TASK_CONFIGS
from core.runs.run_dir import METRICS, SUMMARY, read_metrics

# Keys that label a run rather than change what it trains: ignored when grouping an ablation.
LABEL_KEYS = ("name", "output.")


@dataclass
class Run:
    folder: Path
    config: dict[str, Any]
    summary: dict[str, Any]
    records: list[dict[str, Any]]
    env: dict[str, Any]

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def flat_config(self) -> dict[str, Any]:
        return flatten(self.config)


def load_runs(root: Path) -> list[Run]:
    """Every run directory under root (any depth), oldest name first; a run without summary.json is still running or was killed."""
    runs = []
    for config_file in sorted(root.rglob("config.yaml")):
        folder = config_file.parent
        if not (folder / METRICS).exists() and not (folder / SUMMARY).exists():
            continue
        summary_file = folder / SUMMARY
        summary = json.loads(summary_file.read_text()) if summary_file.exists() else {"status": "no summary (running or killed)"}
        env_file = folder / "env.json"
        env = json.loads(env_file.read_text()) if env_file.exists() else {}
        runs.append(Run(folder, yaml.safe_load(config_file.read_text()), summary, read_metrics(folder), env))
    return sorted(runs, key=lambda run: run.name)


def row(run: Run) -> dict[str, Any]:
    config, summary = run.config, run.summary
    monitor = summary.get("monitor", "val/miou")
    best = summary.get("best") or {}
    last = summary.get("last") or {}
    weights = _with_distillation(config, config["task"]["loss"]["weights"])
    data = summary.get("data", {})
    return {
        "run": run.name,
        "task": config["task"]["name"],
        "data": f"{Path(config['data']['uri']).name} ({data.get('train', '?')} train / {data.get('val', '?')} val)",
        "stages": len(config.get("stages", [])) or 1,
        "losses": ", ".join(f"{name} x{weight:g}" for name, weight in weights.items() if weight > 0),
        "model": model_label(config["task"]),
        **task_columns(config["task"]),
        "teacher": Path(summary["teacher"]).name if summary.get("teacher") else "",
        "batch x workers": f"{config['train']['batch_size']} x {config['scaling']['num_workers']}",
        "lr": config["train"]["optimizer"]["lr"],
        "epochs": f"{summary.get('epochs_completed', len(run.records))}/{config['train']['epochs']}",
        f"best {monitor}": best.get(monitor),
        f"last {monitor}": last.get(monitor),
        "status": summary.get("status"),
        "wall time (s)": round(summary["wall_time_s"]) if "wall_time_s" in summary else None,
        "restarts": summary.get("restarts_from_checkpoint"),
    }


def ablation_groups(runs: list[Run]) -> list[list[Run]]:
    """Sets of two or more runs whose configs differ only in loss weights, the stages' included (and labels)."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        key = {k: v for k, v in flatten(_without_loss_weights(run.config)).items() if not k.startswith(LABEL_KEYS)}
        groups.setdefault(json.dumps(key, sort_keys=True, default=str), []).append(run)
    return [group for group in groups.values() if len({json.dumps(stage_loss_weights(r.config), sort_keys=True) for r in group}) > 1]


def stage_loss_weights(config: dict[str, Any]) -> list[dict[str, float]]:
    """The loss weights each stage trains with (a stage's loss_weights replace the task's), or the task's alone."""
    base = config["task"]["loss"]["weights"]
    return [_with_distillation(config, stage.get("loss_weights") or base) for stage in config.get("stages") or []] \
        or [_with_distillation(config, base)]


def losses_on(config: dict[str, Any]) -> dict[str, bool]:
    """Every loss the run names, in order, and whether it was on (weight > 0) in any stage."""
    on: dict[str, bool] = {}
    for weights in stage_loss_weights(config):
        for name, weight in weights.items():
            on[name] = on.get(name, False) or weight > 0
    return on


def ablation_table(group: list[Run]) -> tuple[list[dict[str, Any]], set[tuple[int, str]]]:
    """The team's ablation table: a row per run, a V column per loss that was on, the monitored metric beside
    and, for a task that states each metric's direction (summary.json's metric_modes), its other metrics at the
    monitor's best epoch; and the (row, column) cells that are best in their column, by each metric's direction."""
    names = list(dict.fromkeys(name for run in group for name in losses_on(run.config)))
    modes = _column_modes(group)
    rows = []
    for run in group:
        on = losses_on(run.config)
        metrics = {k: v for k, v in row(run).items() if k.startswith(("best ", "last "))}
        at_best = ((run.summary.get("best") or {}).get("metrics") or {})
        rows.append({"run": run.name, **{name: "V" if on.get(name) else "" for name in names}, **metrics,
                     **{column: at_best.get(column.removesuffix(AT_BEST)) for column in modes if column.endswith(AT_BEST)}})
    empty = [column for column in modes if not any(isinstance(r.get(column), (int, float)) for r in rows)]
    rows = [{k: v for k, v in r.items() if k not in empty or not k.endswith(AT_BEST)} for r in rows]  # e.g. an absent LPIPS
    best = set()
    for column, mode in modes.items():
        scored = [r[column] for r in rows if isinstance(r.get(column), (int, float))]
        if scored:
            top = (max if mode == "max" else min)(scored)
            best |= {(index, column) for index, r in enumerate(rows) if r.get(column) == top}
    return rows, best


AT_BEST = " at best"


def _column_modes(group: list[Run]) -> dict[str, str]:
    """Each scored column of the ablation table and which way it improves (one task in a group: one set of directions)."""
    summary = group[0].summary
    monitor, mode = summary.get("monitor", "val/miou"), summary.get("monitor_mode", "max")
    others = {f"{metric}{AT_BEST}": direction for metric, direction in (summary.get("metric_modes") or {}).items() if metric != monitor}
    return {f"best {monitor}": mode, f"last {monitor}": mode, **others}


def _with_distillation(config: dict[str, Any], weights: dict[str, float] | None) -> dict[str, float]:
    weights = dict(weights or {})
    distill = config["task"].get("distill")
    if distill:  # the KD terms' weights live in their own section
        weights.update(kd_pixel=distill["weights"]["pixel"], kd_pair=distill["weights"]["pair"])
    return weights


def _without_loss_weights(config: dict[str, Any]) -> dict[str, Any]:
    stripped = json.loads(json.dumps(config, default=str))
    stripped["task"]["loss"]["weights"] = None
    for stage in stripped.get("stages") or []:
        stage["loss_weights"] = None
    return stripped


def diff(a: Run, b: Run) -> tuple[list[tuple[str, Any, Any]], list[tuple[str, Any, Any]]]:
    """(config keys that differ, packages whose versions differ), each as (name, value in a, value in b)."""
    return _differences(a.flat_config, b.flat_config), _differences(_packages(a.env), _packages(b.env))


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _packages(env: dict[str, Any]) -> dict[str, str]:
    pairs = (entry.split("==", 1) for entry in env.get("packages", []) if "==" in entry)
    versions = {name.lower(): version for name, version in pairs}
    versions["python"] = env.get("python")
    return versions


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    return [(key, a.get(key), b.get(key)) for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]


def model_label(task: dict[str, Any]) -> str:
    """The run's model label. A run written before each task had a section of its own holds every task's keys
    (and unset inputs); the keys of its own task are read from it."""
    try:
        return task_config(**task).model_label
    except ValueError:
        section = TASK_CONFIGS.get(task.get("name", DEFAULT_TASK))
        return section(**_known(section, task)).model_label


def task_columns(task: dict[str, Any]) -> dict[str, Any]:
    """The columns a task's section adds to the report (its `report_columns`, e.g. the implicit task's input variant and prior)."""
    try:
        return dict(getattr(task_config(**task), "report_columns", {}))
    except ValueError:  # a section this code no longer reads: its model label says what can be said
        return {}


def _known(section: Any, values: dict[str, Any]) -> dict[str, Any]:
    """The values a section has keys for, nested sections alike; unset ones left to their defaults."""
    known = {}
    for key, value in values.items():
        field = section.model_fields.get(key)
        if field is None or value is None:
            continue
        inner = field.annotation
        known[key] = _known(inner, value) if isinstance(value, dict) and hasattr(inner, "model_fields") else value
    return known
