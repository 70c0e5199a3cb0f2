"""The exact environment of a run: interpreter, packages, code version, devices.

With env.json and code.patch beside a run's outputs, the code and stack that produced it can be
rebuilt; `git` missing or the code outside a repository is recorded, not fatal.
"""
from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from core.runs.fingerprint import nvidia_gpus, package_version

KEY_PACKAGES = ("torch", "torchvision", "easypytorch3d", "ray", "deepspeed", "segmentation-models-pytorch", "timm",
                "pyarrow", "s3fs", "numpy", "pydantic", "tensorboard")


def describe(code_root: Path) -> dict[str, Any]:
    import torch

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "hostname": platform.node(),
        "key_packages": {name: package_version(name) for name in KEY_PACKAGES},
        "packages": sorted(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions() if d.metadata["Name"]),
        "git": _git_state(code_root),
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "nvidia_driver": nvidia_gpus()[1],
    }


def uncommitted_patch(code_root: Path) -> str:
    """`git diff HEAD`: what the working tree changes in tracked files ('' outside a repository)."""
    return _git(code_root, "diff", "HEAD") or ""


def _git_state(code_root: Path) -> dict[str, Any]:
    commit = _git(code_root, "rev-parse", "HEAD")
    if commit is None:
        return {"commit": None}
    status = _git(code_root, "status", "--porcelain") or ""
    untracked = [line[3:] for line in status.splitlines() if line.startswith("??")]
    return {"commit": commit.strip(), "dirty": bool(status.strip()), "untracked": untracked}


def _git(code_root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=code_root, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None
