"""Known-good environment locks: the fingerprints of a run that trained well, kept in a file that launches are checked against.

    # python -m jobs.report --lock RUN_DIR
    run: 20261203-101500_quickstart_segmentation_fpn-resnet18_bs8x2_lr0.001
    environments:
      driver: {python: 3.11.7, torch: 2.11.0, cuda: '13.0', nvidia_driver: null, pytorch3d: 0.7.9.post1, ...}
      8 CPU, 1 GPU (A10G): {...}
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from core.config.errors import ConfigError
from core.runs.fingerprint import DRIVER, FIELDS, Fingerprint, of_env

ENVIRONMENTS = "environments"


def write(run_dir: Path, out: Path) -> dict[str, Fingerprint]:
    env_file = run_dir / "env.json"
    if not env_file.is_file():
        raise ConfigError(f"{run_dir} holds no env.json: give a run directory of jobs.train")
    environments = of_env(json.loads(env_file.read_text()))
    out.write_text(f"# python -m jobs.report --lock {run_dir}\n"
                   + yaml.safe_dump({"run": run_dir.name, ENVIRONMENTS: environments}, sort_keys=False))
    return environments


def read(path: Path) -> dict[str, Fingerprint]:
    if not path.is_file():
        raise ConfigError(f"environment lock {path} does not exist; write one with python -m jobs.report --lock RUN_DIR")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"environment lock {path} is not YAML: {err}") from None
    environments = raw.get(ENVIRONMENTS) if isinstance(raw, dict) else None
    if not isinstance(environments, dict) or not isinstance(environments.get(DRIVER), dict):
        raise ConfigError(f"environment lock {path}: needs '{ENVIRONMENTS}:' with a '{DRIVER}:' mapping of {', '.join(FIELDS)}")
    for place, fingerprint in environments.items():
        unknown = sorted(set(fingerprint or {}) - set(FIELDS))
        if unknown:
            raise ConfigError(f"environment lock {path}: {ENVIRONMENTS}.{place}.{unknown[0]} is not a field; the fields are "
                              f"{', '.join(FIELDS)}")
    return {place: {field: _text((fingerprint or {}).get(field)) for field in FIELDS} for place, fingerprint in environments.items()}


def _text(value) -> str | None:
    """Versions as text: a hand-written `cuda: 13.0` is the float 13.0 to YAML."""
    return None if value is None else str(value)
