"""Service-level figures of a period, from the SLA recording rules (alert_rules/einvoice-sla.rules.yml).

Every figure is one PromQL expression over the period's exact length, evaluated 1 ms before the
period's end, so a sample taken exactly at the start counts and one taken exactly at the end belongs
to the next period (the same under Prometheus 2's closed and 3's left-open range selectors)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta

from einvoice_core.thresholds import Thresholds, duration_seconds

from .period import Period
from .prom import PrometheusClient, Sample

EDGE = 0.001
"""Seconds before a period's end at which its figures are evaluated."""
DAY = 86400

DEFINITIONS_ZH: tuple[tuple[str, str], ...] = (
    ("可用率",
     "avg_over_time(einvoice:service_sla_up[周期])：周期内服务可用（未宕机，或宕机发生在登记的容灾演练窗口内）"
     "的采样比例；卡顿不计为不可用。规则上线前的数据没有该序列时取 einvoice:service_up。"),
    ("宕机时长",
     "sum_over_time(einvoice:service_outage_step_seconds[周期]) 减去演练宕机：每次规则评估时服务处于宕机的"
     "秒数之和，不含容灾演练窗口内的宕机。"),
    ("演练宕机时长",
     "sum_over_time(einvoice:service_drill_outage_step_seconds[周期])：登记的容灾演练窗口"
     "（alert_rules/drill_windows.yml）内的宕机秒数，单独列出，不计入年度宕机预算。"),
    ("各系统可用率",
     "按 thresholds.yaml 的系统清单：系统的任一业务服务宕机，或带该系统标签的 SLA 成员检查不可用，"
     "即系统宕机；"
     "可用率 avg_over_time(einvoice:system_sla_up[周期])，宕机与演练宕机同上（einvoice:system_*）。"),
    ("卡顿时长", "sum_over_time(einvoice:service_stall_step_seconds[周期])。"),
    ("最长一次宕机",
     "max_over_time(einvoice:service_outage_current_seconds[周期])：周期内观察到的单次宕机最长持续时间"
     "（跨周期开始的宕机含周期前部分）。"),
    ("超 2 小时宕机次数",
     "sum_over_time(einvoice:service_outage_over_limit_event[周期])：单次宕机越过 2 小时的次数。"),
    ("超 30 分钟恢复次数", "sum_over_time(einvoice:service_restore_late_event[周期])，按宕机/卡顿分列。"),
    ("年度宕机预算",
     "合同每年累计宕机不超过 12 小时；已用 = 自本年 1 月 1 日 0 时（北京时间）至周期结束的宕机时长之和，"
     "剩余 = 12 小时 − 已用（不小于 0）。"),
    ("每日可用率", "每个自然日（北京时间）的 avg_over_time(einvoice:service_up[1d])。"),
    ("应用连续运行",
     "einvoice:app_uptime_seconds：周期结束时各应用实例（JVM 进程、容器、WebLogic 服务器）"
     "自上次启动以来的时长；"
     "本期重启次数 = 启动时间在周期内变化的次数；合同要求应用至少连续 6 个月不停，即连续运行时长不少于 "
     "thresholds.yaml continuity.continuous_run。"),
)


@dataclass(slots=True)
class ServiceFigures:
    service: str
    name_zh: str
    availability: float | None = None
    outage_seconds: float = 0.0
    stall_seconds: float = 0.0
    longest_outage_seconds: float = 0.0
    outages_over_limit: int = 0
    restores_late_outage: int = 0
    restores_late_stall: int = 0
    ytd_outage_seconds: float = 0.0
    budget_seconds: float = 0.0
    drill_outage_seconds: float = 0.0
    """Outage inside declared drill windows (issue 19): reported apart, not in outage_seconds."""
    daily_availability: list[tuple[date, float | None]] = field(default_factory=list)
    daily_outage_seconds: dict[date, float] = field(default_factory=dict)

    @property
    def budget_used_period_ratio(self) -> float:
        return self.outage_seconds / self.budget_seconds if self.budget_seconds else 0.0

    @property
    def budget_left_seconds(self) -> float:
        return max(self.budget_seconds - self.ytd_outage_seconds, 0.0)

    @property
    def budget_left_ratio(self) -> float:
        return self.budget_left_seconds / self.budget_seconds if self.budget_seconds else 0.0


@dataclass(frozen=True, slots=True)
class AppFigures:
    """应用连续运行 (seed §三.(四) 2) of one application instance at the period's end."""

    instance: str
    uptime_seconds: float
    restarts: int
    required_seconds: float

    @property
    def meets(self) -> bool:
        return self.uptime_seconds >= self.required_seconds


@dataclass(frozen=True, slots=True)
class SystemFigures:
    """One system of the contract's scope (thresholds.yaml `systems`, issue 19)."""

    system: str
    name_zh: str
    vendor_scope: bool
    availability: float | None
    """None: no einvoice:system_sla_up in the period (the system is not watched, or no data)."""
    outage_seconds: float
    drill_outage_seconds: float
    ytd_outage_seconds: float


@dataclass(slots=True)
class SlaFigures:
    services: list[ServiceFigures]
    objective: float
    max_single_outage_seconds: float
    restore_within_seconds: float
    gaps: list[str] = field(default_factory=list)
    apps: list[AppFigures] = field(default_factory=list)
    systems: list[SystemFigures] = field(default_factory=list)

    def fault_days(self) -> dict[date, float]:
        """Local days on which any service was down, with the summed outage seconds of the day."""
        days: dict[date, float] = {}
        for figures in self.services:
            for day, seconds in figures.daily_outage_seconds.items():
                if seconds > 0:
                    days[day] = days.get(day, 0.0) + seconds
        return dict(sorted(days.items()))


def _by_service(samples: list[Sample], key: str = "service") -> dict[str, float]:
    return {s.labels.get(key, ""): s.value for s in samples}


def _num(value: float | None) -> float:
    return 0.0 if value is None or math.isnan(value) else value


def _less_drill(outage: str, drill: str, window: str, by: str) -> str:
    """Outage seconds without the drill part; series recorded before the drill rules have none."""
    total = f"sum_over_time({outage}{window})"
    return f"{total} - on ({by}) (sum_over_time({drill}{window}) or on ({by}) 0 * {total})"


def _sla_up(up: str, sla_up: str, window: str) -> str:
    return f"avg_over_time({sla_up}{window}) or avg_over_time({up}{window})"


def collect_sla(prom: PrometheusClient, period: Period, thresholds: Thresholds) -> SlaFigures:
    at = period.end.timestamp() - EDGE
    window = f"[{period.seconds}s]"
    budget = duration_seconds(thresholds.sla.yearly_outage_budget)
    result = SlaFigures([], thresholds.sla.objective, duration_seconds(thresholds.sla.max_single_outage),
                        duration_seconds(thresholds.sla.restore_within))

    def instant(expr: str) -> dict[str, float]:
        return _by_service(prom.query(expr, at))

    up, sla_up = "einvoice:service_up", "einvoice:service_sla_up"
    step, drill = "einvoice:service_outage_step_seconds", "einvoice:service_drill_outage_step_seconds"
    availability = instant(_sla_up(up, sla_up, window))
    outage = instant(_less_drill(step, drill, window, "service"))
    drill_outage = instant(f"sum_over_time({drill}{window})")
    stall = instant(f"sum_over_time(einvoice:service_stall_step_seconds{window})")
    longest = instant(f"max_over_time(einvoice:service_outage_current_seconds{window})")
    over_limit = instant(f"sum_over_time(einvoice:service_outage_over_limit_event{window})")
    late = prom.query(f"sum by (service, severity_class) "
                      f"(sum_over_time(einvoice:service_restore_late_event{window}))", at)
    ytd_window = f"[{int(period.end.timestamp() - period.year_start().timestamp())}s]"
    ytd = instant(_less_drill(step, drill, ytd_window, "service"))
    first_day_end = period.start.timestamp() + DAY - EDGE
    daily_up = prom.query_range(_sla_up(up, sla_up, "[1d]"), first_day_end, at, DAY)
    daily_down = prom.query_range(_less_drill(step, drill, "[1d]", "service"), first_day_end, at, DAY)
    days = period.days()

    def day_of(ts: float) -> date:
        return period.first + timedelta(days=round((ts - first_day_end) / DAY))

    up_by = {s.labels.get("service", ""): {day_of(t): v for t, v in s.points} for s in daily_up}
    down_by = {s.labels.get("service", ""): {day_of(t): v for t, v in s.points} for s in daily_down}
    for key, service in thresholds.services.items():
        figures = ServiceFigures(key, service.name_zh, budget_seconds=budget)
        if key not in availability:
            result.gaps.append(f"{service.name_zh}（{key}）：本期没有 einvoice:service_up 数据，"
                               "可用率与宕机数字缺失")
        else:
            figures.availability = availability[key]
        figures.outage_seconds = _num(outage.get(key))
        figures.drill_outage_seconds = _num(drill_outage.get(key))
        figures.stall_seconds = _num(stall.get(key))
        figures.longest_outage_seconds = _num(longest.get(key))
        figures.outages_over_limit = round(_num(over_limit.get(key)))
        for sample in late:
            if sample.labels.get("service") == key:
                if sample.labels.get("severity_class") == "stall":
                    figures.restores_late_stall += round(_num(sample.value))
                else:
                    figures.restores_late_outage += round(_num(sample.value))
        figures.ytd_outage_seconds = _num(ytd.get(key))
        figures.daily_availability = [(day, up_by.get(key, {}).get(day)) for day in days]
        figures.daily_outage_seconds = {day: v for day, v in down_by.get(key, {}).items() if day in days}
        result.services.append(figures)
    result.apps = _apps(prom, at, window, thresholds)
    result.systems = _systems(prom, at, window, ytd_window, thresholds)
    return result


def _systems(prom: PrometheusClient, at: float, window: str, ytd_window: str,
             thresholds: Thresholds) -> list[SystemFigures]:
    """Per-system figures from the einvoice:system_* rules (rules_systems.py); a system without
    series in the period has availability None (not a gap: e_signature is watched by no rule)."""

    def by_system(expr: str) -> dict[str, float]:
        return _by_service(prom.query(expr, at), "system")

    step, drill = "einvoice:system_outage_step_seconds", "einvoice:system_drill_outage_step_seconds"
    availability = by_system(f"avg_over_time(einvoice:system_sla_up{window})")
    outage = by_system(_less_drill(step, drill, window, "system"))
    drill_outage = by_system(f"sum_over_time({drill}{window})")
    ytd = by_system(_less_drill(step, drill, ytd_window, "system"))
    return [SystemFigures(key, system.name_zh, system.vendor_scope, availability.get(key),
                          _num(outage.get(key)), _num(drill_outage.get(key)), _num(ytd.get(key)))
            for key, system in thresholds.systems.items()]


def _apps(prom: PrometheusClient, at: float, window: str, thresholds: Thresholds) -> list[AppFigures]:
    """Uptime at the period's end and restarts within it, per application instance (the continuity
    rules' series; an empty list when no application is monitored)."""
    uptime = {s.labels.get("instance", ""): s.value for s in prom.query("einvoice:app_uptime_seconds", at)}
    job = thresholds.continuity.job
    restarts = {s.labels.get("instance", ""): s.value for s in prom.query(
        f'changes(process_start_time_seconds{{job="{job}"}}{window})'
        f" or changes(einvoice:app_start_time_seconds{window})", at)}
    required = duration_seconds(thresholds.continuity.continuous_run)
    return [AppFigures(instance, _num(value), round(_num(restarts.get(instance))), required)
            for instance, value in sorted(uptime.items())]
