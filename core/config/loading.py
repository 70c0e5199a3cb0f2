"""Loading an experiment: YAML, `dotted.key=value` overrides, validation into one ConfigError line.

An unknown key, a wrong type or an impossible value raises ConfigError whose message names the key,
the value given and what is allowed, so a job can print one line and exit with code 2.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from core.config.errors import ConfigError, describe_first
from core.config.schema import ExperimentConfig


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> ExperimentConfig:
    """Read YAML (or defaults when path is None), apply `dotted.key=value` overrides, validate."""
    raw = _read_yaml(Path(path)) if path is not None else {}
    for item in overrides:
        _apply_override(raw, item)
    return validate(raw, source=str(path) if path else "defaults")


def format_override(key: str, value: Any) -> str:
    """The `dotted.key=value` text that sets key to value (JSON is YAML, so any value survives the trip)."""
    return f"{key}={json.dumps(value)}"


def validate(raw: dict[str, Any], source: str = "config") -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(describe_first(err, source, ExperimentConfig)) from None


def to_yaml(config: ExperimentConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist (give a YAML file such as configs/quickstart.yaml)")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys at the top, not {type(raw).__name__}")
    return raw


def _apply_override(raw: dict[str, Any], item: str) -> None:
    """Set one dotted key; a number steps into a list (stages.0.epochs=1), which must already hold that item."""
    key, sep, text = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r} is not of the form dotted.key=value (for example train.epochs=3)")
    parts = key.split(".")
    node: Any = raw
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"override {key}: {'.'.join(parts[:depth])} is a list of {len(node)} item(s); "
                                  f"{part!r} is not one of its indices 0..{len(node) - 1}")
            part = int(part)
        elif not isinstance(node, dict):
            raise ConfigError(f"override {key}: {'.'.join(parts[:depth])} is a value ({node!r}), not a section with keys")
        if last:
            node[part] = yaml.safe_load(text) if text else ""
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            node = node[part]
