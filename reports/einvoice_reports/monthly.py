"""《月度系统运维报告》: the month's tickets, SLA figures and recommendations derived from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from einvoice_core.catalogue import ITEMS
from einvoice_core.thresholds import Thresholds, shipped

from . import charts, sla, ticketfigures
from .fmt import duration, pct
from .period import REPORT_TZ, Period
from .prom import PrometheusClient
from .sla import SlaFigures
from .store import TicketStore
from .ticketfigures import TicketFigures

"""SPEC §3 #10: 本级解决率 ≥ 80 % (escalated ≤ 20 %)."""
TICKETS_PER_ITEM_NOTICE = 3
"""An item with at least this many tickets in a month gets a recommendation of its own."""
ITEM_NAMES = {item.id: item.name_zh for item in ITEMS}


@dataclass(slots=True)
class MonthlyReport:
    period: Period
    generated_at: datetime
    sla: SlaFigures
    tickets: TicketFigures
    sources: list[str]
    recommendations: list[str] = field(default_factory=list)

    @property
    def gaps(self) -> list[str]:
        return self.sla.gaps


def recommendations(sla_figures: SlaFigures, tickets: TicketFigures, budget_warning: float) -> list[str]:
    """Rule-based sentences, one per finding, in the order the contract weighs them."""
    out: list[str] = []
    for s in sla_figures.services:
        if s.availability is not None and s.availability < sla_figures.objective:
            out.append(f"{s.name_zh}本期可用率 {pct(s.availability, 3)}，"
                       f"低于合同年度目标 {pct(sla_figures.objective, 3)}（全年累计宕机不超过 12 小时）："
                       "建议逐次复盘本期宕机工单，对根因制定整改计划。")
        if s.outages_over_limit:
            out.append(f"{s.name_zh}本期有 {s.outages_over_limit} 次单次宕机超过 2 小时（合同上限），"
                       f"最长一次 {duration(s.longest_outage_seconds)}："
                       "建议演练该服务的应急切换预案，缩短恢复时间。")
        late = s.restores_late_outage + s.restores_late_stall
        if late:
            out.append(f"{s.name_zh}本期有 {late} 次故障未在 30 分钟内恢复"
                       f"（宕机 {s.restores_late_outage} 次、卡顿 {s.restores_late_stall} 次）："
                       "建议检查二线响应与升级流程是否及时。")
        if s.budget_left_ratio < budget_warning:
            out.append(f"{s.name_zh}本年度宕机预算仅剩 {duration(s.budget_left_seconds)}"
                       f"（{pct(s.budget_left_ratio, 1)}）："
                       "建议年内从严审批变更，变更安排在低峰时段并准备回退方案。")
        if s.stall_seconds >= sla_figures.restore_within_seconds:
            out.append(f"{s.name_zh}本期卡顿累计 {duration(s.stall_seconds)}："
                       "建议结合专项健康检查排查性能与容量瓶颈。")
    for y in sla_figures.systems:  # issue 19: the bureau scores each system
        if y.vendor_scope and y.availability is not None and y.availability < sla_figures.objective:
            out.append(f"{y.name_zh}本期可用率 {pct(y.availability, 3)}，低于合同年度目标"
                       f" {pct(sla_figures.objective, 3)}：建议按系统复盘宕机原因并明确故障归属。")
    total = tickets.total
    if total.response.missed:
        out.append(f"本期有 {total.response.missed} 张工单未在响应时限内响应："
                   "建议核对驻场排班与告警通知渠道。")
    if total.resolution.missed:
        out.append(f"本期有 {total.resolution.missed} 张工单未在解决时限内解决："
                   "建议对超时工单逐一说明原因，必要时提前转二线。")
    local, target = tickets.rates.local_ratio, shipped().tickets.local_resolution_min
    if local is not None and local < target:
        out.append(f"本级解决率 {pct(local, 1)}，低于合同要求的 {pct(target, 0)}："
                   "建议整理常见问题处理手册并加强驻场人员培训。")
    if tickets.rates.recurred:
        out.append(f"本期解决的工单中有 {tickets.rates.recurred} 张的问题在 30 天内再次发生："
                   "建议对复发问题做根因分析，避免只处理表象。")
    per_item: dict[str, int] = {}
    for (_, item), count in tickets.by_class_item.items():
        per_item[item] = per_item.get(item, 0) + count
    for item, count in sorted(per_item.items(), key=lambda kv: (-kv[1], kv[0])):
        if count >= TICKETS_PER_ITEM_NOTICE and item in ITEM_NAMES:
            out.append(f"第{item}项（{ITEM_NAMES[item]}）本期工单 {count} 张，为问题集中项："
                       "建议安排专项健康检查。")
    if not out:
        out.append("本期各项指标均达到合同要求：建议保持现有巡检频次与值守安排。")
    return out


def build_monthly(period: Period, prom: PrometheusClient, store: TicketStore, thresholds: Thresholds,
                  now: datetime) -> MonthlyReport:
    sla_figures = sla.collect_sla(prom, period, thresholds)
    records = store.tickets_touching(period.start, period.end)
    rates = store.rates(period.start, period.end)
    figures = ticketfigures.compute_ticket_figures(records, rates, period)
    sources = [f"Prometheus HTTP API：{prom.url}（SLA 记录规则 einvoice:service_*）",
               f"工单库：{store.engine.url.render_as_string(hide_password=True)}（告警工单系统）"]
    report = MonthlyReport(period, now, sla_figures, figures, sources)
    report.recommendations = recommendations(sla_figures, figures,
                                             thresholds.sla.budget_remaining_warning_ratio)
    return report


def monthly_charts(report: MonthlyReport) -> dict[str, str]:
    services = report.sla.services
    labels = [f"{day.day}" for day in report.period.days()]
    values = [v for s in services for _, v in s.daily_availability if v is not None]
    low = min([*values, report.sla.objective])
    y_lo = max(0.0, min(0.99, low - (1 - low) * 0.1))
    availability = charts.line_chart(
        [(s.name_zh, [v for _, v in s.daily_availability]) for s in services], labels,
        "每日可用率", y_lo, 1.0, lambda v: pct(v, 2), reference=report.sla.objective)
    weekly = charts.bar_chart([(f"{monday.month}/{monday.day}", float(n))
                               for monday, n in report.tickets.weekly],
                              "每周工单数", lambda v: f"{v:.0f}")
    return {"availability": availability, "weekly": weekly}


def context(report: MonthlyReport) -> dict[str, Any]:
    return {
        "report": report, "period": report.period, "sla": report.sla, "tickets": report.tickets,
        "charts": monthly_charts(report), "item_names": ITEM_NAMES,
        "sla_definitions": sla.DEFINITIONS_ZH, "ticket_definitions": ticketfigures.DEFINITIONS_ZH,
        "generated_local": report.generated_at.astimezone(REPORT_TZ),
    }
