"""Disaster-recovery drills (容灾演练, seed §二.9: at least 2 a year; issue 19).

Drill windows are declared in advance in alert_rules/drill_windows.yml (like change_windows.yml) and
rendered into the rules as Unix seconds:

- `einvoice:drill_active` (SLA group): 1 inside a window, else 0; the SLA rules count outage time
  inside a window as drill outage (`*_drill_outage_*`), apart from the yearly budget;
- every alert carries the label `drill`, templated "true" while `einvoice:drill_active` is 1 (empty,
  hence absent, otherwise), so Alertmanager and the notifier see a drill alert as one;
- `einvoice:drills_declared:count_year` / `einvoice:drills_held:count_year`, the year's drills against
  thresholds.yaml `drills.required_per_year`, and the EinvoiceDrillsBehind warning late in the year.

Windows are kept apart from rules.py, which calls this module with one line per use.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from einvoice_core.catalogue import Severity
from einvoice_core.contract import DRILL_LABEL
from einvoice_core.thresholds import DrillWindows, Thresholds

FILE_NAME = "drill_windows.yml"
ACTIVE = "einvoice:drill_active"
DECLARED = "einvoice:drills_declared:count_year"
HELD = "einvoice:drills_held:count_year"
REQUIRED = "einvoice:drills_required:count_year"

LABEL_TEMPLATE = f'{{{{ with query "{ACTIVE} == 1" }}}}true{{{{ end }}}}'
"""The `drill` label of every alert: "true" while a drill window is open; an empty value drops the
label, so alerts outside windows are unchanged. An alert that spans a window's edge changes identity
there (resolved, raised again with the other label)."""


def _now_in(start: int, end: int) -> str:
    return f"(vector(time()) >= bool {start}) * (vector(time()) < bool {end})"


def active_expr(drills: DrillWindows, location: str) -> str:
    """1 while time() is inside a declared window, else 0 (a label-less vector, always present)."""
    bounds = sorted({w.bounds(location) for w in drills.windows})
    if not bounds:
        return "vector(0)"
    terms = "\n  + ".join(_now_in(start, end) for start, end in bounds)
    return f"clamp_max(\n  {terms},\n  1\n)"


def _year_bounds(ts: int, zone: ZoneInfo) -> tuple[int, int]:
    """[1 January, next 1 January) in `zone` of the local year holding `ts`, as Unix seconds."""
    year = datetime.fromtimestamp(ts, zone).year
    return (int(datetime(year, 1, 1, tzinfo=zone).timestamp()),
            int(datetime(year + 1, 1, 1, tzinfo=zone).timestamp()))


def _utc_offset_seconds(location: str) -> int:
    """The location's offset in January (Asia/Shanghai: +8 h all year, no daylight saving)."""
    offset = datetime(2000, 1, 15, tzinfo=ZoneInfo(location)).utcoffset()
    return int(offset.total_seconds()) if offset else 0


def declared_expr(drills: DrillWindows, location: str) -> str:
    """Windows starting in the current local year (a drill belongs to the year it starts in)."""
    zone = ZoneInfo(location)
    years = Counter(_year_bounds(w.bounds(location)[0], zone) for w in drills.windows)
    if not years:
        return "vector(0)"
    return "\n+ ".join(f"{n} * {_now_in(a, b)}" for (a, b), n in sorted(years.items()))


def held_expr(drills: DrillWindows, location: str) -> str:
    """Windows of the current local year that have ended (one crossing New Year counts as held in
    the last second of the year it started in)."""
    zone = ZoneInfo(location)
    year_ends = [_year_bounds(w.bounds(location)[0], zone)[1] for w in drills.windows]
    ends = Counter((min(w.bounds(location)[1], year_end - 1), year_end)
                   for w, year_end in zip(drills.windows, year_ends, strict=True))
    if not ends:
        return "vector(0)"
    return "\n+ ".join(f"{n} * {_now_in(end, year_end)}" for (end, year_end), n in sorted(ends.items()))


def count_groups(th: Thresholds, drills: DrillWindows) -> list[dict[str, Any]]:
    from einvoice_core.generate.rules import _alert, _expr

    location = th.routing.location
    required = th.drills.required_per_year
    month, day = (int(part) for part in th.drills.warn_from.split("-"))
    local_now = f"vector(time() + {_utc_offset_seconds(location)})"
    rules: list[dict[str, Any]] = [
        {"record": DECLARED, "expr": _expr(declared_expr(drills, location))},
        {"record": HELD, "expr": _expr(held_expr(drills, location))},
        {"record": REQUIRED, "expr": f"vector({required})"},
        _alert(
            th, "EinvoiceDrillsBehind",
            f"{DECLARED} < {required}\n"
            f"and on () month({local_now}) * 100 + day_of_month({local_now}) >= {month * 100 + day}",
            Severity.WARNING,
            f"本年度已登记的容灾演练 {{{{ $value }}}} 次，少于合同要求的 {required} 次",
            f"合同（二.9）要求每年至少进行 {required} 次容灾演练。本年度 alert_rules/drill_windows.yml "
            f"中登记的演练窗口只有 {{{{ $value }}}} 个（已过 {month} 月 {day} 日）。请与税务局商定演练时间、"
            "提前登记演练窗口并重新生成规则；演练结束后用 einvoice-report drill 出具演练报告。",
        ),
    ]
    return [{"name": "einvoice-drills", "interval": th.sla.year_evaluation_interval, "rules": rules}]


def mark_alerts(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give every alert rule of `groups` the templated `drill` label (in place; returns `groups`)."""
    for group in groups:
        for rule in group["rules"]:
            if "alert" in rule:
                rule["labels"][DRILL_LABEL] = LABEL_TEMPLATE
    return groups


def mark_rule_file(text: str) -> str:
    """A generated rule file with the `drill` label on every alert: applied once to every file the
    generator writes, so no alert of any module is left out. The leading comment block is kept."""
    import yaml

    from einvoice_core.generate.rules import _Literal, dump

    lines = text.splitlines(keepends=True)
    head = 0
    while head < len(lines) and lines[head].startswith("#"):
        head += 1
    data = yaml.safe_load("".join(lines[head:]))

    def literal(value: Any) -> Any:
        if isinstance(value, str) and "\n" in value:
            return _Literal(value)
        if isinstance(value, dict):
            return {key: literal(v) for key, v in value.items()}
        if isinstance(value, list):
            return [literal(v) for v in value]
        return value

    mark_alerts(data["groups"])
    return "".join(lines[:head]) + dump(literal(data))
