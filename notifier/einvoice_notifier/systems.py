"""Which system of the contract's scope (thresholds.yaml `systems`) a ticket is about.

The alert's `system` label wins; else the first system (in the file's order) whose `items` list the
alert's item; else the first system whose `services` list the alert's service; else none. The order
of thresholds.yaml is the tie-break: item 08 serves secure access, unified intake and the OFD front
alike, and an alert that knows better carries the `system` label."""

from __future__ import annotations

from collections.abc import Mapping

from einvoice_core.catalogue import normalize_item_id
from einvoice_core.contract import DRILL_LABEL, SERVICE_LABEL, SYSTEM_LABEL
from einvoice_core.thresholds import shipped


def system_keys() -> tuple[str, ...]:
    return tuple(shipped().systems)


def system_names() -> dict[str, str]:
    """System key → Chinese name, in the file's order."""
    return {key: system.name_zh for key, system in shipped().systems.items()}


def system_of(labels: Mapping[str, str], item: str | None = None) -> str | None:
    systems = shipped().systems
    named = labels.get(SYSTEM_LABEL, "")
    if named in systems:
        return named
    found_item = item
    if found_item is None and labels.get("item"):
        try:
            found_item = normalize_item_id(labels["item"])
        except ValueError:
            found_item = None
    if found_item is not None:
        for key, system in systems.items():
            if found_item in system.items:
                return key
    service = labels.get(SERVICE_LABEL, "")
    if service:
        for key, system in systems.items():
            if service in system.services:
                return key
    return None


def is_drill(labels: Mapping[str, str]) -> bool:
    return labels.get(DRILL_LABEL, "").lower() == "true"
