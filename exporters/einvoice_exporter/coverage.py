"""Which of the contract's 20 items a configuration covers, and where its checks belong.

`einvoice-exporter --check-config` prints this table so an operator sees, before starting anything,
which items have checks (how many, of which kinds), which are declared monitored elsewhere and which
have none; `--file-sd` turns the same configuration into Prometheus file-based service discovery so
that every check is scraped through `/probe` as a target of its own (its own `instance`).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum

from einvoice_core.catalogue import ITEMS, Item, Zone, get_item

from .schema import ExporterConfig


class Placement(StrEnum):
    """Where the exporter that runs an item's checks has to be (docs/deploy.md#placement)."""

    OUTSIDE = "outside"
    """Outside the platform's networks, as a taxpayer reaches it (item 01: public domains)."""
    HOST = "host"
    """On every server whose logs are read (items 03, 09: the `logfile` kind reads local files)."""
    ZONE = "zone"
    """An exporter inside the item's network zone (extranet or intranet)."""


HOST_LOCAL_KINDS = frozenset({"logfile"})
"""Kinds that read the machine they run on, wherever their item is."""


def placement(item: Item, kinds: set[str] | frozenset[str] = frozenset()) -> Placement:
    if item.zone is Zone.INTERNET:
        return Placement.OUTSIDE
    if item.id in ("03", "09") or (kinds and kinds <= HOST_LOCAL_KINDS):
        return Placement.HOST
    return Placement.ZONE


@dataclass(frozen=True, slots=True)
class ItemCoverage:
    item: Item
    checks: int
    kinds: tuple[tuple[str, int], ...]
    """(kind, number of checks) sorted by kind."""
    elsewhere: str | None
    placement: Placement

    @property
    def status(self) -> str:
        if self.checks:
            return "covered"
        return "elsewhere" if self.elsewhere else "none"


def coverage(config: ExporterConfig) -> list[ItemCoverage]:
    by_item: dict[str, Counter[str]] = {item.id: Counter() for item in ITEMS}
    for check in config.checks:
        by_item[check.item][config.modules[check.module].kind] += 1
    rows = []
    for item in ITEMS:
        kinds = by_item[item.id]
        rows.append(ItemCoverage(item, sum(kinds.values()), tuple(sorted(kinds.items())),
                                 config.monitored_elsewhere.get(item.id), placement(item, set(kinds))))
    return rows


def format_coverage(rows: list[ItemCoverage]) -> str:
    """The table --check-config prints, one line per item, then a summary line."""
    lines = ["item  status     checks  kinds                         runs from  name"]
    for row in rows:
        kinds = ", ".join(f"{kind}×{count}" for kind, count in row.kinds) or "-"
        lines.append(f"{row.item.id:<5} {row.status:<10} {row.checks:>6}  {kinds:<29} "
                     f"{row.placement.value:<10} {row.item.name_zh}")
        if row.elsewhere:
            lines.append(f"{'':<5} monitored elsewhere: {row.elsewhere}")
    covered = sum(1 for row in rows if row.checks)
    elsewhere = sum(1 for row in rows if not row.checks and row.elsewhere)
    missing = [row.item.id for row in rows if row.status == "none"]
    lines.append(f"coverage: {covered} of {len(rows)} items have checks, {elsewhere} monitored elsewhere, "
                 f"{len(missing)} without checks" + (f" ({', '.join(missing)})" if missing else ""))
    return "\n".join(lines)


def file_sd(config: ExporterConfig, exporter_address: str) -> str:
    """Prometheus file_sd JSON: one /probe target per check, labelled with its identity.

    Scraped with `metrics_path: /probe` (docs/deploy.md#file-sd), each check becomes its own
    target whose `instance` is the check's target, as blackbox_exporter users relabel it, so
    community dashboards that choose a server by `instance` see one server per check.
    """
    groups = []
    for check in config.checks:
        groups.append({
            "targets": [exporter_address],
            # /probe?check=NAME runs the configured check; its series carry item, zone, check and
            # target themselves, so the group adds only what Prometheus cannot know: the instance.
            # `__meta_einvoice_*` are dropped unless the job relabels them: the documented job
            # (deploy/prometheus/prometheus.yml) gives the detail series item, zone, check, target and
            # system this way, so our dashboards' variables select them in this mode too.
            "labels": {"__param_check": check.name, "instance": check.target,
                       "kind": config.modules[check.module].kind,
                       "__meta_einvoice_item": check.item,
                       "__meta_einvoice_zone": get_item(check.item).zone.value,
                       "__meta_einvoice_system": check.resolved_system},
        })
    return json.dumps(groups, ensure_ascii=False, indent=2) + "\n"
