"""故障定责证据包 (scorecard line 11, ★4(3)): what the bundle saw around one fault, so the ops
department can decide who it came from.

For the incident window (the fault's start − 30 min to its end + 30 min; an unresolved fault ends
"now") the pack holds, read from Prometheus' HTTP API:
- the probes of the partner interfaces (items 08 安全接入/统一受理/版式文件前置转发, 19 数据同步接口,
  20 外围接口): `einvoice_check_up` of their checks;
- the network beside ours: DNS resolution (`probe_dns_query_succeeded`), TCP connects (`probe_success`
  of checks that are neither HTTP nor DNS), and whether Prometheus could scrape the exporters (`up`);
and from the ticket store: the ticket, the fault record (owner, system, evidence note) and the
ticket's timeline. Each series is summarised (samples failing, first and last failure) and drawn.
Everything from the ticket store has passed the redaction."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from einvoice_notifier.registers import FaultView
from einvoice_notifier.service import ACTION_ZH

from einvoice_core.catalogue import ITEMS

from . import charts, records, render
from .errors import ReportError, SourceUnavailableError
from .period import REPORT_TZ
from .prom import PrometheusClient, Series
from .store import TicketRecord, TicketStore, TimelineEntry

if TYPE_CHECKING:
    from .cli import Options, Outcome

KIND = "evidence"
TITLE = "故障定责证据包"
MARGIN = timedelta(minutes=30)
"""The incident window reaches this far before the fault's start and after its end."""
MAX_POINTS = 240
"""At most this many points per series: the step is the window over this, rounded up to 15 s."""
PARTNER_ITEMS = ("08", "19", "20")
GROUPS: tuple[tuple[str, str, str], ...] = (
    ("partner", "外围与合作方接口探测（第08、19、20项）",
     f'einvoice_check_up{{item=~"{"|".join(PARTNER_ITEMS)}"}}'),
    ("dns", "DNS 解析（本系统之外的网络）", "probe_dns_query_succeeded"),
    ("tcp", "TCP 连通（本系统之外的网络）",
     "probe_success unless on (item, check, target) (probe_http_status_code or probe_dns_query_succeeded)"),
    ("up", "采集端存活（Prometheus 抓取 up）", "up"),
)
"""(key, Chinese title, PromQL) of each group of series in the pack: 1 good, 0 failing."""
ITEM_NAMES = {item.id: item.name_zh for item in ITEMS}


@dataclass(slots=True)
class SeriesSummary:
    name: str
    samples: int
    failing: int
    first_failure: datetime | None
    last_failure: datetime | None
    values: list[float | None]


@dataclass(slots=True)
class Group:
    key: str
    title: str
    query: str
    series: list[SeriesSummary] = field(default_factory=list)
    chart: str = ""


@dataclass(slots=True)
class EvidencePack:
    ticket: TicketRecord
    timeline: list[TimelineEntry]
    fault: FaultView | None
    start: datetime
    end: datetime
    step: float
    groups: list[Group]
    generated_at: datetime
    sources: list[str]
    gaps: list[str]

    @property
    def failing_groups(self) -> list[str]:
        return [g.title for g in self.groups if any(s.failing for s in g.series)]


def _name(labels: dict[str, str]) -> str:
    item = labels.get("item", "")
    parts = [f"第{item}项" if item else "", labels.get("check", ""), labels.get("target", "")]
    if not any(parts):
        parts = [labels.get("job", ""), labels.get("instance", "")]
    return " ".join(p for p in parts if p) or "（无标签）"


def _summary(series: Series, times: list[float]) -> SeriesSummary:
    by_time = {round(t, 3): v for t, v in series.points}
    values: list[float | None] = [by_time.get(round(t, 3)) for t in times]
    failing = [t for t, v in series.points if v == 0]
    first = datetime.fromtimestamp(failing[0], REPORT_TZ) if failing else None
    last = datetime.fromtimestamp(failing[-1], REPORT_TZ) if failing else None
    return SeriesSummary(_name(series.labels), len(series.points), len(failing), first, last, values)


def incident_window(ticket: TicketRecord, now: datetime) -> tuple[datetime, datetime]:
    """From the fault's start − 30 min to its resolution (now, while unresolved) + 30 min, never
    reaching past `now`."""
    end = ticket.resolved_at or now
    return ticket.starts_at - MARGIN, min(end + MARGIN, now)


def build_evidence(ticket_id: int, prom: PrometheusClient, store: TicketStore, now: datetime) -> EvidencePack:
    ticket, timeline = store.ticket(ticket_id)
    fault = records.faults(store, [ticket_id]).get(ticket_id)
    start, end = incident_window(ticket, now)
    if end <= start:
        raise ReportError(f"工单 #{ticket_id} 的事件窗口为空（开始 {start:%Y-%m-%d %H:%M}）")
    step = 15.0 * max(1, math.ceil((end - start).total_seconds() / MAX_POINTS / 15))
    count = int((end - start).total_seconds() // step) + 1
    times = [round(start.timestamp() + n * step, 3) for n in range(count)]
    labels = [datetime.fromtimestamp(t, REPORT_TZ).strftime("%H:%M") for t in times]
    groups: list[Group] = []
    gaps: list[str] = []
    for key, title, query in GROUPS:
        group = Group(key, title, query)
        try:
            found = prom.query_range(query, times[0], times[-1], step)
        except SourceUnavailableError:
            raise
        except ReportError as exc:
            gaps.append(f"{title}：查询失败（{exc}）")
            found = []
        group.series = [_summary(series, times) for series in sorted(found, key=lambda s: _name(s.labels))]
        if not group.series:
            gaps.append(f"{title}：事件窗口内没有数据")
        else:
            group.chart = charts.line_chart([(s.name, s.values) for s in group.series[:5]], labels, title,
                                            0.0, 1.0, lambda v: f"{v:.0f}")
        groups.append(group)
    store_url = store.engine.url.render_as_string(hide_password=True)
    sources = [f"Prometheus HTTP API：{prom.url}（步长 {step:.0f} 秒）",
               f"工单库：{store_url}（工单 #{ticket_id}、故障定责记录与审计记录）"]
    return EvidencePack(ticket, timeline, fault, start, end, step, groups, now, sources, gaps)


def context(pack: EvidencePack) -> dict[str, Any]:
    return {"pack": pack, "gaps": pack.gaps, "sources": pack.sources, "action_zh": ACTION_ZH,
            "subtitle": f"工单 #{pack.ticket.id}", "title": TITLE, "item_names": ITEM_NAMES,
            "generated_local": pack.generated_at.astimezone(REPORT_TZ)}


def produce(options: Options) -> Outcome:
    from .cli import Outcome

    assert options.ticket is not None
    pack = build_evidence(options.ticket, PrometheusClient(options.prometheus), TicketStore(options.store),
                          options.now)
    html = render.render_html("evidence.html.j2", context(pack))
    label = f"ticket-{options.ticket}"
    files = [render.write_atomic(render.archive_path(options.out, KIND, label, "html"), html.encode())]
    if "pdf" in options.formats:
        files.append(render.write_atomic(render.archive_path(options.out, KIND, label, "pdf"),
                                         render.html_to_pdf(html)))
    return Outcome(files, pack.gaps)
