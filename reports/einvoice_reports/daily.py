"""《系统运行监控报告》 (daily): the 20 items with their status at the close of the day, every check
failure of the day with its duration, reason and ticket, and findings.

A failure is a run of consecutive evaluation steps at which `einvoice_check_up == 0` (the query is
evaluated every `step` seconds, the rules' evaluation interval, so an episode is as long as the check
was seen failing, to within one step); its reasons are the `reason` labels whose
einvoice_check_failures_total increased during it. Its ticket is a ticket of the same item whose
problem began between ten minutes before the failure and its end."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from einvoice_core.catalogue import ITEMS
from einvoice_core.contract import REASON_ZH
from einvoice_core.thresholds import Thresholds, duration_seconds

from .fmt import duration
from .period import REPORT_TZ, Period
from .prom import PrometheusClient
from .sla import EDGE
from .store import TicketRecord, TicketStore

TICKET_SLACK = timedelta(minutes=10)
"""A ticket may begin this long before the failure seen at the report's step (the rules' `for:`)."""


@dataclass(slots=True)
class ItemStatus:
    item: str
    name_zh: str
    up: float | None
    """einvoice:item_up at the close of the day; None: no data."""

    @property
    def status_zh(self) -> str:
        if self.up is None:
            return "无数据"
        return "正常" if self.up >= 1 else "异常"


@dataclass(slots=True)
class Failure:
    item: str
    check: str
    target: str
    start: datetime
    end: datetime
    open_at_close: bool
    reasons: list[str]
    tickets: list[int] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    @property
    def reasons_zh(self) -> str:
        return "、".join(REASON_ZH.get(r, r) for r in self.reasons) or "未记录原因"  # type: ignore[call-overload]


@dataclass(slots=True)
class DailyReport:
    period: Period
    generated_at: datetime
    items: list[ItemStatus]
    failures: list[Failure]
    tickets: list[TicketRecord]
    sources: list[str]
    gaps: list[str]
    findings: list[str] = field(default_factory=list)


def _episodes(points: list[tuple[float, float]], step: float) -> list[tuple[float, float]]:
    """(first step, last step + step) of each run of consecutive failing steps."""
    runs: list[tuple[float, float]] = []
    last = None
    for ts, _ in sorted(points):
        if runs and last is not None and ts - last <= step * 1.5:
            runs[-1] = (runs[-1][0], ts + step)
        else:
            runs.append((ts, ts + step))
        last = ts
    return runs


def collect_failures(prom: PrometheusClient, period: Period, step: float) -> list[Failure]:
    start, end = period.start.timestamp(), period.end.timestamp() - EDGE
    failing = prom.query_range("einvoice_check_up == 0", start, end, step)
    failures: list[Failure] = []
    for series in failing:
        labels = series.labels
        for first, last in _episodes(series.points, step):
            close = min(last, period.end.timestamp())
            window = max(int(close - first + step), 1)
            selector = ",".join(f'{k}="{labels.get(k, "")}"' for k in ("item", "check", "target"))
            reasons = prom.query(f"increase(einvoice_check_failures_total{{{selector}}}[{window}s]) > 0",
                                 close - EDGE)
            failures.append(Failure(
                labels.get("item", ""), labels.get("check", ""), labels.get("target", ""),
                datetime.fromtimestamp(first, UTC), datetime.fromtimestamp(close, UTC),
                last >= period.end.timestamp() - EDGE,
                sorted({s.labels.get("reason", "") for s in reasons} - {""})))
    failures.sort(key=lambda f: (f.start, f.item, f.check, f.target))
    return failures


def build_daily(period: Period, prom: PrometheusClient, store: TicketStore, thresholds: Thresholds,
                now: datetime) -> DailyReport:
    at = period.end.timestamp() - EDGE
    status = {s.labels.get("item", ""): s.value for s in prom.query("min by (item) (einvoice:item_up)", at)}
    items = [ItemStatus(item.id, item.name_zh, status.get(item.id)) for item in ITEMS]
    step = duration_seconds(thresholds.evaluation_interval)
    failures = collect_failures(prom, period, step)
    records = [t for t in store.tickets_touching(period.start, period.end)
               if period.start <= t.starts_at < period.end]
    for failure in failures:
        failure.tickets = [t.id for t in records if t.item == failure.item
                           and failure.start - TICKET_SLACK <= t.starts_at <= failure.end]
    gaps = []
    missing = [i.item for i in items if i.up is None]
    if missing:
        gaps.append(f"以下监控项日终没有 einvoice:item_up 数据，状态未知：{'、'.join(missing)}")
    sources = [f"Prometheus HTTP API：{prom.url}（einvoice:item_up、einvoice_check_up、"
               f"einvoice_check_failures_total，步长 {step:g} 秒）",
               f"工单库：{store.engine.url.render_as_string(hide_password=True)}"]
    report = DailyReport(period, now, items, failures, records, sources, gaps)
    report.findings = findings(report)
    return report


def findings(report: DailyReport) -> list[str]:
    out = []
    abnormal = [i for i in report.items if i.up is not None and i.up < 1]
    if abnormal:
        out.append("日终状态异常的监控项：" + "、".join(f"第{i.item}项 {i.name_zh}" for i in abnormal)
                   + "，请跟踪处理。")
    if report.failures:
        total = sum(f.seconds for f in report.failures)
        out.append(f"本日检查失败 {len(report.failures)} 次，累计 {duration(total)}。")
        longest = max(report.failures, key=lambda f: f.seconds)
        out.append(f"最长一次：第{longest.item}项 {longest.check}（{longest.target}）"
                   f"{duration(longest.seconds)}，"
                   f"原因：{longest.reasons_zh}。")
        orphans = [f for f in report.failures if not f.tickets]
        if orphans:
            out.append(f"{len(orphans)} 次失败没有对应工单（可能短于告警持续时间）：建议巡检时复核。")
    if not out:
        out.append("本日 20 项监控均正常，无检查失败。")
    return out


def context(report: DailyReport) -> dict[str, Any]:
    return {"report": report, "period": report.period, "gaps": report.gaps, "sources": report.sources,
            "generated_local": report.generated_at.astimezone(REPORT_TZ)}
