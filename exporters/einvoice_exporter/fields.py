"""Reusable configuration types: strict models, durations, item ids, names, secrets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, SecretStr, StringConstraints

from einvoice_core.catalogue import normalize_item_id


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_DURATION_RE = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?$")


def parse_duration(value: object) -> float:
    """Prometheus-style durations ("500ms", "5s", "1m30s", "2h") or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration such as 5s, 1m30s or 500ms is required")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION_RE.fullmatch(value.strip())
        if not value.strip() or match is None or not any(match.groups()):
            raise ValueError(f"{value!r} is not a duration; write it like 5s, 1m30s or 500ms")
        hours, minutes, secs, millis = match.groups()
        seconds = (int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(secs or 0)
                   + int(millis or 0) / 1000)
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
ItemId = Annotated[str, BeforeValidator(normalize_item_id)]
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
"""Check and module names: they become label values, so short and plain."""


def resolve_secret(value: SecretStr | None, file: Path | None) -> str | None:
    """The secret given inline (after `${ENV}` expansion) or read from `*_file`, stripped of the
    trailing newline. Models holding a secret validate that at most one of the two is set."""
    if value is not None:
        return value.get_secret_value()
    if file is not None:
        return file.read_text(encoding="utf-8").rstrip("\r\n")
    return None


def one_of_secret(value: SecretStr | None, file: Path | None, key: str) -> None:
    """Raise a readable error when both `key` and `key_file` are set, or the file is unreadable."""
    if value is not None and file is not None:
        raise ValueError(f"set either {key} or {key}_file, not both")
    if file is not None and not file.is_file():
        raise ValueError(f"{key}_file {file} does not exist or is not a file")
