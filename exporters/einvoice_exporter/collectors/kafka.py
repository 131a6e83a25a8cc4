"""Collector of kind `kafka`: placeholder until its issue lands (see the Check protocol in outcome.py)."""

from __future__ import annotations

from ..fields import StrictModel
from ..outcome import Check, Outcome, Reason


class Settings(StrictModel):
    """Settings of a `kafka` module."""


def validate_target(target: str) -> str:
    return target


class Collector:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def run(self, target: str, timeout: float) -> Outcome:
        return Outcome().fail(Reason.ERROR, "collector kind kafka is not implemented yet")

    def close(self) -> None:
        pass


def build(settings: Settings) -> Check:
    return Collector(settings)
