"""Load the exporter's YAML file: `${ENV}` expansion, strict validation, readable errors.

Every problem becomes one line `FILE: key.path: sentence`, so an operator sees at once which key of
which file is wrong. Values are never echoed for keys that look like secrets.
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from einvoice_core.configtypes import UniqueKeyLoader, expand_env

from .schema import KIND_NAMES, ExporterConfig


class ConfigError(Exception):
    """An invalid configuration file; `lines` are the messages, one per problem."""

    def __init__(self, lines: Sequence[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = list(lines)


def format_path(path: Sequence[str | int], data: Any) -> str:
    """`checks[2] (intake-health).item` from a key path, naming list entries by their `name`."""
    text = ""
    node = data
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
            entry = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
                text += f" ({entry['name']})"
            node = entry
        else:
            text += f".{part}" if text else str(part)
            node = node.get(part) if isinstance(node, Mapping) else None
    return text


def _field_model(model: Any, path: Sequence[str | int]) -> type[BaseModel] | None:
    """The pydantic model found at `path` (pydantic's loc) below `model`, for key suggestions."""
    current: Any = model
    parts = list(path)
    while parts:
        origin = typing.get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            part = parts.pop(0)
            field = next((f for n, f in current.model_fields.items()
                          if part in (n, f.alias)), None)
            if field is None:
                return None
            current = field.annotation
        elif origin is typing.Annotated:
            current = typing.get_args(current)[0]
        elif origin in (dict, Mapping):
            parts.pop(0)
            current = typing.get_args(current)[1]
        elif origin in (list, Sequence):
            parts.pop(0)
            current = typing.get_args(current)[0]
        elif origin in (typing.Union, types.UnionType):
            tag = parts.pop(0)
            current = next((arg for arg in typing.get_args(current)
                            if isinstance(arg, type) and issubclass(arg, BaseModel)
                            and "kind" in arg.model_fields
                            and tag in typing.get_args(arg.model_fields["kind"].annotation)), None)
            if current is None:
                return None
        else:
            return None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    origin = typing.get_origin(current)
    if origin is typing.Annotated:
        inner = typing.get_args(current)[0]
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner
    return None


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _display_loc(loc: Sequence[str | int]) -> list[str | int]:
    """Drop the discriminator tag pydantic inserts after `modules.<name>`."""
    parts = list(loc)
    if len(parts) >= 3 and parts[0] == "modules" and parts[2] in KIND_NAMES:
        del parts[2]
    return parts


def _sentence(error: Mapping[str, Any], loc: Sequence[str | int]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        parent = _field_model(ExporterConfig, loc[:-1])
        if parent is None:
            return "unknown key; remove it or check its spelling"
        allowed = _allowed_keys(parent)
        if not allowed:
            return "unknown key; this block takes no keys"
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown key; {hint}allowed keys here: {', '.join(allowed)}"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_not_found":
        return f"kind is missing; set kind to one of {', '.join(KIND_NAMES)}"
    if kind == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag", "")
        return f"kind {tag!r} is not known; use one of {', '.join(KIND_NAMES)}"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


def _redact(text: str, secrets: set[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "<secret>")
    return text


def parse_config(text: str, source: str = "<config>", env: Mapping[str, str] | None = None) -> ExporterConfig:
    """Validate the text of a config file; raise ConfigError with one line per problem."""
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise ConfigError([f"{where}: YAML syntax error: {problem}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: YAML error: {exc}"]) from None
    if data is None:
        raise ConfigError([f"{source}: the file is empty; it needs at least `modules` and `checks`"])
    if not isinstance(data, dict):
        raise ConfigError([f"{source}: the top level must be a mapping with `modules` and `checks`, "
                           f"not a {type(data).__name__}"])

    env_errors: list[tuple[tuple[str | int, ...], str]] = []
    secrets: set[str] = set()
    expanded = expand_env(data, os.environ if env is None else env, (), env_errors, secrets)
    if env_errors:
        raise ConfigError([f"{source}: {format_path(path, data)}: {message}"
                           for path, message in env_errors])
    try:
        return ExporterConfig.model_validate(expanded)
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_url=False, include_input=False):
            loc = _display_loc(error["loc"])
            sentence = _redact(_sentence(error, error["loc"]), secrets)
            where = format_path(loc, expanded)
            lines.append(f"{source}: {where}: {sentence}" if where else f"{source}: {sentence}")
        raise ConfigError(lines) from None


def load_config(path: Path, env: Mapping[str, str] | None = None) -> ExporterConfig:
    """Read and validate the file at `path`; raise ConfigError naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the file: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: the file is not UTF-8 text"]) from None
    return parse_config(text, str(path), env)
