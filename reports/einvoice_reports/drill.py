"""容灾演练报告 (seed §二.9, issue 19): what one declared drill window shows in the data.

All figures come from Prometheus' stored samples (their own timestamps, not a resampled grid):

- 故障开始: the first sample in the window at which a check fails (`einvoice_check_up == 0`) that
  was not already failing when the window opened; the window's start when none does;
- 发现用时: from the fault's start to the first alert firing (`ALERTS{alertstate="firing"}`) that was
  not already firing before the window (an alert is keyed without its `drill` label, which changes
  at the window's edge);
- 恢复用时: from the fault's start to the first evaluation at which every service that went down in
  the window is up again (`einvoice:service_up`), looked for until sla.max_single_outage after the
  window's end;
- 演练宕机: `sum_over_time(einvoice:service_outage_step_seconds[window])` per service and the same of
  `einvoice:system_outage_step_seconds` per system: inside the window all outage is drill outage;
- the alerts firing in the window, with their first firing time and whether they carried
  `drill="true"` (an alert that began after the window is not the drill's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from einvoice_core.contract import DRILL_LABEL
from einvoice_core.thresholds import DrillWindow, DrillWindows, Thresholds, duration_seconds

from .errors import ReportError
from .period import REPORT_TZ
from .prom import PrometheusClient, Series
from .sla import EDGE

DEFAULT_WINDOWS = Path(__file__).resolve().parents[2] / "alert_rules" / "drill_windows.yml"
"""The windows file of a source checkout; deployments pass --drill-windows."""
KEY_DROP = frozenset({"__name__", "alertstate", DRILL_LABEL})
SHOWN_LABELS = ("service", "system", "item", "check", "target", "severity")

DEFINITIONS_ZH: tuple[tuple[str, str], ...] = (
    ("故障开始", "演练窗口内第一次出现检查失败（einvoice_check_up 为 0，窗口开始时已在失败的检查除外）"
                 "的时刻；窗口内没有检查失败时取窗口开始时刻。"),
    ("发现用时", "故障开始到第一条告警触发（ALERTS{alertstate=\"firing\"} 的第一个样本）的时长；"
                 "演练开始前已在触发的告警不计。"),
    ("恢复用时", "故障开始到窗口内宕机过的所有业务服务重新可用（einvoice:service_up 全部为 1）的时长；"
                 "在窗口结束后最长再看 2 小时（单次宕机上限）。"),
    ("演练宕机", "窗口内 einvoice:service_outage_step_seconds（按服务）与 einvoice:system_outage_step_seconds"
                 "（按系统）之和；这些时间不计入年度宕机预算。"),
)


@dataclass(frozen=True, slots=True)
class AlertSeen:
    alertname: str
    labels: dict[str, str]
    first_firing: datetime
    marked_drill: bool
    before_window: bool
    """Already firing before the window opened: not counted for detection."""


@dataclass(slots=True)
class DrillReport:
    window: DrillWindow
    start: datetime
    end: datetime
    generated_at: datetime
    fault_start: datetime
    fault_from_check: str | None
    """`item · check · target` of the first failing check, None when the window's start is used."""
    first_alert: AlertSeen | None
    recovered_at: datetime | None
    services_down: list[str]
    service_outage: dict[str, float]
    system_outage: dict[str, float]
    alerts: list[AlertSeen]
    sources: list[str]
    gaps: list[str] = field(default_factory=list)

    @property
    def detection_seconds(self) -> float | None:
        if self.first_alert is None:
            return None
        return (self.first_alert.first_firing - self.fault_start).total_seconds()

    @property
    def recovery_seconds(self) -> float | None:
        return None if self.recovered_at is None else (self.recovered_at - self.fault_start).total_seconds()

    @property
    def label(self) -> str:
        """Archive name: drill-<local start>, safe as a file name whatever the window's name."""
        return "drill-" + self.start.astimezone(REPORT_TZ).strftime("%Y%m%dT%H%M")


def _at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _first_new(series: list[Series], start: float) -> list[tuple[float, Series]]:
    """(first sample at or after start, series) of the series with no sample before start."""
    out = []
    for s in series:
        if s.points and s.points[0][0] >= start:
            out.append((s.points[0][0], s))
    return sorted(out, key=lambda pair: pair[0])


def _fault_start(prom: PrometheusClient, start: float, end: float,
                 lookback: float) -> tuple[float, str | None]:
    checks = prom.raw("einvoice_check_up", start - lookback, end - EDGE)
    # a check that was failing when the window opened was not failed by the drill
    already = set()
    for s in checks:
        before = [v for t, v in s.points if t < start]
        if before and before[-1] == 0:
            already.add(_identity(s.labels))
    first: tuple[float, str | None] = (start, None)
    for s in checks:
        if _identity(s.labels) in already:
            continue
        inside = [t for t, v in s.points if start <= t < end and v == 0]
        if inside and (first[1] is None or inside[0] < first[0]):
            labels = s.labels
            first = (inside[0], " · ".join(labels.get(k, "") for k in ("item", "check", "target")))
    return first


def _identity(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in labels.items() if k not in KEY_DROP))


def _alerts(prom: PrometheusClient, start: float, end: float, lookback: float) -> list[AlertSeen]:
    """The alerts firing in the window, keyed without `drill`; one already firing in the `lookback`
    before the window opened is marked before_window (its first_firing is then the first sample of
    that lookback, not when it began)."""
    raw = prom.raw('ALERTS{alertstate="firing"}', start - lookback, end - EDGE)
    first: dict[tuple[tuple[str, str], ...], tuple[float, bool, dict[str, str]]] = {}
    for s in raw:
        if not s.points:
            continue
        key = _identity(s.labels)
        t = s.points[0][0]
        drill = s.labels.get(DRILL_LABEL) == "true"
        seen = first.get(key)
        if seen is None or t < seen[0]:
            first[key] = (t, drill or (seen[1] if seen else False), s.labels)
        elif drill:
            first[key] = (seen[0], True, seen[2])
    out = []
    for t, drill, labels in first.values():
        shown = {k: labels[k] for k in SHOWN_LABELS if labels.get(k)}
        out.append(AlertSeen(labels.get("alertname", ""), shown, _at(t), drill, t < start))
    return sorted(out, key=lambda a: (a.first_firing, a.alertname, sorted(a.labels.items())))


def _recovery(prom: PrometheusClient, start: float, end: float,
              until: float) -> tuple[list[str], float | None]:
    """(services down in the window, time all of them were up again or None)."""
    series = prom.raw("einvoice:service_up", start, until)
    down_services = []
    recovered: float | None = None
    for s in series:
        down = [t for t, v in s.points if v == 0 and start <= t < end]
        if not down:
            continue
        down_services.append(s.labels.get("service", ""))
        last_down = max(down)
        after = [t for t, v in s.points if t > last_down and v == 1]
        if not after:
            return sorted(down_services), None
        recovered = after[0] if recovered is None else max(recovered, after[0])
    return sorted(down_services), recovered


def find_window(drills: DrillWindows, name: str) -> DrillWindow:
    window = drills.find(name)
    if window is None:
        known = "、".join(w.name for w in drills.windows) or "（无）"
        raise ReportError(f"drill_windows.yml 中没有名为“{name}”的演练窗口；已登记：{known}")
    return window


def build_drill(window: DrillWindow, prom: PrometheusClient, thresholds: Thresholds,
                now: datetime) -> DrillReport:
    start_s, end_s = window.bounds(thresholds.routing.location)
    if end_s > now.timestamp():
        raise ReportError(f"演练窗口“{window.name}”尚未结束（结束于 "
                          f"{_at(end_s).astimezone(REPORT_TZ):%Y-%m-%d %H:%M}），演练结束后再生成报告")
    tail = duration_seconds(thresholds.sla.max_single_outage)
    until = min(end_s + tail, now.timestamp())
    lookback = duration_seconds(thresholds.sla.max_gap)
    fault, fault_check = _fault_start(prom, start_s, end_s, lookback)
    alerts = _alerts(prom, start_s, end_s, lookback)
    new = [a for a in alerts if not a.before_window and a.first_firing.timestamp() >= fault]
    down, recovered = _recovery(prom, start_s, end_s, until)
    window_range = f"[{end_s - start_s}s]"
    at = end_s - EDGE

    def outage(step: str, key: str) -> dict[str, float]:
        samples = prom.query(f"sum_over_time({step}{window_range})", at)
        return {s.labels.get(key, ""): s.value for s in samples}

    report = DrillReport(
        window, _at(start_s), _at(end_s), now, _at(fault), fault_check, new[0] if new else None,
        _at(recovered) if recovered is not None else None, down,
        outage("einvoice:service_outage_step_seconds", "service"),
        outage("einvoice:system_outage_step_seconds", "system"), alerts,
        [f"Prometheus HTTP API：{prom.url}"
         "（einvoice_check_up、ALERTS、einvoice:service_*、einvoice:system_*）",
         "演练窗口：alert_rules/drill_windows.yml"])
    if not report.service_outage:
        report.gaps.append("演练窗口内没有 einvoice:service_outage_step_seconds 数据，演练宕机时长缺失")
    if down and recovered is None:
        report.gaps.append(f"服务 {'、'.join(down)} 在窗口结束后 {tail / 3600:g} 小时内没有恢复，"
                           "恢复用时未能计算")
    return report


def context(report: DrillReport, thresholds: Thresholds) -> dict[str, Any]:
    services = {key: s.name_zh for key, s in thresholds.services.items()}
    systems = {key: s.name_zh for key, s in thresholds.systems.items()}
    local = report.start.astimezone(REPORT_TZ)
    return {
        "report": report, "services": services, "systems": systems,
        "restore_within": duration_seconds(thresholds.sla.restore_within),
        "definitions": DEFINITIONS_ZH, "gaps": report.gaps, "sources": report.sources,
        "subtitle": f"{report.window.name}（{local:%Y-%m-%d %H:%M} 起）",
        "generated_local": report.generated_at.astimezone(REPORT_TZ),
    }


@dataclass(frozen=True, slots=True)
class DrillYear:
    """The year's drills against the contract's minimum (seed §二.9: 每年至少 2 次), from the declared
    windows; a drill belongs to the local year it starts in, as in the rules' yearly count."""

    year: int
    required: int
    declared: list[tuple[DrillWindow, datetime, datetime]]
    held: int

    @property
    def met(self) -> bool:
        return self.held >= self.required


def drill_year(drills: DrillWindows, year: int, thresholds: Thresholds, now: datetime) -> DrillYear:
    declared = []
    for window in sorted(drills.windows, key=lambda w: w.bounds(thresholds.routing.location)):
        start, end = (_at(t) for t in window.bounds(thresholds.routing.location))
        if start.astimezone(REPORT_TZ).year == year:
            declared.append((window, start, end))
    held = sum(1 for _, _, end in declared if end <= now)
    return DrillYear(year, thresholds.drills.required_per_year, declared, held)


def load_windows(path: Path | None) -> DrillWindows:
    """The drill windows file (--drill-windows, else the checkout's alert_rules/drill_windows.yml)."""
    from einvoice_core.thresholds import ThresholdsError, load_drill_windows

    target = path or DEFAULT_WINDOWS
    if path is None and not target.is_file():
        return DrillWindows()
    try:
        return load_drill_windows(target)
    except ThresholdsError as exc:
        raise ReportError(str(exc)) from exc
