"""The few facts of an environment that decide whether a run trains as before, and how two environments differ.

"Package versions matter": one pair of torch and PyTorch3D trains stably, another does not. The
fingerprint is read without importing torch (a Ray task on every node type reads it in well under a
second), and an env.json yields the same fields, so runs recorded before this module still compare.
"""
from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

FIELDS = ("python", "torch", "cuda", "nvidia_driver", "pytorch3d", "ray", "deepspeed", "numpy", "gpu")
DRIVER = "driver"  # where jobs.train runs; the node types are named by their resources (node_type)
PACKAGES = {"torch": "torch", "pytorch3d": "easypytorch3d", "ray": "ray", "deepspeed": "deepspeed", "numpy": "numpy"}

Fingerprint = dict[str, Any]


def current() -> Fingerprint:
    """This process's environment."""
    gpus, driver = nvidia_gpus()
    return {"python": sys.version.split()[0], **{field: package_version(name) for field, name in PACKAGES.items()},
            "cuda": torch_cuda(), "nvidia_driver": driver, "gpu": ", ".join(sorted(set(gpus))) or None}


def of_env(env: dict[str, Any]) -> dict[str, Fingerprint]:
    """Each place of a run's env.json ("driver", and the node types it recorded) with its fingerprint."""
    packages = env.get("key_packages") or {}
    driver = {"python": env.get("python"), **{field: packages.get(name) for field, name in PACKAGES.items()},
              "cuda": env.get("torch_cuda"), "nvidia_driver": env.get("nvidia_driver"),
              "gpu": ", ".join(sorted(set(env.get("gpus") or []))) or None}
    return {DRIVER: driver, **(env.get("nodes") or {})}


def differences(now: dict[str, Fingerprint], before: dict[str, Fingerprint]) -> list[tuple[str, str, Any, Any]]:
    """(place, field, before, now) for every field that changed, at the places both know."""
    return [(place, field, before[place].get(field), now[place].get(field))
            for place in now if place in before for field in FIELDS
            if before[place].get(field) != now[place].get(field)]


def difference_table(now: dict[str, Fingerprint], compared: list[tuple[str, dict[str, Fingerprint]]]) -> list[str]:
    """One aligned table of every field that differs from any compared environment (title, places); [] when none does."""
    changed = {(place, field) for _, before in compared for place, field, _, _ in differences(now, before)}
    if not changed:
        return []
    places = list(now)
    ordered = sorted(changed, key=lambda key: (places.index(key[0]), FIELDS.index(key[1])))
    table = [["where", "what", "now", *(title for title, _ in compared)]]
    for place, field in ordered:
        table.append([place, field, _shown(now[place].get(field)),
                      *(_shown(before[place].get(field)) if place in before else "-" for _, before in compared)])
    widths = [max(len(row[column]) for row in table) for column in range(len(table[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in table]


def _shown(value: Any) -> str:
    return "none" if value is None else str(value)


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def node_type(resources: dict[str, float]) -> str:
    """A node's type as its resources say it: '8 CPU, 1 GPU (A10G)'."""
    accelerators = sorted(key.split(":", 1)[1] for key in resources if key.startswith("accelerator_type:"))
    shown = f"{resources.get('CPU', 0):g} CPU"
    if resources.get("GPU"):
        shown += f", {resources['GPU']:g} GPU" + (f" ({', '.join(accelerators)})" if accelerators else "")
    return shown


def torch_cuda() -> str | None:
    """The CUDA torch was built for, read from torch/version.py: importing torch costs seconds."""
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        return None
    version_file = Path(spec.origin).parent / "version.py"
    found = re.search(r"^cuda\b[^=]*=\s*['\"]([^'\"]+)['\"]", version_file.read_text(), re.MULTILINE) if version_file.is_file() else None
    return found.group(1) if found else None


def nvidia_gpus() -> tuple[list[str], str | None]:
    """(the GPU models, the driver version), from nvidia-smi; none without it."""
    if shutil.which("nvidia-smi") is None:
        return [], None
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return [], None
    rows = [line.split(",") for line in done.stdout.splitlines() if "," in line] if done.returncode == 0 else []
    return [name.strip() for name, _ in rows], rows[0][1].strip() if rows else None
