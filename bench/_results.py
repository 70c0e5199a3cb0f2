"""bench/results/NAME.json: the machine, the package versions and the figures of one benchmark run."""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import psutil

from core.runs.fingerprint import package_version

RESULTS = Path(__file__).resolve().parent / "results"
_PACKAGES = ("ray", "torch", "deepspeed", "pyarrow")


def write(name: str, figures: dict[str, Any]) -> Path:
    path = RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    machine = {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1), "platform": platform.platform()}
    path.write_text(json.dumps({"machine": machine, "versions": {p: package_version(p) for p in _PACKAGES}, **figures},
                               indent=2) + "\n")
    print(f"written: {path}")
    return path
