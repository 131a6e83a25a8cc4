"""The ticket store, read through the notifier's own table definitions (einvoice_notifier.db) and
its definition of the two resolution rates (einvoice_notifier.service.resolution_rates).

Every free text that leaves here (summary, cause, solution, notes) has passed the redaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from einvoice_notifier.db import audit_log, from_db, make_engine, tickets, to_db
from einvoice_notifier.service import ResolutionRates, resolution_rates
from sqlalchemy import Engine, and_, or_, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from einvoice_core.redaction import redact

from .errors import ReportError, SourceUnavailableError

SOURCE = "工单库"


@dataclass(frozen=True, slots=True)
class TicketRecord:
    id: int
    severity_class: str
    state: str
    item: str | None
    alertname: str
    summary: str
    description: str
    starts_at: datetime
    created_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    response_deadline: datetime
    resolution_deadline: datetime
    response_breached: bool
    resolution_breached: bool
    escalated: bool
    second_line: bool
    recurrence_of: int | None
    cause: str
    solution: str
    resolved_locally: bool | None
    problem_key: str
    system: str | None = None
    """thresholds.yaml `systems` key (issue 19); None for tickets stored before it was recorded."""
    drill: bool = False
    """Opened inside a declared disaster-recovery drill: reported apart from the SLA and rates."""
    major_incident_at: datetime | None = None
    duplicate_of: int | None = None


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime
    actor: str
    action: str
    note: str


def _required(moment: datetime | None) -> datetime:
    """A column the notifier's schema declares NOT NULL, as an aware datetime."""
    aware = from_db(moment)
    if aware is None:
        raise ReportError("工单库数据不完整：必填的时间字段为空")
    return aware


def _record(row: Any) -> TicketRecord:
    def text(value: str | None) -> str:
        return redact(value or "")

    return TicketRecord(
        id=row.id, severity_class=row.severity_class, state=row.state, item=row.item,
        alertname=row.alertname, summary=text(row.summary), description=text(row.description),
        starts_at=_required(row.starts_at), created_at=_required(row.created_at),
        acknowledged_at=from_db(row.acknowledged_at), resolved_at=from_db(row.resolved_at),
        closed_at=from_db(row.closed_at),
        response_deadline=_required(row.response_deadline),
        resolution_deadline=_required(row.resolution_deadline),
        response_breached=bool(row.response_breached), resolution_breached=bool(row.resolution_breached),
        escalated=bool(row.escalated), second_line=bool(row.second_line), recurrence_of=row.recurrence_of,
        cause=text(row.cause), solution=text(row.solution),
        resolved_locally=None if row.resolved_locally is None else bool(row.resolved_locally),
        problem_key=row.problem_key or "", system=row.system, drill=bool(row.drill),
        major_incident_at=from_db(row.major_incident_at), duplicate_of=row.duplicate_of)


class TicketStore:
    """Read-only access to the notifier's tickets (SQLite or MariaDB URL, as the notifier's)."""

    def __init__(self, url: str | None = None, engine: Engine | None = None) -> None:
        if engine is None:
            if not url:
                raise ReportError("未指定工单库（--store，例如 "
                                  "sqlite:////var/lib/einvoice-notifier/tickets.db）")
            try:
                parsed = make_url(url)
            except ArgumentError as exc:
                raise ReportError(f"工单库地址无效：{exc}") from exc
            database = parsed.database or ""
            if parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:") \
                    and not Path(database).is_file():
                # SQLite would create an empty file and the report would say "no tickets"
                raise SourceUnavailableError(SOURCE, f"SQLite 文件不存在：{database}")
            engine = make_engine(url)
        self.engine = engine

    def _fail(self, exc: SQLAlchemyError) -> SourceUnavailableError:
        return SourceUnavailableError(SOURCE, type(exc.orig if hasattr(exc, "orig") else exc).__name__
                                      + ": " + str(exc).splitlines()[0][:160])

    def tickets_touching(self, start: datetime, end: datetime) -> list[TicketRecord]:
        """Tickets whose problem began in [start, end), or that were resolved or closed in it."""
        lo, hi = to_db(start), to_db(end)
        query = select(tickets).where(or_(
            and_(tickets.c.starts_at >= lo, tickets.c.starts_at < hi),
            and_(tickets.c.resolved_at >= lo, tickets.c.resolved_at < hi),
            and_(tickets.c.closed_at >= lo, tickets.c.closed_at < hi),
        )).order_by(tickets.c.starts_at, tickets.c.id)
        try:
            with self.engine.connect() as conn:
                return [_record(row) for row in conn.execute(query)]
        except SQLAlchemyError as exc:
            raise self._fail(exc) from exc

    def closed_until(self, end: datetime) -> list[TicketRecord]:
        """Every ticket closed before `end` (the knowledge base is cumulative), oldest first."""
        query = (select(tickets).where(tickets.c.state == "closed", tickets.c.closed_at < to_db(end))
                 .order_by(tickets.c.closed_at, tickets.c.id))
        try:
            with self.engine.connect() as conn:
                return [_record(row) for row in conn.execute(query)]
        except SQLAlchemyError as exc:
            raise self._fail(exc) from exc

    def ticket(self, ticket_id: int) -> tuple[TicketRecord, list[TimelineEntry]]:
        try:
            with self.engine.connect() as conn:
                row = conn.execute(select(tickets).where(tickets.c.id == ticket_id)).first()
                if row is None:
                    raise ReportError(f"工单 #{ticket_id} 不存在")
                entries = conn.execute(select(audit_log).where(audit_log.c.ticket_id == ticket_id)
                                       .order_by(audit_log.c.id)).all()
        except SQLAlchemyError as exc:
            raise self._fail(exc) from exc
        return _record(row), [TimelineEntry(_required(e.at), e.actor, e.action, redact(e.note))
                              for e in entries]

    def rates(self, start: datetime, end: datetime) -> ResolutionRates:
        try:
            with self.engine.connect() as conn:
                return resolution_rates(conn, start, end)
        except SQLAlchemyError as exc:
            raise self._fail(exc) from exc
