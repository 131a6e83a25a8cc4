"""《参数配置报告》 (per change; a day or a month): the declared parameters against their committed
baseline, what changed in the period, when, and from what to what.

Series (the `params` kind, exporters/einvoice_exporter/collectors/params.py):
- einvoice_param_info{item,check,target,param,value,expected} 1 — one series per observed value;
- einvoice_param_drift{item,check,target,param} — 1 while the value differs from the baseline.
The value history is a range query of `timestamp(einvoice_param_info)` at STEP-second steps (a
month: 300 s): at each step the series sampled last holds the value then, so a change is placed at
the first step showing the new value (to within one step and one scrape). A change of the `expected`
label is a change of the baseline (committed on purpose), listed as such. Time in drift is the number
of steps at which `einvoice_param_drift == 1`, times the step. A period still running is reported up
to the generation time. Secrets appear as (set)/(unset) only, as the exporter exports them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from einvoice_core.catalogue import ITEMS

from .period import REPORT_TZ, Period
from .prom import PrometheusClient
from .sla import EDGE

ITEM_NAMES = {item.id: item.name_zh for item in ITEMS}
Key = tuple[str, str, str, str]
"""(item, check, target, param)."""
MAX_POINTS = 10000
"""At most this many steps per range query (Prometheus refuses more than 11 000)."""


@dataclass(frozen=True, slots=True)
class Change:
    at: datetime
    key: Key
    old_value: str
    new_value: str
    old_expected: str
    new_expected: str

    @property
    def kind_zh(self) -> str:
        if self.old_value != self.new_value and self.old_expected != self.new_expected:
            return "参数与基线同时变更"
        return "参数变更" if self.old_value != self.new_value else "基线变更"

    @property
    def matches_after(self) -> bool:
        return self.new_value == self.new_expected


@dataclass(slots=True)
class ParamRow:
    key: Key
    expected: str
    value: str
    drift_now: bool
    drift_seconds: float
    changes: int

    @property
    def item(self) -> str:
        return self.key[0]

    @property
    def check(self) -> str:
        return self.key[1]

    @property
    def target(self) -> str:
        return self.key[2]

    @property
    def param(self) -> str:
        return self.key[3]


@dataclass(slots=True)
class ParamsReport:
    period: Period
    generated_at: datetime
    step: int
    rows: list[ParamRow]
    changes: list[Change]
    sources: list[str]
    gaps: list[str] = field(default_factory=list)
    until: datetime | None = None
    """Set while the period is still running: the figures stop here (the generation time)."""

    @property
    def drifting(self) -> list[ParamRow]:
        return [row for row in self.rows if row.drift_now]

    @property
    def checks(self) -> list[str]:
        return sorted({row.check for row in self.rows})


def _key(labels: dict[str, str]) -> Key:
    item, check, target, param = (labels.get(n, "") for n in ("item", "check", "target", "param"))
    return item, check, target, param


def step_for(period: Period) -> int:
    return max(60, math.ceil(period.seconds / MAX_POINTS / 60) * 60)


def history(prom: PrometheusClient, period: Period, step: int,
            end: float) -> dict[Key, list[tuple[float, str, str]]]:
    """Per parameter, the (time, value, expected) at every step to `end` where it was sampled."""
    start = period.start.timestamp()
    latest: dict[Key, dict[float, tuple[float, str, str]]] = {}
    for series in prom.query_range("timestamp(einvoice_param_info)", start, end, step):
        key = _key(series.labels)
        value, expected = series.labels.get("value", ""), series.labels.get("expected", "")
        per_step = latest.setdefault(key, {})
        for at, sampled in series.points:
            if at not in per_step or sampled > per_step[at][0]:
                per_step[at] = (sampled, value, expected)
    return {key: [(at, value, expected) for at, (_, value, expected) in sorted(steps.items())]
            for key, steps in latest.items()}


def changes_in(timeline: dict[Key, list[tuple[float, str, str]]]) -> list[Change]:
    out = []
    for key, points in timeline.items():
        for (_, old_value, old_expected), (at, value, expected) in pairwise(points):
            if (value, expected) != (old_value, old_expected):
                out.append(Change(datetime.fromtimestamp(at, UTC), key, old_value, value, old_expected,
                                  expected))
    return sorted(out, key=lambda c: (c.at, c.key))


def build_params(period: Period, prom: PrometheusClient, now: datetime) -> ParamsReport:
    """A period still running (today, this month) is reported up to `now`."""
    step = step_for(period)
    end = min(period.end.timestamp() - EDGE, now.timestamp())
    timeline = history(prom, period, step, end)
    changes = changes_in(timeline)
    drift_now = {_key(s.labels): s.value for s in prom.query("einvoice_param_drift", end)}
    drift_seconds: dict[Key, float] = {}
    for series in prom.query_range("einvoice_param_drift == 1", period.start.timestamp(), end, step):
        drift_seconds[_key(series.labels)] = len(series.points) * step
    counted: dict[Key, int] = {}
    for change in changes:
        counted[change.key] = counted.get(change.key, 0) + 1
    rows = []
    for key in sorted(set(timeline) | set(drift_now)):
        last = timeline.get(key, [])
        _, value, expected = last[-1] if last else (0.0, "—", "—")
        rows.append(ParamRow(key, expected, value, drift_now.get(key, 0.0) >= 1, drift_seconds.get(key, 0.0),
                             counted.get(key, 0)))
    gaps = [] if rows else ["本期没有参数快照数据（einvoice_param_info）："
                            "未配置 params 类型的检查，或其采集失败"]
    sources = [f"Prometheus HTTP API：{prom.url}（einvoice_param_info、einvoice_param_drift，"
               f"按 {step} 秒步长）", "参数基线：config/baseline/params.yml（由采集器导出为 expected 标签）"]
    return ParamsReport(period, now, step, rows, changes, sources, gaps,
                        datetime.fromtimestamp(end, UTC) if end < period.end.timestamp() - EDGE else None)


def context(report: ParamsReport) -> dict[str, Any]:
    return {"report": report, "period": report.period, "gaps": report.gaps, "sources": report.sources,
            "item_names": ITEM_NAMES, "generated_local": report.generated_at.astimezone(REPORT_TZ)}
