"""Patterns: the model, the shipped library (patterns.yaml) and the sets a check selects."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import Field, StringConstraints, TypeAdapter, field_validator

from ...fields import StrictModel

LIBRARY_PATH = Path(__file__).with_name("patterns.yaml")
PatternClass = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
"""A bounded label value: the class a pattern counts under (oom, io_error, ogg_error...)."""


class Pattern(StrictModel):
    name: PatternClass
    class_: PatternClass = Field(alias="class")
    regex: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    """Searched in each line's bytes; Python `re` syntax without backreferences or lookaround."""
    ignore_case: bool = False

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            compiled = re.compile(value.encode("utf-8"))
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        if compiled.search(b""):
            raise ValueError("the regular expression matches an empty line; it would count every line")
        return value

    def compiled(self) -> re.Pattern[bytes]:
        return re.compile(self.regex.encode("utf-8"), re.IGNORECASE if self.ignore_case else 0)


_LIBRARY = TypeAdapter(dict[PatternClass, list[Pattern]])


@cache
def library(path: Path = LIBRARY_PATH) -> dict[str, list[Pattern]]:
    """The shipped pattern sets by name (os, goldengate, etl, nginx_error)."""
    with path.open(encoding="utf-8") as handle:
        return _LIBRARY.validate_python(yaml.safe_load(handle))


def select(sets: list[str], extra: list[Pattern]) -> list[Pattern]:
    """The library sets named, then the operator's own patterns; names must stay unique."""
    known = library()
    chosen: list[Pattern] = []
    for name in sets:
        if name not in known:
            known_names = ", ".join(sorted(known))
            raise ValueError(f"pattern set {name!r} is not in the library (known: {known_names})")
        chosen.extend(known[name])
    chosen.extend(extra)
    seen: set[str] = set()
    for pattern in chosen:
        if pattern.name in seen:
            raise ValueError(f"pattern name {pattern.name!r} is used twice; rename the operator pattern")
        seen.add(pattern.name)
    if not chosen:
        raise ValueError("no patterns: name at least one pattern set or add patterns")
    return chosen
