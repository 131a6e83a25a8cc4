"""Run a collector the way the runtime does: built from its settings, run once, closed."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from einvoice_exporter.outcome import Outcome, Reason


def run_once(kind: ModuleType, settings: Any, target: str, timeout: float) -> Outcome:
    """One run of a freshly built check of collector module `kind`, closed afterwards."""
    check = kind.build(settings)
    try:
        return check.run(target, timeout)
    finally:
        check.close()


def reason(outcome: Outcome) -> Reason | None:
    return outcome.failure.reason if outcome.failure else None
