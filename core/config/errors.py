"""ConfigError, and the one-line messages it carries: the key, the value given and what is allowed."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ConfigError(ValueError):
    """A configuration that cannot run; the message is meant to be shown as it is."""


def describe(error: dict[str, Any], source: str, root: type[BaseModel]) -> str:
    key = ".".join(str(p) for p in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        allowed = _allowed_keys(root, error["loc"][:-1])
        return f"{source}: unknown key {key!r}; allowed keys here: {', '.join(allowed)}"
    if not error["loc"] and error["type"] == "value_error":  # a rule across keys: its message names them
        return f"{source}: {error['msg'].removeprefix('Value error, ')}"
    given = error.get("input")
    return f"{source}: {key} = {given!r} is invalid: {error['msg']}"


def _allowed_keys(root: type[BaseModel], loc: tuple) -> list[str]:
    model = root
    for part in loc:
        annotation = model.model_fields[part].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        model = annotation
    return sorted(model.model_fields)
