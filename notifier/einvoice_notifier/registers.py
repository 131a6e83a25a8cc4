"""The records the bureau's scorecard turns on (issue 19), kept in the ticket store beside the tickets:

- 故障定责 (line 11, ★4(3)): the owner of a fault (an outage ticket or a major incident), its system and
  the evidence, decided by the ops department; only FaultOwner values in VENDOR_FAULT_OWNERS count
  against the vendor;
- 变更登记 (lines 6, 7, seed §二.7): patches, versions, parameters and configuration changed in an
  approved window, the check after the upgrade, the watch period (升级后的运行跟踪), the outcome, and
  the tickets the change caused;
- 漏洞登记 (line 12, seed §二.10): found, reported to the bureau, found by the bureau's scan, the
  bureau's hardening deadline, the hardening record (加固留档记录), the rollback watch;
- 投诉登记 (line 19): the complaint, its verification, its ticket.

Every free text is redacted before it is stored (einvoice_core.redaction): these records are read
by reports that leave the platform. Every change is audited: on the ticket's timeline for faults and
links, in register_audit for the rest.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, TypeVar

from sqlalchemy import Engine, Select, Table, and_, func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from einvoice_core.contract import FAULT_OWNER_ZH, VENDOR_FAULT_OWNERS, FaultOwner, TicketClass
from einvoice_core.redaction import redact

from . import db
from .db import (
    audit_log,
    change_tickets,
    changes,
    complaints,
    fault_records,
    from_db,
    register_audit,
    tickets,
    to_db,
    vulnerabilities,
)
from .service import InvalidInputError, TicketNotFoundError
from .systems import system_names

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Clock = Callable[[], datetime]
E = TypeVar("E", bound=StrEnum)
V = TypeVar("V", bound="DataclassInstance")


class ChangeKind(StrEnum):
    PATCH = "patch"
    VERSION = "version"
    PARAMETER = "parameter"
    CONFIG = "config"


CHANGE_KIND_ZH: Final = {
    ChangeKind.PATCH: "补丁",
    ChangeKind.VERSION: "版本升级",
    ChangeKind.PARAMETER: "参数调整",
    ChangeKind.CONFIG: "配置变更",
}


class ChangeOutcome(StrEnum):
    PENDING = "pending"
    FIXED = "fixed"
    NOT_FIXED = "not_fixed"
    """Scorecard line 6: 版本（补丁）未能按计划有效解决相关问题."""
    NEW_PROBLEM = "new_problem"
    """Scorecard line 7: 由于发布版本（补丁）引发新问题."""


CHANGE_OUTCOME_ZH: Final = {
    ChangeOutcome.PENDING: "跟踪中",
    ChangeOutcome.FIXED: "已解决问题",
    ChangeOutcome.NOT_FIXED: "未解决问题",
    ChangeOutcome.NEW_PROBLEM: "引发新问题",
}


class FoundBy(StrEnum):
    VENDOR = "vendor"
    BUREAU_SCAN = "bureau_scan"


FOUND_BY_ZH: Final = {FoundBy.VENDOR: "运维厂商自查", FoundBy.BUREAU_SCAN: "税务局扫描"}


class VulnSeverity(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


VULN_SEVERITY_ZH: Final = {VulnSeverity.HIGH: "高危", VulnSeverity.MEDIUM: "中危", VulnSeverity.LOW: "低危"}


class Verification(StrEnum):
    PENDING = "pending"
    SUBSTANTIATED = "substantiated"
    UNSUBSTANTIATED = "unsubstantiated"


VERIFICATION_ZH: Final = {
    Verification.PENDING: "待核实",
    Verification.SUBSTANTIATED: "属实",
    Verification.UNSUBSTANTIATED: "不属实",
}

FAULT_CLASSES: Final = (TicketClass.OUTAGE.value,)
"""Ticket classes that are faults (故障) by themselves; a declared major incident is one too."""
MAX_TEXT: Final = 10000
RECENT_CHANGES: Final = timedelta(days=400)
"""Changes exported on /metrics: those whose watch ended within the bundle's retention (400 d)."""


# -- views ----------------------------------------------------------------------------------------


def _zh(names: Mapping[E, str], kind: type[E], value: str) -> str:
    """The Chinese name of a stored choice (the value itself when it has none)."""
    return names.get(kind(value), value)


@dataclass(frozen=True, slots=True)
class FaultView:
    ticket_id: int
    owner: str
    system: str
    evidence: str
    recorded_by: str
    recorded_at: datetime

    @property
    def owner_zh(self) -> str:
        return _zh(FAULT_OWNER_ZH, FaultOwner, self.owner)

    @property
    def vendor(self) -> bool:
        """Counts against the vendor (scorecard line 11)."""
        return self.owner in VENDOR_FAULT_OWNERS


@dataclass(frozen=True, slots=True)
class ChangeView:
    id: int
    kind: str
    system: str
    title: str
    version_before: str
    version_after: str
    parameters: str
    window_start: datetime
    window_end: datetime
    performed_by: str
    approval_ref: str
    fixes_ticket: int | None
    post_check: str
    post_check_ok: bool | None
    watch_end: datetime
    outcome: str
    outcome_note: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    linked_tickets: tuple[int, ...] = ()

    @property
    def kind_zh(self) -> str:
        return _zh(CHANGE_KIND_ZH, ChangeKind, self.kind)

    @property
    def outcome_zh(self) -> str:
        return _zh(CHANGE_OUTCOME_ZH, ChangeOutcome, self.outcome)


@dataclass(frozen=True, slots=True)
class VulnerabilityView:
    id: int
    title: str
    system: str
    severity: str
    found_by: str
    found_on: date
    reported_on: date | None
    bureau_scan_on: date | None
    deadline: datetime | None
    hardened_at: datetime | None
    hardening_record: str
    rollback_watch_end: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime

    @property
    def exempt(self) -> bool:
        """Reported to the bureau before its scan found it (line 12 deducts nothing): found by the
        vendor, reported, and the bureau's scan found it later or not at all."""
        return (
            self.found_by == FoundBy.VENDOR
            and self.reported_on is not None
            and (self.bureau_scan_on is None or self.reported_on < self.bureau_scan_on)
        )

    @property
    def detected_on(self) -> date:
        """The day the vulnerability counts as 检出: the bureau's scan when it found it, else found."""
        return self.bureau_scan_on or self.found_on

    def overdue(self, now: datetime) -> bool:
        return self.hardened_at is None and self.deadline is not None and self.deadline <= now

    @property
    def severity_zh(self) -> str:
        return _zh(VULN_SEVERITY_ZH, VulnSeverity, self.severity)

    @property
    def found_by_zh(self) -> str:
        return _zh(FOUND_BY_ZH, FoundBy, self.found_by)


@dataclass(frozen=True, slots=True)
class ComplaintView:
    id: int
    received_on: date
    system: str
    summary: str
    verification: str
    verification_note: str
    ticket_id: int | None
    created_by: str
    created_at: datetime
    updated_at: datetime

    @property
    def verification_zh(self) -> str:
        return _zh(VERIFICATION_ZH, Verification, self.verification)


@dataclass(frozen=True, slots=True)
class CandidateTicket:
    id: int
    starts_at: datetime
    severity_class: str
    summary: str
    system: str | None


def _clean(value: str, limit: int = MAX_TEXT) -> str:
    return redact(value.strip())[:limit]


def _aware(moment: Any) -> Any:
    return from_db(moment) if isinstance(moment, datetime) else moment


def _json(values: Mapping[str, Any]) -> str:
    def plain(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.astimezone(UTC).isoformat()
        if isinstance(value, date):
            return value.isoformat()
        return value

    return json.dumps({key: plain(value) for key, value in values.items()}, ensure_ascii=False)


def _view(kind: type[V], row: Mapping[Any, Any], **given: Any) -> V:
    """A register's row as its view: each field from the column of its name (datetimes aware),
    unless given."""
    read = {f.name: _aware(row[f.name]) for f in fields(kind) if f.name not in given}
    return kind(**read, **given)


def fault_view(row: Mapping[Any, Any]) -> FaultView:
    return _view(FaultView, row)


def change_view(row: Mapping[Any, Any], linked: tuple[int, ...] = ()) -> ChangeView:
    ok = row["post_check_ok"]
    return _view(ChangeView, row, post_check_ok=None if ok is None else bool(ok), linked_tickets=linked)


def vulnerability_view(row: Mapping[Any, Any]) -> VulnerabilityView:
    return _view(VulnerabilityView, row)


def complaint_view(row: Mapping[Any, Any]) -> ComplaintView:
    return _view(ComplaintView, row)


def linked_tickets(conn: Connection, ids: list[int]) -> dict[int, tuple[int, ...]]:
    """The tickets linked to each of these changes (caused by it), in ticket order."""
    found: dict[int, list[int]] = {i: [] for i in ids}
    if ids:
        for change_id, ticket_id in conn.execute(
            select(change_tickets.c.change_id, change_tickets.c.ticket_id)
            .where(change_tickets.c.change_id.in_(ids))
            .order_by(change_tickets.c.ticket_id)
        ):
            found[change_id].append(ticket_id)
    return {key: tuple(value) for key, value in found.items()}


def _row(conn: Connection, table: Table, record_id: int) -> Mapping[Any, Any] | None:
    """The register row of this id."""
    return conn.execute(select(table).where(table.c.id == record_id)).mappings().first()


def _choice(kind: type[E], value: str, errors: list[str], message: str) -> E | None:
    """The choice typed, or None with the message among the errors."""
    try:
        return kind(value)
    except ValueError:
        errors.append(message)
        return None


def _fault_of(ticket_id: int) -> Select[Any]:
    """The fault record of a ticket."""
    return select(fault_records).where(fault_records.c.ticket_id == ticket_id)


def _refuse(errors: list[str]) -> None:
    if errors:
        raise InvalidInputError("；".join(errors))


def _stored(view: V | None) -> V:
    """The view of a record just written (it is there: the write committed)."""
    assert view is not None
    return view


class RecordNotFoundError(LookupError):
    def __init__(self, what: str, record_id: int) -> None:
        super().__init__(f"{what} {record_id} 不存在")


# -- the registers ----------------------------------------------------------------------------------


class Registers:
    """Reads and changes the four registers; the API and the console go through it."""

    def __init__(self, engine: Engine, clock: Clock = db.utcnow) -> None:
        self.engine = engine
        self.clock = clock

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with db.write_lock(self.engine), self.engine.begin() as conn:
            yield conn

    # -- validation helpers -------------------------------------------------------------------------

    @staticmethod
    def _system(value: str | None, errors: list[str]) -> str:
        names = system_names()
        if not value or value not in names:
            errors.append("请选择系统（" + "、".join(f"{k} {v}" for k, v in names.items()) + "）")
            return ""
        return value

    @staticmethod
    def _actor(actor: str) -> None:
        if not actor:
            raise InvalidInputError("缺少操作人")

    @staticmethod
    def _entry(
        actor: str, action: str, before: Mapping[str, Any], after: Mapping[str, Any], now: datetime
    ) -> dict[str, Any]:
        """The columns an audit row of a register and one of a ticket's timeline share."""
        return {
            "at": to_db(now),
            "actor": actor[:128],
            "action": action,
            "before_value": _json(before),
            "after_value": _json(after),
        }

    def _audit(
        self,
        conn: Connection,
        register: str,
        record_id: int,
        actor: str,
        action: str,
        before: Mapping[str, Any],
        after: Mapping[str, Any],
        now: datetime,
    ) -> None:
        conn.execute(
            register_audit.insert(),
            {"register": register, "record_id": record_id, **self._entry(actor, action, before, after, now)},
        )

    def _ticket_audit(
        self,
        conn: Connection,
        ticket_id: int,
        actor: str,
        action: str,
        before: Mapping[str, Any],
        after: Mapping[str, Any],
        note: str,
        now: datetime,
    ) -> None:
        conn.execute(
            audit_log.insert(),
            {"ticket_id": ticket_id, **self._entry(actor, action, before, after, now), "note": note},
        )

    def _create(
        self, conn: Connection, table: Table, register: str, actor: str, values: dict[str, Any], now: datetime
    ) -> int:
        """A new row of a register (stamped with who made it and when) and its audit; its id."""
        values.update(created_by=actor[:128], created_at=to_db(now), updated_at=to_db(now))
        record_id: int = conn.execute(table.insert().returning(table.c.id), values).scalar_one()
        self._audit(conn, register, record_id, actor, "create", {}, values, now)
        return record_id

    def _change(
        self,
        conn: Connection,
        table: Table,
        register: str,
        row: Mapping[Any, Any],
        actor: str,
        action: str,
        values: dict[str, Any],
        now: datetime,
    ) -> None:
        """These fields of a register's row set, the row's update time too, and the change audited."""
        conn.execute(update(table).where(table.c.id == row["id"]), {**values, "updated_at": to_db(now)})
        self._audit(conn, register, row["id"], actor, action, {k: row[k] for k in values}, values, now)

    @staticmethod
    def _existing(conn: Connection, table: Table, record_id: int, what: str) -> Mapping[Any, Any]:
        row = _row(conn, table, record_id)
        if row is None:
            raise RecordNotFoundError(what, record_id)
        return row

    @staticmethod
    def _no_ticket(conn: Connection, ticket_id: int | None, errors: list[str], message: str) -> None:
        """The message among the errors when a ticket is given and there is none of that id."""
        if (
            ticket_id is not None
            and conn.execute(select(tickets.c.id).where(tickets.c.id == ticket_id)).first() is None
        ):
            errors.append(message)

    def _complaint_link(
        self, conn: Connection, ticket_id: int, actor: str, complaint_id: int, now: datetime
    ) -> None:
        """The complaint on the timeline of the ticket it is linked to."""
        after = {"complaint": complaint_id}
        self._ticket_audit(conn, ticket_id, actor, "complaint_link", {}, after, f"投诉 {complaint_id}", now)

    @staticmethod
    def _ticket_row(conn: Connection, ticket_id: int) -> Mapping[Any, Any]:
        row = conn.execute(select(tickets).where(tickets.c.id == ticket_id)).mappings().first()
        if row is None:
            raise TicketNotFoundError(ticket_id)
        return row

    # -- fault ownership ------------------------------------------------------------------------------

    def record_fault(
        self, ticket_id: int, actor: str, owner: str, system: str | None, evidence: str
    ) -> FaultView:
        """Record (or change) who a fault came from. Only outage tickets and major incidents are
        faults; the system defaults to the ticket's."""
        self._actor(actor)
        errors: list[str] = []
        found_owner = _choice(
            FaultOwner, owner, errors, "请选择故障主体（" + "、".join(FAULT_OWNER_ZH.values()) + "）"
        )
        if not evidence.strip():
            errors.append("请填写证据说明（探测数据、时间线、相关方确认）")
        now = self.clock()
        with self._write() as conn:
            row = self._ticket_row(conn, ticket_id)
            if row["severity_class"] not in FAULT_CLASSES and row["major_incident_at"] is None:
                errors.append("只有宕机工单或已宣布的重大事件需要故障定责")
            chosen = self._system(system or row["system"], errors)
            if errors or found_owner is None:
                raise InvalidInputError("；".join(errors))
            values = {
                "owner": found_owner.value,
                "system": chosen,
                "evidence": _clean(evidence),
                "recorded_by": actor[:128],
                "recorded_at": to_db(now),
            }
            before = conn.execute(_fault_of(ticket_id)).mappings().first()
            if before is None:
                conn.execute(fault_records.insert(), {"ticket_id": ticket_id, **values})
                old: dict[str, Any] = {}
            else:
                conn.execute(update(fault_records).where(fault_records.c.ticket_id == ticket_id), values)
                old = {"owner": before["owner"], "system": before["system"], "evidence": before["evidence"]}
            self._ticket_audit(
                conn,
                ticket_id,
                actor,
                "fault_owner",
                old,
                {"owner": values["owner"], "system": chosen, "evidence": values["evidence"]},
                f"故障主体：{FAULT_OWNER_ZH[found_owner]}",
                now,
            )
            stored = conn.execute(_fault_of(ticket_id)).mappings().one()
        return fault_view(stored)

    def fault(self, ticket_id: int) -> FaultView | None:
        with self.engine.connect() as conn:
            row = conn.execute(_fault_of(ticket_id)).mappings().first()
        return None if row is None else fault_view(row)

    # -- changes ----------------------------------------------------------------------------------------

    def add_change(
        self,
        actor: str,
        *,
        kind: str,
        system: str,
        title: str,
        window_start: datetime,
        window_end: datetime,
        performed_by: str,
        watch_end: datetime | None = None,
        version_before: str = "",
        version_after: str = "",
        parameters: str = "",
        approval_ref: str = "",
        fixes_ticket: int | None = None,
    ) -> ChangeView:
        self._actor(actor)
        errors: list[str] = []
        choice = _choice(ChangeKind, kind, errors, "请选择变更类型（补丁、版本升级、参数调整、配置变更）")
        found_kind = "" if choice is None else choice.value
        chosen = self._system(system, errors)
        if not title.strip():
            errors.append("请填写变更内容")
        if not performed_by.strip():
            errors.append("请填写实施人")
        if window_start.tzinfo is None or window_end.tzinfo is None:
            errors.append("批准的变更窗口需要带时区")
        elif window_end <= window_start:
            errors.append("变更窗口的结束时间需晚于开始时间")
        watch = watch_end or window_end + timedelta(days=7)
        if watch.tzinfo is None:
            errors.append("运行跟踪截止时间需要带时区")
        elif window_end.tzinfo is not None and watch < window_end:
            errors.append("运行跟踪截止时间不能早于变更窗口结束")
        if found_kind in (ChangeKind.PATCH, ChangeKind.VERSION) and not version_after.strip():
            errors.append("补丁或版本升级需填写升级后的版本")
        now = self.clock()
        with self._write() as conn:
            self._no_ticket(conn, fixes_ticket, errors, f"要解决的工单 {fixes_ticket} 不存在")
            _refuse(errors)
            values = {
                "kind": found_kind,
                "system": chosen,
                "title": _clean(title, 2000),
                "version_before": _clean(version_before, 128),
                "version_after": _clean(version_after, 128),
                "parameters": _clean(parameters),
                "window_start": to_db(window_start),
                "window_end": to_db(window_end),
                "performed_by": _clean(performed_by, 128),
                "approval_ref": _clean(approval_ref, 255),
                "fixes_ticket": fixes_ticket,
                "post_check": "",
                "post_check_ok": None,
                "watch_end": to_db(watch),
                "outcome": ChangeOutcome.PENDING.value,
                "outcome_note": "",
            }
            change_id = self._create(conn, changes, "change", actor, values, now)
        return _stored(self.change(change_id))

    def update_change(
        self,
        change_id: int,
        actor: str,
        *,
        post_check: str | None = None,
        post_check_ok: bool | None = None,
        watch_end: datetime | None = None,
        outcome: str | None = None,
        outcome_note: str | None = None,
    ) -> ChangeView:
        """The check after the upgrade, the end of the watch, and the outcome (a change that did not
        fix its problem or caused a new one needs a note saying what happened)."""
        self._actor(actor)
        errors: list[str] = []
        values: dict[str, Any] = {}
        if post_check is not None:
            values["post_check"] = _clean(post_check)
        if post_check_ok is not None:
            values["post_check_ok"] = post_check_ok
        if outcome is not None:
            result = _choice(
                ChangeOutcome, outcome, errors, "请选择变更结果（跟踪中、已解决问题、未解决问题、引发新问题）"
            )
            if result is not None:
                values["outcome"] = result.value
        if outcome_note is not None:
            values["outcome_note"] = _clean(outcome_note)
        if watch_end is not None:
            if watch_end.tzinfo is None:
                errors.append("运行跟踪截止时间需要带时区")
            else:
                values["watch_end"] = to_db(watch_end)
        now = self.clock()
        with self._write() as conn:
            row = self._existing(conn, changes, change_id, "变更")
            if "watch_end" in values and values["watch_end"] < row["window_end"]:
                errors.append("运行跟踪截止时间不能早于变更窗口结束")
            final = values.get("outcome", row["outcome"])
            note = values.get("outcome_note", row["outcome_note"])
            if final in (ChangeOutcome.NOT_FIXED, ChangeOutcome.NEW_PROBLEM) and not note:
                errors.append("未解决问题或引发新问题时请填写结果说明")
            if not values and not errors:
                errors.append("没有要修改的内容")
            _refuse(errors)
            self._change(conn, changes, "change", row, actor, "update", values, now)
        return _stored(self.change(change_id))

    def change(self, change_id: int) -> ChangeView | None:
        with self.engine.connect() as conn:
            row = _row(conn, changes, change_id)
            if row is None:
                return None
            return change_view(row, linked_tickets(conn, [change_id])[change_id])

    def list_changes(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        system: str | None = None,
        limit: int = 500,
    ) -> list[ChangeView]:
        """Changes whose window or watch period overlaps [start, end), newest first."""
        query = select(changes).order_by(changes.c.window_start.desc(), changes.c.id.desc()).limit(limit)
        if start is not None:
            query = query.where(changes.c.watch_end >= to_db(start))
        if end is not None:
            query = query.where(changes.c.window_start < to_db(end))
        if system:
            query = query.where(changes.c.system == system)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
            linked = linked_tickets(conn, [row["id"] for row in rows])
        return [change_view(row, linked[row["id"]]) for row in rows]

    def link_ticket(self, change_id: int, ticket_id: int, actor: str) -> ChangeView:
        """A ticket the change caused: it must have begun between the window's start and the end of
        the watch period."""
        self._actor(actor)
        now = self.clock()
        with self._write() as conn:
            row = self._existing(conn, changes, change_id, "变更")
            ticket = self._ticket_row(conn, ticket_id)
            if not row["window_start"] <= ticket["starts_at"] <= row["watch_end"]:
                raise InvalidInputError(
                    f"工单 #{ticket_id} 不在变更 {change_id} 的窗口开始至运行跟踪截止之间"
                )
            try:
                with conn.begin_nested():
                    conn.execute(
                        change_tickets.insert(),
                        {
                            "change_id": change_id,
                            "ticket_id": ticket_id,
                            "linked_by": actor[:128],
                            "linked_at": to_db(now),
                        },
                    )
            except IntegrityError:
                raise InvalidInputError(f"工单 #{ticket_id} 已关联到变更 {change_id}") from None
            self._ticket_audit(
                conn,
                ticket_id,
                actor,
                "change_link",
                {},
                {"change": change_id},
                f"由变更 {change_id}（{CHANGE_KIND_ZH[ChangeKind(row['kind'])]}）引起",
                now,
            )
            self._audit(conn, "change", change_id, actor, "link", {}, {"ticket": ticket_id}, now)
        return _stored(self.change(change_id))

    def candidates(self, change_id: int, limit: int = 100) -> list[CandidateTicket]:
        """Tickets that may have been caused by the change: begun between the window's start and the
        end of the watch, in the change's system (or with no system known), not linked yet."""
        with self.engine.connect() as conn:
            row = self._existing(conn, changes, change_id, "变更")
            linked = select(change_tickets.c.ticket_id).where(change_tickets.c.change_id == change_id)
            found = conn.execute(
                select(
                    tickets.c.id,
                    tickets.c.starts_at,
                    tickets.c.severity_class,
                    tickets.c.summary,
                    tickets.c.system,
                )
                .where(
                    tickets.c.starts_at >= row["window_start"],
                    tickets.c.starts_at <= row["watch_end"],
                    or_(tickets.c.system == row["system"], tickets.c.system.is_(None)),
                    tickets.c.id.not_in(linked),
                    tickets.c.drill.is_not(True),
                )
                .order_by(tickets.c.starts_at)
                .limit(limit)
            ).all()
        return [
            CandidateTicket(r.id, _aware(r.starts_at), r.severity_class, redact(r.summary), r.system)
            for r in found
        ]

    # -- vulnerabilities ---------------------------------------------------------------------------------

    def add_vulnerability(
        self,
        actor: str,
        *,
        title: str,
        system: str,
        severity: str,
        found_by: str,
        found_on: date,
        reported_on: date | None = None,
        bureau_scan_on: date | None = None,
        deadline: datetime | None = None,
    ) -> VulnerabilityView:
        self._actor(actor)
        errors: list[str] = []
        chosen = self._system(system, errors)
        if not title.strip():
            errors.append("请填写漏洞名称")
        level = _choice(VulnSeverity, severity, errors, "请选择漏洞等级（高危、中危、低危）")
        source = _choice(FoundBy, found_by, errors, "请选择发现方（运维厂商自查、税务局扫描）")
        found_severity = "" if level is None else level.value
        found_source = "" if source is None else source.value
        errors += self._dates(found_on, reported_on, bureau_scan_on, deadline)
        if found_source == FoundBy.BUREAU_SCAN and bureau_scan_on is None:
            bureau_scan_on = found_on
        _refuse(errors)
        now = self.clock()
        values = {
            "title": _clean(title, 2000),
            "system": chosen,
            "severity": found_severity,
            "found_by": found_source,
            "found_on": found_on,
            "reported_on": reported_on,
            "bureau_scan_on": bureau_scan_on,
            "deadline": to_db(deadline),
            "hardened_at": None,
            "hardening_record": "",
            "rollback_watch_end": None,
        }
        with self._write() as conn:
            vuln_id = self._create(conn, vulnerabilities, "vulnerability", actor, values, now)
        return _stored(self.vulnerability(vuln_id))

    def _dates(
        self, found_on: date, reported_on: date | None, bureau_scan_on: date | None, deadline: datetime | None
    ) -> list[str]:
        errors = []
        today = self.clock().date() + timedelta(days=1)  # a day of slack for the zones
        if found_on > today:
            errors.append("发现日期不能晚于今天")
        if reported_on is not None and reported_on < found_on:
            errors.append("报告税务局日期不能早于发现日期")
        if reported_on is not None and reported_on > today:
            errors.append("报告税务局日期不能晚于今天")
        if deadline is not None and deadline.tzinfo is None:
            errors.append("加固期限需要带时区")
        return errors

    def update_vulnerability(
        self,
        vuln_id: int,
        actor: str,
        *,
        reported_on: date | None = None,
        bureau_scan_on: date | None = None,
        deadline: datetime | None = None,
        hardened_at: datetime | None = None,
        hardening_record: str | None = None,
        rollback_watch_end: datetime | None = None,
    ) -> VulnerabilityView:
        """Report date, the bureau's scan, its deadline, the hardening and its record, the rollback
        watch: each given field is set (a hardening needs its record, 加固留档记录)."""
        self._actor(actor)
        now = self.clock()
        with self._write() as conn:
            row = self._existing(conn, vulnerabilities, vuln_id, "漏洞")
            given = {
                "reported_on": reported_on,
                "bureau_scan_on": bureau_scan_on,
                "deadline": deadline,
                "hardened_at": hardened_at,
                "rollback_watch_end": rollback_watch_end,
            }
            values: dict[str, Any] = {
                k: (to_db(v) if isinstance(v, datetime) else v) for k, v in given.items() if v is not None
            }
            if hardening_record is not None:
                values["hardening_record"] = _clean(hardening_record)
            errors = self._dates(
                row["found_on"],
                values.get("reported_on", row["reported_on"]),
                values.get("bureau_scan_on", row["bureau_scan_on"]),
                deadline,
            )
            for name in ("hardened_at", "rollback_watch_end"):
                moment = given[name]
                if isinstance(moment, datetime) and moment.tzinfo is None:
                    errors.append("加固时间与回退观察截止时间需要带时区")
            hardened = values.get("hardened_at", row["hardened_at"])
            record = values.get("hardening_record", row["hardening_record"])
            if hardened is not None and not record:
                errors.append("已加固的漏洞需要填写加固留档记录")
            watch = values.get("rollback_watch_end", row["rollback_watch_end"])
            if watch is not None and (hardened is None or watch < hardened):
                errors.append("回退观察截止时间需在加固之后")
            if not values and not errors:
                errors.append("没有要修改的内容")
            _refuse(list(dict.fromkeys(errors)))
            self._change(conn, vulnerabilities, "vulnerability", row, actor, "update", values, now)
        return _stored(self.vulnerability(vuln_id))

    def vulnerability(self, vuln_id: int) -> VulnerabilityView | None:
        with self.engine.connect() as conn:
            row = _row(conn, vulnerabilities, vuln_id)
        return None if row is None else vulnerability_view(row)

    def list_vulnerabilities(
        self, system: str | None = None, open_only: bool = False, limit: int = 500
    ) -> list[VulnerabilityView]:
        query = select(vulnerabilities).order_by(
            vulnerabilities.c.found_on.desc(), vulnerabilities.c.id.desc()
        )
        if system:
            query = query.where(vulnerabilities.c.system == system)
        if open_only:
            query = query.where(vulnerabilities.c.hardened_at.is_(None))
        with self.engine.connect() as conn:
            return [vulnerability_view(row) for row in conn.execute(query.limit(limit)).mappings()]

    # -- complaints --------------------------------------------------------------------------------------

    def add_complaint(
        self, actor: str, *, received_on: date, system: str, summary: str, ticket_id: int | None = None
    ) -> ComplaintView:
        self._actor(actor)
        errors: list[str] = []
        chosen = self._system(system, errors)
        if not summary.strip():
            errors.append("请填写投诉内容")
        if received_on > self.clock().date() + timedelta(days=1):
            errors.append("收到投诉日期不能晚于今天")
        now = self.clock()
        with self._write() as conn:
            self._no_ticket(conn, ticket_id, errors, f"工单 {ticket_id} 不存在")
            _refuse(errors)
            values = {
                "received_on": received_on,
                "system": chosen,
                "summary": _clean(summary),
                "verification": Verification.PENDING.value,
                "verification_note": "",
                "ticket_id": ticket_id,
            }
            complaint_id = self._create(conn, complaints, "complaint", actor, values, now)
            if ticket_id is not None:
                self._complaint_link(conn, ticket_id, actor, complaint_id, now)
        return _stored(self.complaint(complaint_id))

    def verify_complaint(
        self, complaint_id: int, actor: str, verification: str, note: str, ticket_id: int | None = None
    ) -> ComplaintView:
        self._actor(actor)
        errors: list[str] = []
        result = _choice(Verification, verification, errors, "请选择核实结果（属实、不属实）")
        found = "" if result is None else result.value
        if not note.strip():
            errors.append("请填写核实说明")
        now = self.clock()
        with self._write() as conn:
            row = self._existing(conn, complaints, complaint_id, "投诉")
            self._no_ticket(conn, ticket_id, errors, f"工单 {ticket_id} 不存在")
            _refuse(errors)
            values: dict[str, Any] = {"verification": found, "verification_note": _clean(note)}
            if ticket_id is not None:
                values["ticket_id"] = ticket_id
            self._change(conn, complaints, "complaint", row, actor, "verify", values, now)
            if ticket_id is not None and ticket_id != row["ticket_id"]:
                self._complaint_link(conn, ticket_id, actor, complaint_id, now)
        return _stored(self.complaint(complaint_id))

    def complaint(self, complaint_id: int) -> ComplaintView | None:
        with self.engine.connect() as conn:
            row = _row(conn, complaints, complaint_id)
        return None if row is None else complaint_view(row)

    def list_complaints(self, system: str | None = None, limit: int = 500) -> list[ComplaintView]:
        query = select(complaints).order_by(complaints.c.received_on.desc(), complaints.c.id.desc())
        if system:
            query = query.where(complaints.c.system == system)
        with self.engine.connect() as conn:
            return [complaint_view(row) for row in conn.execute(query.limit(limit)).mappings()]

    # -- history ---------------------------------------------------------------------------------------

    def history(self, register: str, record_id: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    select(register_audit)
                    .where(
                        and_(register_audit.c.register == register, register_audit.c.record_id == record_id)
                    )
                    .order_by(register_audit.c.id)
                )
                .mappings()
                .all()
            )
        return [
            {
                "at": _aware(r["at"]),
                "actor": r["actor"],
                "action": r["action"],
                "before": json.loads(r["before_value"]),
                "after": json.loads(r["after_value"]),
            }
            for r in rows
        ]

    # -- what /metrics shows ---------------------------------------------------------------------------

    def metric_rows(self) -> tuple[list[ChangeView], list[VulnerabilityView], dict[str, int]]:
        """Changes whose watch ended within the retention; open vulnerabilities with a deadline; the
        overdue count per system (every system, zeros included)."""
        now = self.clock()
        with self.engine.connect() as conn:
            recent = (
                conn.execute(
                    select(changes)
                    .where(changes.c.watch_end >= to_db(now - RECENT_CHANGES))
                    .order_by(changes.c.id)
                )
                .mappings()
                .all()
            )
            open_vulns = (
                conn.execute(
                    select(vulnerabilities)
                    .where(vulnerabilities.c.hardened_at.is_(None), vulnerabilities.c.deadline.is_not(None))
                    .order_by(vulnerabilities.c.id)
                )
                .mappings()
                .all()
            )
            overdue: dict[str, int] = dict(
                conn.execute(
                    select(vulnerabilities.c.system, func.count())
                    .where(vulnerabilities.c.hardened_at.is_(None), vulnerabilities.c.deadline <= to_db(now))
                    .group_by(vulnerabilities.c.system)
                ).all()
            )
        counts = {key: int(overdue.get(key, 0)) for key in system_names()}
        return ([change_view(row) for row in recent], [vulnerability_view(row) for row in open_vulns], counts)


CHANGE_MOMENTS: Final = (
    ("window_start", "einvoice_change_window_start_timestamp_seconds",
     "Start of a registered change's approved window."),
    ("window_end", "einvoice_change_window_end_timestamp_seconds",
     "End of a registered change's approved window."),
    ("watch_end", "einvoice_change_watch_end_timestamp_seconds",
     "End of the watch period after a change (升级后的运行跟踪)."),
)
"""The moments of a change on /metrics: its field, the gauge's name and help."""


class RegistersCollector:
    """The registers on the notifier's /metrics, for Grafana annotations and the hardening timer::

    einvoice_change_window_start_timestamp_seconds{change="3",system="invoice_mgmt",kind="patch"} 1.76e+09
    einvoice_change_window_end_timestamp_seconds{change="3",system="invoice_mgmt",kind="patch"} 1.76e+09
    einvoice_change_watch_end_timestamp_seconds{change="3",system="invoice_mgmt",kind="patch"} 1.76e+09
    einvoice_vulnerability_deadline_timestamp_seconds{vulnerability="2",system="ofd_front",level="low"} 1
    einvoice_vulnerabilities_overdue{system="public_service"} 1

    A store that cannot be read yields nothing (the store collector reports the database itself).
    With several replicas only the one that reports the store (the scheduler lease holder) exports
    them, so sums over replicas stay right."""

    def __init__(self, registers: Registers, reports_store: Callable[[], bool] = lambda: True) -> None:
        self.registers = registers
        self.reports_store = reports_store

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily
        from sqlalchemy.exc import DBAPIError

        try:
            if not self.reports_store():
                return
            recent, open_vulns, overdue = self.registers.metric_rows()
        except DBAPIError:
            return
        for moment, name, documentation in CHANGE_MOMENTS:
            family = GaugeMetricFamily(name, documentation, labels=["change", "system", "kind"])
            for change in recent:
                labels = [str(change.id), change.system, change.kind]
                family.add_metric(labels, getattr(change, moment).timestamp())
            yield family
        deadline = GaugeMetricFamily(
            "einvoice_vulnerability_deadline_timestamp_seconds",
            "The bureau's hardening deadline of a vulnerability not yet hardened.",
            labels=["vulnerability", "system", "level"],
        )
        for vuln in open_vulns:
            assert vuln.deadline is not None
            deadline.add_metric([str(vuln.id), vuln.system, vuln.severity], vuln.deadline.timestamp())
        yield deadline
        late = GaugeMetricFamily(
            "einvoice_vulnerabilities_overdue",
            "Vulnerabilities past the bureau's hardening deadline and not hardened.",
            labels=["system"],
        )
        for system, count in overdue.items():
            late.add_metric([system], count)
        yield late
