"""《常见问题处理手册》 (quarterly): the knowledge base of resolved problems, from closed tickets.

Every ticket closed before the quarter's end is grouped by item and by its cause (the closer's text,
whitespace-normalised); each group shows the symptoms (alert summaries), the cause, the solutions,
how often it happened, when last, and whether it is new this quarter. All text is redacted."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from einvoice_core.catalogue import ITEMS

from .period import REPORT_TZ, Period
from .store import TicketRecord, TicketStore

ITEM_NAMES = {item.id: item.name_zh for item in ITEMS}
MAX_SYMPTOMS = 3


@dataclass(slots=True)
class Entry:
    item: str
    cause: str
    symptoms: list[str] = field(default_factory=list)
    solutions: list[str] = field(default_factory=list)
    tickets: list[int] = field(default_factory=list)
    last: datetime | None = None
    new_this_period: bool = False


@dataclass(slots=True)
class Handbook:
    period: Period
    generated_at: datetime
    sections: list[tuple[str, str, list[Entry]]]
    """(item, item name, entries) by item; entries by count, most frequent first."""
    sources: list[str]


def _norm(text: str) -> str:
    return " ".join(text.split())


def group(records: list[TicketRecord], period: Period) -> list[tuple[str, str, list[Entry]]]:
    entries: dict[tuple[str, str], Entry] = {}
    for ticket in records:
        item = ticket.item or "—"
        cause = _norm(ticket.cause) or "（未填写原因）"
        entry = entries.setdefault((item, cause), Entry(item, cause))
        summary, solution = _norm(ticket.summary), _norm(ticket.solution)
        if summary and summary not in entry.symptoms and len(entry.symptoms) < MAX_SYMPTOMS:
            entry.symptoms.append(summary)
        if solution and solution not in entry.solutions:
            entry.solutions.append(solution)
        entry.tickets.append(ticket.id)
        entry.last = ticket.closed_at
        if ticket.closed_at is not None and period.start <= ticket.closed_at < period.end:
            entry.new_this_period = True
    sections: list[tuple[str, str, list[Entry]]] = []
    for item in sorted({item for item, _ in entries}):
        found = sorted((e for (i, _), e in entries.items() if i == item),
                       key=lambda e: (-len(e.tickets), e.cause))
        sections.append((item, ITEM_NAMES.get(item, "未关联监控项"), found))
    return sections


def build_handbook(period: Period, store: TicketStore, now: datetime) -> Handbook:
    records = store.closed_until(period.end)
    sources = [f"工单库：{store.engine.url.render_as_string(hide_password=True)}（截至期末的已关闭工单）"]
    return Handbook(period, now, group(records, period), sources)


def context(book: Handbook) -> dict[str, Any]:
    return {"book": book, "period": book.period, "gaps": [], "sources": book.sources,
            "generated_local": book.generated_at.astimezone(REPORT_TZ)}
