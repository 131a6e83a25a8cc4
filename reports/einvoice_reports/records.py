"""The scorecard's records (issue 19) read from the ticket store: fault ownership, changes and the
tickets they caused, vulnerabilities, complaints. The notifier's own table definitions and views
(einvoice_notifier.registers) are the one definition of what each field means; free text was
redacted when it was stored and is redacted again here (a store written by older code)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from typing import Any

from einvoice_notifier.db import change_tickets, changes, complaints, fault_records, to_db, vulnerabilities
from einvoice_notifier.registers import (
    ChangeView,
    ComplaintView,
    FaultView,
    VulnerabilityView,
    change_view,
    complaint_view,
    fault_view,
    vulnerability_view,
)
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from einvoice_core.redaction import redact

from .store import TicketStore


def faults(store: TicketStore, ticket_ids: list[int]) -> dict[int, FaultView]:
    """The fault records of these tickets, by ticket id."""
    if not ticket_ids:
        return {}
    rows: list[Any] = []
    try:
        with store.engine.connect() as conn:
            for start in range(0, len(ticket_ids), 500):  # bounded IN lists, whatever the month holds
                chunk = ticket_ids[start : start + 500]
                query = select(fault_records).where(fault_records.c.ticket_id.in_(chunk))
                rows += conn.execute(query).mappings().all()
    except SQLAlchemyError as exc:
        raise store._fail(exc) from exc
    return {row["ticket_id"]: replace(fault_view(row), evidence=redact(row["evidence"])) for row in rows}


def changes_between(store: TicketStore, start: datetime, end: datetime) -> list[ChangeView]:
    """Changes whose approved window began in [start, end), oldest first, with their linked tickets."""
    try:
        with store.engine.connect() as conn:
            rows = (
                conn.execute(
                    select(changes)
                    .where(changes.c.window_start >= to_db(start), changes.c.window_start < to_db(end))
                    .order_by(changes.c.window_start, changes.c.id)
                )
                .mappings()
                .all()
            )
            ids = [row["id"] for row in rows]
            links: dict[int, list[int]] = {i: [] for i in ids}
            if ids:
                for change_id, ticket_id in conn.execute(
                    select(change_tickets.c.change_id, change_tickets.c.ticket_id)
                    .where(change_tickets.c.change_id.in_(ids))
                    .order_by(change_tickets.c.ticket_id)
                ):
                    links[change_id].append(ticket_id)
    except SQLAlchemyError as exc:
        raise store._fail(exc) from exc
    return [
        replace(
            change_view(row, tuple(links[row["id"]])),
            title=redact(row["title"]),
            parameters=redact(row["parameters"]),
            post_check=redact(row["post_check"]),
            outcome_note=redact(row["outcome_note"]),
        )
        for row in rows
    ]


def vulnerabilities_until(store: TicketStore, last: date) -> list[VulnerabilityView]:
    """Every vulnerability found on or before `last`, oldest first."""
    try:
        with store.engine.connect() as conn:
            rows = (
                conn.execute(
                    select(vulnerabilities)
                    .where(vulnerabilities.c.found_on <= last)
                    .order_by(vulnerabilities.c.found_on, vulnerabilities.c.id)
                )
                .mappings()
                .all()
            )
    except SQLAlchemyError as exc:
        raise store._fail(exc) from exc
    return [
        replace(
            vulnerability_view(row),
            title=redact(row["title"]),
            hardening_record=redact(row["hardening_record"]),
        )
        for row in rows
    ]


def complaints_between(store: TicketStore, first: date, last: date) -> list[ComplaintView]:
    """Complaints received on the local days [first, last], oldest first."""
    try:
        with store.engine.connect() as conn:
            rows = (
                conn.execute(
                    select(complaints)
                    .where(complaints.c.received_on >= first, complaints.c.received_on <= last)
                    .order_by(complaints.c.received_on, complaints.c.id)
                )
                .mappings()
                .all()
            )
    except SQLAlchemyError as exc:
        raise store._fail(exc) from exc
    return [
        replace(
            complaint_view(row),
            summary=redact(row["summary"]),
            verification_note=redact(row["verification_note"]),
        )
        for row in rows
    ]
