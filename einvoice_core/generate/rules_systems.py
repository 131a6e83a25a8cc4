"""Per-system availability (issue 19): the file `einvoice-systems.rules.yml`, and the promtool fixture
of the drill rules.

A system of the contract's scope (thresholds.yaml `systems`) is in outage (宕机) while one of its SLA
services is (einvoice:service_up 0), or while a check labelled with the system (the exporter's
`system` label) on one of the SLA's service items is down (fails, not degraded). The clocks follow the
service rules of rules.py: steps of the seconds since the previous evaluation with data, a gap of up
to sla.max_gap bridged; time inside a declared drill window is counted apart (rules_drills.py).

Kept apart from rules.py, which adds the file with one line.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from einvoice_core.contract import SYSTEM_LABEL
from einvoice_core.generate import rules_drills
from einvoice_core.thresholds import Drills, DrillWindow, DrillWindows, Thresholds

FILE_NAME = "einvoice-systems.rules.yml"
FIXTURE_FILE_NAME = "tests/fixtures/drills.rules.yml"
"""The items, SLA, systems and drill rules generated with FIXTURE_DRILLS at the epoch, for promtool
tests (promtool's clock starts at 0; the shipped windows lie in the future)."""
UP = "einvoice:system_up"
SLA_UP = "einvoice:system_sla_up"
STEP = "einvoice:system_step_seconds"
OUTAGE_STEP = "einvoice:system_outage_step_seconds"
DRILL_STEP = "einvoice:system_drill_outage_step_seconds"
SEEN = "einvoice:system_seen_timestamp_seconds"
ROLLING = (("month", "30d"), ("year", "365d"))
"""Outage seconds over rolling windows, named like the service rules' `_year` (365 days)."""

FIXTURE_DRILLS = DrillWindows(windows=(
    DrillWindow(name="演练-fixture", start=datetime(1970, 1, 1, 1, 0, tzinfo=UTC),
                end=datetime(1970, 1, 1, 2, 0, tzinfo=UTC)),
))
FIXTURE_SETTINGS = Drills(required_per_year=2, warn_from="01-02")
"""Local 1970-01-02 00:00 (Asia/Shanghai) is 16 h after promtool's start."""


def sla_items(th: Thresholds) -> set[str]:
    return {item for service in th.services.values() for item in service.items}


def watched(th: Thresholds) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """system -> (its SLA services, its items among the SLA's service items); systems with neither
    have no availability series (they are not watched by this bundle's SLA rules)."""
    out = {}
    for key, system in th.systems.items():
        items = tuple(sorted(set(system.items) & sla_items(th)))
        if system.services or items:
            out[key] = (tuple(system.services), items)
    return out


def _down_expr(services: tuple[str, ...], items: tuple[str, ...], system: str) -> str:
    parts = []
    if services:
        parts.append(f'label_replace(1 - min(einvoice:service_up{{service=~"{"|".join(services)}"}}),'
                     ' "part", "services", "", "")')
    if items:
        sel = f'{{{SYSTEM_LABEL}="{system}",item=~"{"|".join(items)}"}}'
        parts.append(f'label_replace(max(clamp_min((einvoice_check_up{sel} == bool 0)'
                     f' - (einvoice_check_degraded{sel} or 0 * einvoice_check_up{sel}), 0)),'
                     ' "part", "checks", "", "")')
    return "max(\n  " + "\n  or\n  ".join(parts) + "\n)"


def groups(th: Thresholds, drills: DrillWindows) -> list[dict[str, Any]]:
    from einvoice_core.generate.rules import _expr, _num, duration_seconds

    gap = th.sla.max_gap
    active = rules_drills.active_expr(drills, th.routing.location).replace("\n", "\n  ")
    by = f"on ({SYSTEM_LABEL})"
    fast: list[dict[str, Any]] = []
    for key, (services, items) in watched(th).items():
        fast.append({"record": UP, "expr": _expr(f"1 - {_down_expr(services, items, key)}"),
                     "labels": {SYSTEM_LABEL: key}})
    fast.append({"record": SLA_UP,
                 "expr": _expr(f"clamp_max(\n  {UP} + on () group_left () {active},\n  1\n)")})
    windows = sorted({"5m", "1h", "1d", "30d", *(w for b in th.sla.burn_rate for w in (b.long, b.short))},
                     key=duration_seconds)
    fast += [{"record": f"einvoice:system_availability:ratio_{w}", "expr": f"avg_over_time({SLA_UP}[{w}])"}
             for w in windows]
    fast += [
        {"record": STEP, "expr": _expr(
            f"(time() - last_over_time({SEEN}[{gap}])) and {by} {UP}\nor {by} (0 * {UP})")},
        {"record": OUTAGE_STEP, "expr": f"{STEP} * {by} (1 - {UP})"},
        {"record": DRILL_STEP, "expr": _expr(f"{OUTAGE_STEP} * on () group_left () {active}")},
        {"record": SEEN, "expr": f"time() + 0 * {UP}"},
    ]
    slow: list[dict[str, Any]] = []
    for name, window in ROLLING:
        drill = f"sum_over_time({DRILL_STEP}[{window}])"
        total = f"sum_over_time({OUTAGE_STEP}[{window}])"
        slow += [
            {"record": f"einvoice:system_outage_seconds_{name}",
             "expr": _expr(f"{total}\n- {by} ({drill} or {by} 0 * {total})")},
            {"record": f"einvoice:system_drill_outage_seconds_{name}", "expr": drill},
        ]
    budget = duration_seconds(th.sla.yearly_outage_budget)
    slow.append({"record": "einvoice:system_outage_budget_remaining:ratio",
                 "expr": f"clamp_min(1 - einvoice:system_outage_seconds_year / {_num(budget)}, 0)"})
    return [
        {"name": "einvoice-systems", "interval": th.evaluation_interval, "rules": fast},
        {"name": "einvoice-systems-year", "interval": th.sla.year_evaluation_interval, "rules": slow},
        *rules_drills.count_groups(th, drills),
    ]


DOC = (
    "# Recording rules in this file (label system: the keys of thresholds.yaml `systems`; a system is\n"
    "# in outage while one of its SLA services is, or a check labelled with it on an SLA item is down;\n"
    "# systems watched by neither have no series). Time inside a declared drill window\n"
    "# (alert_rules/drill_windows.yml) is drill time: it is left out of the SLA figures and counted apart.\n"
    "#   einvoice:system_up                          1 unless in outage\n"
    "#   einvoice:system_sla_up                      1 unless in outage outside a drill window\n"
    "#   einvoice:system_availability:ratio_<w>      avg of system_sla_up over w (the service windows)\n"
    "#   einvoice:system_step_seconds                seconds since the previous evaluation with data\n"
    "#                                               (gaps up to sla.max_gap bridged, as for services)\n"
    "#   einvoice:system_outage_step_seconds         the step when in outage (drills included), else 0\n"
    "#   einvoice:system_drill_outage_step_seconds   the part of it inside a drill window\n"
    "#   einvoice:system_outage_seconds_<m|y>        outage outside drills, rolling 30 / 365 days\n"
    "#   einvoice:system_drill_outage_seconds_<m|y>  outage inside drills, rolling 30 / 365 days\n"
    "#   einvoice:system_outage_budget_remaining:ratio  share of the yearly budget left (>= 0)\n"
    "#   einvoice:drills_declared:count_year         drill windows starting in this local year\n"
    "#   einvoice:drills_held:count_year             of these, the ones that have ended\n"
    "#   einvoice:drills_required:count_year         thresholds.yaml drills.required_per_year\n"
)


def rule_file(th: Thresholds, drills: DrillWindows) -> dict[str, str]:
    from einvoice_core.generate.rules import HEADER, dump

    return {FILE_NAME: HEADER + DOC + dump({"groups": groups(th, drills)})}


def fixture_file(th: Thresholds) -> dict[str, str]:
    """The rules a promtool test of the drills reads: items, SLA and systems, with FIXTURE_DRILLS."""
    from einvoice_core.generate.rules import HEADER, dump, item_groups, sla_groups

    fixture = th.model_copy(update={"drills": FIXTURE_SETTINGS})
    doc = {"groups": [*item_groups(fixture), *sla_groups(fixture, FIXTURE_DRILLS),
                      *groups(fixture, FIXTURE_DRILLS)]}
    note = ("# Test fixture: the generated items, SLA, systems and drill rules with one drill window at\n"
            f"# 1970-01-01 01:00-02:00 UTC and drills.warn_from {FIXTURE_SETTINGS.warn_from}"
            " (einvoice_core/generate/rules_systems.py).\n")
    return {FIXTURE_FILE_NAME: HEADER + note + dump(doc)}
