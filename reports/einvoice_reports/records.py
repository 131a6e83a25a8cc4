"""The scorecard's records (issue 19) read from the ticket store: fault ownership, changes and the
tickets they caused, vulnerabilities, complaints. The notifier's own table definitions and views
(einvoice_notifier.registers) are the one definition of what each field means; free text was
redacted when it was stored and is redacted again here (a store written by older code)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import date, datetime
from typing import Any, TypeVar

from einvoice_notifier.db import changes, complaints, fault_records, to_db, vulnerabilities
from einvoice_notifier.registers import (
    ChangeView,
    ComplaintView,
    FaultView,
    VulnerabilityView,
    change_view,
    complaint_view,
    fault_view,
    linked_tickets,
    vulnerability_view,
)
from sqlalchemy import Select, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from einvoice_core.redaction import redact

from .store import TicketStore

T = TypeVar("T")
V = TypeVar("V", FaultView, ChangeView, VulnerabilityView, ComplaintView)


def _read(store: TicketStore, read: Callable[[Connection], T]) -> T:
    """What read(conn) gives on one connection to the store; a database error as the store's."""
    try:
        with store.engine.connect() as conn:
            return read(conn)
    except SQLAlchemyError as exc:
        raise store._fail(exc) from exc


def _rows(query: Select[Any]) -> Callable[[Connection], list[Any]]:
    return lambda conn: list(conn.execute(query).mappings().all())


def _redacted(view: V, row: Mapping[Any, Any], *names: str) -> V:
    """The view with these free-text fields redacted again."""
    redacted: dict[str, Any] = {name: redact(row[name]) for name in names}
    return replace(view, **redacted)


def faults(store: TicketStore, ticket_ids: list[int]) -> dict[int, FaultView]:
    """The fault records of these tickets, by ticket id."""
    if not ticket_ids:
        return {}

    def read(conn: Connection) -> list[Any]:
        rows: list[Any] = []
        for start in range(0, len(ticket_ids), 500):  # bounded IN lists, whatever the month holds
            chunk = ticket_ids[start : start + 500]
            query = select(fault_records).where(fault_records.c.ticket_id.in_(chunk))
            rows += conn.execute(query).mappings().all()
        return rows

    return {row["ticket_id"]: _redacted(fault_view(row), row, "evidence") for row in _read(store, read)}


def changes_between(store: TicketStore, start: datetime, end: datetime) -> list[ChangeView]:
    """Changes whose approved window began in [start, end), oldest first, with their linked tickets."""
    query = (
        select(changes)
        .where(changes.c.window_start >= to_db(start), changes.c.window_start < to_db(end))
        .order_by(changes.c.window_start, changes.c.id)
    )

    def read(conn: Connection) -> tuple[list[Any], dict[int, tuple[int, ...]]]:
        rows = _rows(query)(conn)
        return rows, linked_tickets(conn, [row["id"] for row in rows])

    rows, links = _read(store, read)
    free_text = ("title", "parameters", "post_check", "outcome_note")
    return [_redacted(change_view(row, links[row["id"]]), row, *free_text) for row in rows]


def vulnerabilities_until(store: TicketStore, last: date) -> list[VulnerabilityView]:
    """Every vulnerability found on or before `last`, oldest first."""
    query = (
        select(vulnerabilities)
        .where(vulnerabilities.c.found_on <= last)
        .order_by(vulnerabilities.c.found_on, vulnerabilities.c.id)
    )
    rows = _read(store, _rows(query))
    return [_redacted(vulnerability_view(row), row, "title", "hardening_record") for row in rows]


def complaints_between(store: TicketStore, first: date, last: date) -> list[ComplaintView]:
    """Complaints received on the local days [first, last], oldest first."""
    query = (
        select(complaints)
        .where(complaints.c.received_on >= first, complaints.c.received_on <= last)
        .order_by(complaints.c.received_on, complaints.c.id)
    )
    rows = _read(store, _rows(query))
    return [_redacted(complaint_view(row), row, "summary", "verification_note") for row in rows]
