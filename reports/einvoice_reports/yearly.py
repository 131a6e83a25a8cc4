"""《年度服务报告总结》: the year's figures against the contract, and month by month.

The year's figures are the monthly report's definitions over the calendar year (Asia/Shanghai);
each month's row is that month's own figures. Months after the generation time are left out; a
month without SLA data is named as a gap."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from einvoice_core.thresholds import DrillWindows, Thresholds

from . import charts, drill, sla, ticketfigures
from .fmt import pct
from .period import REPORT_TZ, Period, parse_period
from .prom import PrometheusClient
from .sla import SlaFigures
from .store import TicketStore
from .ticketfigures import TicketFigures


@dataclass(slots=True)
class MonthRow:
    period: Period
    sla: SlaFigures
    tickets: TicketFigures


@dataclass(slots=True)
class YearlyReport:
    period: Period
    generated_at: datetime
    year_sla: SlaFigures
    year_tickets: TicketFigures
    months: list[MonthRow]
    sources: list[str]
    gaps: list[str] = field(default_factory=list)
    drills: drill.DrillYear | None = None
    """容灾演练 held against the required count (issue 19)."""


def build_yearly(period: Period, prom: PrometheusClient, store: TicketStore, thresholds: Thresholds,
                 now: datetime, drills: DrillWindows | None = None) -> YearlyReport:
    def tickets_of(span: Period) -> TicketFigures:
        records = store.tickets_touching(span.start, span.end)
        return ticketfigures.compute_ticket_figures(records, store.rates(span.start, span.end), span)

    months = []
    gaps: list[str] = []
    for month in range(1, 13):
        span = parse_period(f"{period.first.year:04d}-{month:02d}")
        if span.start >= now:
            break
        figures = sla.collect_sla(prom, span, thresholds)
        gaps.extend(f"{month} 月：{gap}" for gap in figures.gaps)
        months.append(MonthRow(span, figures, tickets_of(span)))
    year_sla = sla.collect_sla(prom, period, thresholds)
    sources = [f"Prometheus HTTP API：{prom.url}（SLA 记录规则 einvoice:service_*）",
               f"工单库：{store.engine.url.render_as_string(hide_password=True)}"]
    drill_figures = drill.drill_year(drills or DrillWindows(), period.first.year, thresholds, now)
    return YearlyReport(period, now, year_sla, tickets_of(period), months, sources, gaps, drill_figures)


def context(report: YearlyReport) -> dict[str, Any]:
    names = [s.name_zh for s in report.year_sla.services]
    labels = [f"{row.period.first.month}月" for row in report.months]
    series = [(name, [row.sla.services[n].availability for row in report.months])
              for n, name in enumerate(names)]
    values = [v for _, vs in series for v in vs if v is not None]
    low = min([*values, report.year_sla.objective])
    y_lo = max(0.0, min(0.99, low - (1 - low) * 0.1))
    availability = charts.line_chart(series, labels, "每月可用率", y_lo, 1.0, lambda v: pct(v, 2),
                                     reference=report.year_sla.objective)
    tickets = charts.bar_chart([(label, float(row.tickets.total.count)) for label, row in
                                zip(labels, report.months, strict=True)], "每月工单数", lambda v: f"{v:.0f}")
    return {"report": report, "period": report.period, "sla": report.year_sla, "tickets": report.year_tickets,
            "gaps": report.gaps, "sources": report.sources, "charts": {"availability": availability,
                                                                          "tickets": tickets},
            "sla_definitions": sla.DEFINITIONS_ZH, "ticket_definitions": ticketfigures.DEFINITIONS_ZH,
            "generated_local": report.generated_at.astimezone(REPORT_TZ)}
