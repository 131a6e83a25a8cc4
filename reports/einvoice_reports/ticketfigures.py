"""Ticket figures of a period, from the ticket store.

Definitions (stated in the report too):
- tickets of the period: those whose problem began (starts_at) in the period;
- response met: acknowledged no later than the response deadline; missed: acknowledged later, or
  not acknowledged and the deadline passed before the period's end; not yet due otherwise;
- resolution met: resolved no later than the resolution deadline; missed likewise;
- MTTA: mean of acknowledged_at − starts_at over the period's acknowledged tickets;
- MTTR: mean of resolved_at − starts_at over the period's resolved tickets;
- 本级解决率 / 一次性解决率: the notifier's own definition (einvoice_notifier.service.resolution_rates).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from einvoice_notifier.service import ResolutionRates

from einvoice_core.contract import TICKET_CLASS_ZH, TicketClass

from .period import REPORT_TZ, Period
from .store import TicketRecord

DEFINITIONS_ZH: tuple[tuple[str, str], ...] = (
    ("本期工单", "问题开始时间（starts_at）在本期内的工单。"),
    ("响应时限达成",
     "在响应时限前响应（acknowledged_at ≤ 响应时限）；超时响应或至期末仍未响应且已过时限为未达成；"
     "期末尚未到期且未响应的不计入。"),
    ("解决时限达成", "在解决时限前解决（resolved_at ≤ 解决时限），其余同上。"),
    ("MTTA", "平均响应时间：响应时间 − 问题开始时间，按本期已响应工单平均。"),
    ("MTTR", "平均解决时间：解决时间 − 问题开始时间，按本期已解决工单平均。"),
    ("本级解决率", "本期关闭的工单中，关闭人确认本级解决且未升级二线的比例（工单系统口径）。"),
    ("一次性解决率",
     "本期解决的工单中，30 天内同一问题未再次发生的比例；期末后 30 天内的复发仍可能降低本期数值。"),
    ("演练工单", "在已申报的灾备演练窗口内触发的告警（drill=\"true\"）所建工单，单独列出，不计入以上各项。"),
)

CLASS_ORDER: tuple[TicketClass, ...] = (TicketClass.OUTAGE, TicketClass.STALL, TicketClass.URGENT,
                                        TicketClass.GENERAL, TicketClass.ROUTINE)


@dataclass(frozen=True, slots=True)
class DeadlineCount:
    met: int = 0
    missed: int = 0
    pending: int = 0

    @property
    def ratio(self) -> float | None:
        due = self.met + self.missed
        return self.met / due if due else None


@dataclass(slots=True)
class ClassFigures:
    severity_class: str
    name_zh: str
    count: int = 0
    response: DeadlineCount = field(default_factory=DeadlineCount)
    resolution: DeadlineCount = field(default_factory=DeadlineCount)
    mtta_seconds: float | None = None
    mttr_seconds: float | None = None


@dataclass(slots=True)
class TicketFigures:
    tickets: list[TicketRecord]
    """The period's tickets (problem began in the period)."""
    by_class: list[ClassFigures]
    total: ClassFigures
    by_class_item: dict[tuple[str, str], int]
    items: list[str]
    rates: ResolutionRates
    weekly: list[tuple[date, int]]
    """(Monday of the week, tickets begun that week within the period)."""
    end: datetime
    drills: list[TicketRecord] = field(default_factory=list)
    """The period's drill tickets (a declared disaster-recovery drill), kept out of every figure above."""

    @property
    def missed(self) -> list[TicketRecord]:
        """The period's tickets that missed their response or resolution deadline."""
        return [t for t in self.tickets if "missed" in deadline_states(t, self.end)]


def _response_state(ticket: TicketRecord, end: datetime) -> str:
    if ticket.acknowledged_at is not None:
        return "met" if ticket.acknowledged_at <= ticket.response_deadline else "missed"
    return "missed" if ticket.response_deadline < end or ticket.response_breached else "pending"


def _resolution_state(ticket: TicketRecord, end: datetime) -> str:
    if ticket.resolved_at is not None:
        return "met" if ticket.resolved_at <= ticket.resolution_deadline else "missed"
    return "missed" if ticket.resolution_deadline < end or ticket.resolution_breached else "pending"


def deadline_states(ticket: TicketRecord, end: datetime) -> tuple[str, str]:
    """("met" | "missed" | "pending") for the response and the resolution deadline at `end`."""
    return _response_state(ticket, end), _resolution_state(ticket, end)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _class_figures(key: str, name: str, group: list[TicketRecord], end: datetime) -> ClassFigures:
    response = Counter(_response_state(t, end) for t in group)
    resolution = Counter(_resolution_state(t, end) for t in group)
    return ClassFigures(
        key, name, len(group),
        DeadlineCount(response["met"], response["missed"], response["pending"]),
        DeadlineCount(resolution["met"], resolution["missed"], resolution["pending"]),
        _mean([(t.acknowledged_at - t.starts_at).total_seconds() for t in group if t.acknowledged_at]),
        _mean([(t.resolved_at - t.starts_at).total_seconds() for t in group if t.resolved_at]))


def compute_ticket_figures(records: list[TicketRecord], rates: ResolutionRates,
                           period: Period) -> TicketFigures:
    start, end = period.start, period.end
    in_period = [t for t in records if start <= t.starts_at < end]
    begun = [t for t in in_period if not t.drill]
    by_class = [_class_figures(c.value, TICKET_CLASS_ZH[c], [t for t in begun if t.severity_class == c.value],
                               end) for c in CLASS_ORDER]
    known = {c.value for c in CLASS_ORDER}
    others = [t for t in begun if t.severity_class not in known]
    if others:
        by_class.append(_class_figures("other", "其他", others, end))
    total = _class_figures("total", "合计", begun, end)
    by_class_item = Counter((t.severity_class if t.severity_class in known else "other", t.item or "—")
                            for t in begun)
    items = sorted({item for _, item in by_class_item})
    weeks: dict[date, int] = {}
    day = period.first - timedelta(days=period.first.weekday())
    while day <= period.last:
        weeks[day] = 0
        day += timedelta(days=7)
    for ticket in begun:
        local = ticket.starts_at.astimezone(REPORT_TZ).date()
        weeks[local - timedelta(days=local.weekday())] += 1
    return TicketFigures(begun, by_class, total, dict(by_class_item), items, rates,
                         sorted(weeks.items()), end, [t for t in in_period if t.drill])
