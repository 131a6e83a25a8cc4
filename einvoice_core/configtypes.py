"""Configuration building blocks shared by the exporter and the notifier.

Strict frozen models (unknown keys are errors, inputs never echoed in error texts), Prometheus-style
durations, secrets given inline (after `${ENV}` expansion) or by a `*_file` key, and a YAML loader
that refuses duplicate keys. Standard library and pydantic only: importing it pulls in no service.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, SecretStr


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


_DURATION_RE = re.compile(
    r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?$")


def parse_duration(value: object) -> float:
    """Prometheus-style durations ("500ms", "5s", "1m30s", "2h", "1d") or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration such as 5s, 1m30s or 500ms is required")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION_RE.fullmatch(value.strip())
        if not value.strip() or match is None or not any(match.groups()):
            raise ValueError(f"{value!r} is not a duration; write it like 5s, 1m30s or 500ms")
        days, hours, minutes, secs, millis = match.groups()
        seconds = (int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes or 0) * 60
                   + float(secs or 0) + int(millis or 0) / 1000)
    else:
        raise ValueError("a duration such as 5s, 1m30s or 500ms is required")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def _positive(value: float) -> float:
    if value <= 0:
        raise ValueError("must be longer than zero")
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds, written as a Prometheus duration."""
PositiveDuration = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_positive)]


def resolve_secret(value: SecretStr | None, file: Path | None) -> str | None:
    """The secret given inline (after `${ENV}` expansion) or read from `*_file`, stripped of the
    trailing newline. Models holding a secret validate that at most one of the two is set."""
    if value is not None:
        return value.get_secret_value()
    if file is not None:
        return file.read_text(encoding="utf-8").rstrip("\r\n")
    return None


def one_of_secret(value: object, file: Path | None, key: str) -> None:
    """Raise a readable error when both `key` and `key_file` are set, or the file is unreadable."""
    if value is not None and file is not None:
        raise ValueError(f"set either {key} or {key}_file, not both")
    if file is not None and not file.is_file():
        raise ValueError(f"{key}_file {file} does not exist or is not a file")


_ENV_RE = re.compile(r"\$(\$)?\{([^}]*)\}")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_WORDS = ("password", "secret", "token", "passphrase", "credential", "key")


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: UniqueKeyLoader, node: yaml.MappingNode,
                       deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            first = seen[key].start_mark
            raise yaml.constructor.ConstructorError(
                None, None,
                f"duplicate key {key!r} (first defined on line {first.line + 1})",
                key_node.start_mark)
        seen[key] = key_node
    return loader.construct_mapping(node, deep=deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def looks_secret(path: Sequence[str | int]) -> bool:
    last = next((p for p in reversed(path) if isinstance(p, str)), "")
    return any(word in last.lower() for word in _SECRET_WORDS)


def expand_env(data: Any, env: Mapping[str, str], path: tuple[str | int, ...] = (),
               errors: list[tuple[tuple[str | int, ...], str]] | None = None,
               secrets: set[str] | None = None) -> Any:
    """Replace `${VAR}` in every string scalar; `$${VAR}` stays literally `${VAR}`.

    Unset variables are collected in `errors` with their key path; values expanded into keys that
    look like secrets are collected in `secrets` so that no message repeats them.
    """
    errors = [] if errors is None else errors
    if isinstance(data, Mapping):
        return {key: expand_env(value, env, (*path, str(key)), errors, secrets)
                for key, value in data.items()}
    if isinstance(data, list):
        return [expand_env(value, env, (*path, index), errors, secrets) for index, value in enumerate(data)]
    if not isinstance(data, str) or "${" not in data:
        return data

    def substitute(match: re.Match[str]) -> str:
        escaped, name = match.group(1), match.group(2)
        if escaped:
            return "${" + name + "}"
        if not _ENV_NAME_RE.match(name):
            errors.append((path, f"${{{name}}} is not a valid environment variable reference"))
            return ""
        value = env.get(name)
        if value is None:
            errors.append((path, f"environment variable {name} is not set"))
            return ""
        if secrets is not None and looks_secret(path) and value:
            secrets.add(value)
        return value

    return _ENV_RE.sub(substitute, data)


