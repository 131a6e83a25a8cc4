"""《运维周报》 (scorecard line 10 names 周报): one ISO week (Monday to Sunday, Beijing time) of tickets,
faults by owner, changes, vulnerabilities, complaints and the availability of each service.

The figures follow the monthly report's definitions over the week (ticketfigures, sla); drill
tickets are listed apart; faults are outage tickets and declared major incidents, with the owner the
ops department recorded (or 尚未定责)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from einvoice_notifier.registers import ChangeView, ComplaintView, FaultView, VulnerabilityView

from einvoice_core.contract import FAULT_OWNER_ZH, FaultOwner
from einvoice_core.thresholds import load_thresholds

from . import records, render, sla, ticketfigures
from .period import REPORT_TZ, Period
from .prom import PrometheusClient
from .scorecard import is_fault
from .store import TicketRecord, TicketStore

if TYPE_CHECKING:
    from .cli import Options, Outcome

KIND = "weekly"
TITLE = "运维周报"
UNDECIDED_ZH = "尚未定责"


@dataclass(slots=True)
class WeeklyReport:
    period: Period
    sla: sla.SlaFigures
    tickets: ticketfigures.TicketFigures
    faults: list[tuple[TicketRecord, FaultView | None]]
    owners: list[tuple[str, int]]
    """(owner in Chinese, faults) for the week's faults, in FaultOwner order, undecided last."""
    changes: list[ChangeView]
    vulnerabilities_found: list[VulnerabilityView]
    vulnerabilities_open: list[VulnerabilityView]
    complaints: list[ComplaintView]
    generated_at: datetime
    sources: list[str]
    gaps: list[str]


def build_weekly(period: Period, prom: PrometheusClient, store: TicketStore, now: datetime) -> WeeklyReport:
    thresholds = load_thresholds()
    sla_figures = sla.collect_sla(prom, period, thresholds)
    found = store.tickets_touching(period.start, period.end)
    figures = ticketfigures.compute_ticket_figures(found, store.rates(period.start, period.end), period)
    faults = [t for t in figures.tickets if is_fault(t)]
    owners = records.faults(store, [t.id for t in faults])
    pairs = [(t, owners.get(t.id)) for t in faults]
    counted = Counter(FAULT_OWNER_ZH[FaultOwner(f.owner)] if f is not None else UNDECIDED_ZH
                      for _, f in pairs)
    order = [*FAULT_OWNER_ZH.values(), UNDECIDED_ZH]
    changes = records.changes_between(store, period.start, period.end)
    vulns = records.vulnerabilities_until(store, period.last)
    complaints = records.complaints_between(store, period.first, period.last)
    store_url = store.engine.url.render_as_string(hide_password=True)
    sources = [f"Prometheus HTTP API：{prom.url}",
               f"工单库：{store_url}（工单、故障定责、变更、漏洞、投诉登记）"]
    return WeeklyReport(
        period, sla_figures, figures, pairs, [(name, counted[name]) for name in order if counted[name]],
        changes, [v for v in vulns if period.first <= v.found_on <= period.last],
        [v for v in vulns if v.hardened_at is None], complaints, now, sources, list(sla_figures.gaps))


def context(report: WeeklyReport) -> dict[str, Any]:
    return {"report": report, "period": report.period, "sla": report.sla, "tickets": report.tickets,
            "title": TITLE, "gaps": report.gaps, "sources": report.sources,
            "generated_local": report.generated_at.astimezone(REPORT_TZ),
            "ticket_definitions": ticketfigures.DEFINITIONS_ZH, "now": report.generated_at}


def produce(options: Options) -> Outcome:
    from .cli import Outcome

    report = build_weekly(options.span, PrometheusClient(options.prometheus), TicketStore(options.store),
                          options.now)
    html = render.render_html("weekly.html.j2", context(report))
    label = options.span.label
    files = [render.write_atomic(render.archive_path(options.out, KIND, label, "html"), html.encode())]
    if "pdf" in options.formats:
        files.append(render.write_atomic(render.archive_path(options.out, KIND, label, "pdf"),
                                         render.html_to_pdf(html)))
    return Outcome(files, report.gaps)
