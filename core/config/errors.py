"""ConfigError, and the one-line messages it carries: the key, the value given and what is allowed."""
from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError


class ConfigError(ValueError):
    """A configuration that cannot run; the message is meant to be shown as it is."""


def describe_first(err: ValidationError, source: str, root: type[BaseModel]) -> str:
    """The one error to show: an unknown key first, since a misspelt key also makes its right spelling missing."""
    errors = err.errors()
    return describe(next((e for e in errors if e["type"] == "extra_forbidden"), errors[0]), source, root)


def describe(error: dict[str, Any], source: str, root: type[BaseModel]) -> str:
    parts, model, tags = _walk(root, error["loc"][:-1] if error["type"] == "extra_forbidden" else error["loc"])
    if error["type"] == "extra_forbidden":
        key = ".".join([*parts, str(error["loc"][-1])])
        allowed = sorted(model.model_fields) if model is not None else []
        chosen = f" (of name {tags[-1]})" if tags else ""
        return f"{source}: unknown key {key!r}; allowed keys here{chosen}: {', '.join(allowed)}"
    key = ".".join(parts) or "(top level)"
    if error["type"] == "union_tag_invalid":
        return f"{source}: {key}.name = {error['ctx']['tag']!r} is not known; known: {error['ctx']['expected_tags']}"
    if error["type"] == "union_tag_not_found":
        return f"{source}: {key} = {error.get('input')!r} is invalid: it is a section with keys, name first"
    if not error["loc"] and error["type"] == "value_error":  # a rule across keys: its message names them
        return f"{source}: {error['msg'].removeprefix('Value error, ')}"
    return f"{source}: {key} = {error.get('input')!r} is invalid: {error['msg']}"


def _walk(root: type[BaseModel], loc: tuple) -> tuple[list[str], type[BaseModel] | None, list[str]]:
    """The key as a user writes it (list indices kept, the union tags pydantic inserts dropped), the section the
    location ends in (None where it ends in a value), and the tags passed: which member of a union each section is."""
    parts: list[str] = []
    tags: list[str] = []
    model: Any = root
    for part in loc:
        if isinstance(part, int) or model is None:
            parts.append(str(part))
            continue
        members = _models(model)
        if part not in getattr(model, "model_fields", {}) and len(members) > 1:
            model = next((m for m in members if _tag(m) == part), None)  # the tag of a task's section: not a key
            tags.append(str(part))
            continue
        parts.append(str(part))
        fields = getattr(model, "model_fields", {})
        model = _section(fields[part].annotation) if part in fields else None
    return parts, model if isinstance(model, type) else _single(model), tags


def _section(annotation: Any) -> Any:
    """What a field holds, seen through Optional, list and Annotated: a section, a union of sections, or None."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _section(typing.get_args(annotation)[0])
    if origin in (list, tuple):
        return _section(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        members = [m for m in (_section(a) for a in typing.get_args(annotation)) if m is not None]
        return members[0] if len(members) == 1 else tuple(members) or None
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _models(model: Any) -> tuple:
    return model if isinstance(model, tuple) else (model,)


def _single(model: Any) -> type[BaseModel] | None:
    return model if isinstance(model, type) else None


def _tag(model: type[BaseModel]) -> Any:
    field = model.model_fields.get("name")
    return field.default if field is not None else None
