"""Tickets: created from Alertmanager notifications, worked by people, audited, with SLA clocks.

One ticket per *alert* (fingerprint + startsAt), not per notification group. Alertmanager groups
alerts by labels and re-sends the whole group whenever one alert changes, so a group is a delivery
unit, not a problem: alerts in one group start, resolve and get worked at different times, and the
contract scores response and resolution per problem. Each ticket keeps the `groupKey` of the
notification that created it, so the console can show the alerts that arrived together. An alert
that fires again after resolving gets a new startsAt from Alertmanager and so a new ticket, linked
to the earlier closed one as a recurrence when it falls within 30 days (一次性解决率).

Idempotence: each alert transition (fingerprint, startsAt, status, route) is recorded once in
`alert_events` under a unique key in the same transaction as the ticket change and its outbox
messages. A redelivered or repeated notification finds its keys taken and changes nothing.

Every change to a ticket writes an `audit_log` row (who, when, what, before, after) in the same
transaction as the change.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from einvoice_core.catalogue import normalize_item_id

from . import db
from .calendar import WorkingCalendar, load_calendar_data
from .db import OPEN_STATES, alert_events, audit_log, from_db, notifications, tickets, to_db
from .messaging.base import Channel, Message
from .payload import Alert, Notification
from .rendering import render_messages, ticket_link
from .settings import SEVERITY_CLASSES, Settings

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
SYSTEM_ACTOR = "alertmanager"
SCHEDULER_ACTOR = "system"
ROUTES = ("first_line", "second_line")

STATE_ZH = {"open": "新建", "acknowledged": "已响应", "in_progress": "处理中", "resolved": "已解决",
            "closed": "已关闭"}
SEVERITY_ZH = {"urgent": "高级别", "general": "中低级别", "outage": "卡顿/宕机"}
_DEADLINE_ZH = {"response": "响应时限", "resolution": "解决时限"}
ACTION_ZH = {"create": "创建", "acknowledge": "响应", "start_progress": "开始处理", "add_note": "备注",
             "resolve": "解决", "close": "关闭", "alert_resolved": "告警恢复", "escalate": "超时升级",
             "second_line": "转二线", "requeue_message": "重新发送"}


class TicketError(Exception):
    """Base of the errors a person can cause; the message is Chinese and shown as is."""


class TicketNotFoundError(TicketError, LookupError):
    def __init__(self, ticket_id: int) -> None:
        super().__init__(f"工单 {ticket_id} 不存在")
        self.ticket_id = ticket_id


class MessageNotFoundError(TicketError, LookupError):
    def __init__(self, message_id: int) -> None:
        super().__init__(f"消息 {message_id} 不存在")
        self.message_id = message_id


class InvalidTransitionError(TicketError, ValueError):
    """The action does not apply to the ticket's state (the API answers 409)."""

    def __init__(self, ticket_id: int, state: str, action: str) -> None:
        super().__init__(f"工单 {ticket_id} 当前状态为「{STATE_ZH.get(state, state)}」，"
                         f"不能执行「{ACTION_ZH.get(action, action)}」")
        self.ticket_id, self.state, self.action = ticket_id, state, action


class InvalidInputError(TicketError, ValueError):
    """A required field is missing or empty (the API answers 422)."""


class StoreUnavailableError(Exception):
    """The database cannot be reached or written: the webhook answers 503 so Alertmanager retries."""


@dataclass(frozen=True, slots=True)
class TicketView:
    id: int
    group_key: str
    fingerprint: str
    alertname: str
    item: str | None
    zone: str | None
    target: str | None
    severity_class: str
    state: str
    summary: str
    description: str
    labels: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    response_deadline: datetime
    resolution_deadline: datetime
    response_breached: bool
    resolution_breached: bool
    escalated: bool
    recurrence_of: int | None
    cause: str | None
    solution: str | None
    resolved_locally: bool | None
    created_at: datetime | None = None
    in_progress_at: datetime | None = None
    second_line: bool = False
    overdue: bool = False
    """A deadline has passed while the ticket is still open (as of when the view was read)."""
    annotations: dict[str, str] = field(default_factory=dict)
    """The annotations of the alert a message is being rendered for (not stored; empty otherwise)."""

    @property
    def state_zh(self) -> str:
        return STATE_ZH.get(self.state, self.state)

    @property
    def severity_zh(self) -> str:
        return SEVERITY_ZH.get(self.severity_class, self.severity_class)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    ticket_id: int
    at: datetime
    actor: str
    action: str
    before: dict[str, Any]
    after: dict[str, Any]
    note: str


@dataclass(frozen=True, slots=True)
class IngestResult:
    alerts: int
    new_events: int
    new_tickets: int
    messages: int


@dataclass(slots=True)
class _Ctx:
    """What one transaction produced: rows written in bulk before commit, senders to wake after."""

    channels: set[str] = field(default_factory=set)
    messages: int = 0
    audit: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)

    def flush(self, conn: Connection) -> None:
        """One executemany per table: statements compiled once, parameters sent as a batch."""
        for table, rows in ((alert_events, self.events), (audit_log, self.audit), (db.outbox, self.outbox)):
            if rows:
                conn.execute(table.insert(), rows)
                rows.clear()


def severity_class_of(labels: Mapping[str, str]) -> str:
    """Explicit `severity_class` label first (the rules set it), then outage markers, then severity."""
    explicit = labels.get("severity_class", "")
    if explicit in SEVERITY_CLASSES:
        return explicit
    if labels.get("sla") == "outage" or labels.get("alertname", "").startswith("EinvoiceServiceOutage"):
        return "outage"
    if labels.get("severity") == "critical":
        return "urgent"
    return "general"


def _item_of(labels: Mapping[str, str]) -> str | None:
    try:
        return normalize_item_id(labels["item"]) if "item" in labels else None
    except ValueError:
        return None


def _jsonable(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


class TicketService:
    """Everything that reads or changes tickets; the web console and JSON API go through it."""

    def __init__(self, engine: Engine, settings: Settings, clock: Clock = db.utcnow,
                 channels: Mapping[str, Channel] | None = None, link_secret: bytes | None = None,
                 on_enqueue: Callable[[set[str]], None] | None = None) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self.calendar = WorkingCalendar(load_calendar_data(settings.calendar_file))
        self._max_bytes = {name: channel.max_bytes for name, channel in (channels or {}).items()}
        self.link_secret = link_secret or settings.configured_console_secret() or secrets.token_bytes(32)
        self.on_enqueue = on_enqueue

    # -- transactions --------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[tuple[Connection, _Ctx]]:
        """One write transaction; SQLite writers are serialised here instead of failing busy."""
        ctx = _Ctx()
        with db.write_lock(self.engine), self.engine.begin() as conn:
            yield conn, ctx
            ctx.flush(conn)
        if ctx.channels and self.on_enqueue is not None:
            self.on_enqueue(ctx.channels)

    # -- deadlines -----------------------------------------------------------------------------

    def deadlines(self, severity_class: str, starts_at: datetime) -> tuple[datetime, datetime]:
        policy = self.settings.sla[severity_class]  # type: ignore[index]
        if policy.clock == "wall":
            return (starts_at + timedelta(seconds=policy.response),
                    starts_at + timedelta(seconds=policy.resolution))
        return (self.calendar.add_working_seconds(starts_at, policy.response),
                self.calendar.add_working_seconds(starts_at, policy.resolution))

    # -- ingest --------------------------------------------------------------------------------

    def ingest(self, notification: Notification, route: str = "first_line") -> IngestResult:
        """Store a webhook notification; raise StoreUnavailableError when the database fails."""
        if route not in ROUTES:
            raise ValueError(f"unknown route {route!r}")
        for attempt in range(4):
            try:
                return self._ingest_once(notification, route)
            except IntegrityError as exc:
                # A concurrent delivery of the same alerts won the race: the retry sees its rows.
                if attempt == 3:
                    raise StoreUnavailableError(f"conflicting writes: {str(exc.orig)[:160]}") from exc
            except OperationalError as exc:
                if _is_deadlock(exc) and attempt < 3:
                    continue
                raise StoreUnavailableError(str(exc.orig)[:200]) from exc
            except DBAPIError as exc:
                raise StoreUnavailableError(str(exc.orig)[:200]) from exc
        raise AssertionError("unreachable")

    def _ingest_once(self, notification: Notification, route: str) -> IngestResult:
        now = self.clock()
        new_events = 0
        with self._write() as (conn, ctx):
            keyed = [(alert, _event_key(alert, route)) for alert in notification.alerts]
            seen: set[str] = set()
            if keyed:
                found = conn.execute(select(alert_events.c.event_key).where(
                    alert_events.c.event_key.in_([key for _, key in keyed]))).scalars()
                seen = set(found)
            fresh: list[tuple[Alert, str]] = []
            for alert, key in keyed:
                if key not in seen:  # also drops the same alert twice in one payload
                    seen.add(key)
                    fresh.append((alert, key))
            existing = self._tickets_for(conn, [alert for alert, _ in fresh])
            new_tickets = self._create_tickets(conn, ctx, notification, [a for a, _ in fresh], existing,
                                               now, route)
            for alert, key in fresh:
                ticket_key = (alert.fingerprint, to_db(alert.starts_utc()))
                row = existing[ticket_key]
                ticket_id = row["id"]
                ctx.events.append({"event_key": key, "ticket_id": ticket_id, "status": alert.status,
                                   "route": route, "received_at": to_db(now)})
                new_events += 1
                if alert.status == "resolved":
                    row = self._alert_resolved(conn, ctx, row, alert, now)
                    existing[ticket_key] = row
                elif route == "second_line" and not row["second_line"]:
                    row = self._change(conn, ctx, row, {"second_line": True}, SYSTEM_ACTOR, "second_line",
                                       "经二线路由送达", now)
                    existing[ticket_key] = row
                self._enqueue(conn, ctx, row, alert.status, route, key, now, alert.annotations)
            conn.execute(notifications.insert(), {
                "group_key": notification.group_key, "receiver": notification.receiver[:255],
                "status": notification.status, "route": route, "alert_count": len(notification.alerts),
                "new_events": new_events, "truncated_alerts": notification.truncated_alerts,
                "received_at": to_db(now)})
        return IngestResult(len(notification.alerts), new_events, new_tickets, ctx.messages)

    def _tickets_for(self, conn: Connection, alerts: Sequence[Alert]) -> dict[tuple[str, Any], Any]:
        if not alerts:
            return {}
        fingerprints = sorted({alert.fingerprint for alert in alerts})
        rows = conn.execute(select(tickets).where(tickets.c.fingerprint.in_(fingerprints))).mappings()
        return {(row["fingerprint"], row["starts_at"]): dict(row) for row in rows}

    def _create_tickets(self, conn: Connection, ctx: _Ctx, notification: Notification,
                        alerts: Sequence[Alert], existing: dict[tuple[str, Any], Any], now: datetime,
                        route: str) -> int:
        """Insert the tickets of alerts seen for the first time, in one statement; add them to
        `existing`; return how many."""
        new = [alert for alert in alerts if (alert.fingerprint, to_db(alert.starts_utc())) not in existing]
        if not new:
            return 0
        closed = self._closed_recently(conn, new, now)
        rows: dict[tuple[str, Any], dict[str, Any]] = {}
        for alert in new:
            key = (alert.fingerprint, to_db(alert.starts_utc()))
            if key not in rows:
                rows[key] = self._ticket_values(notification, alert, now, route, closed)
        values = list(rows.values())
        ids = conn.execute(tickets.insert().returning(tickets.c.id, sort_by_parameter_order=True),
                           values).scalars().all()
        for key, row, ticket_id in zip(rows, values, ids, strict=True):
            row["id"] = ticket_id
            for name in ("acknowledged_at", "in_progress_at", "resolved_at", "closed_at", "cause", "solution",
                         "resolved_locally"):
                row[name] = None
            existing[key] = row
            self._audit(ctx, ticket_id, SYSTEM_ACTOR, "create", {},
                        {"state": "open", "severity_class": row["severity_class"],
                         "recurrence_of": row["recurrence_of"]}, "", now)
        return len(values)

    def _ticket_values(self, notification: Notification, alert: Alert, now: datetime, route: str,
                       closed: Mapping[tuple[str, str | None], list[tuple[datetime, int]]]) -> dict[str, Any]:
        labels = dict(alert.labels)
        severity_class = severity_class_of(labels)
        starts = alert.starts_utc()
        response, resolution = self.deadlines(severity_class, starts)
        # An alert about an item (e.g. no check covers it) has no target: its instance is the exporter.
        found = labels.get("target") or ("" if "item" in labels else labels.get("instance", ""))
        target = found[:512] or None
        alertname = labels.get("alertname", "")[:255]
        since = to_db(starts - timedelta(seconds=self.settings.recurrence_window))
        recurrence = next((ticket_id for closed_at, ticket_id in closed.get((alertname, target), [])
                           if closed_at >= since), None)  # type: ignore[operator]
        return {
            "fingerprint": alert.fingerprint, "starts_at": to_db(starts),
            "group_key": notification.group_key, "alertname": alertname, "item": _item_of(labels),
            "zone": labels.get("zone"), "target": target,
            "severity_class": severity_class, "state": "open",
            "summary": alert.annotations.get("summary", ""),
            "description": alert.annotations.get("description", ""),
            "labels": json.dumps(labels, ensure_ascii=False, sort_keys=True),
            "ends_at": None, "created_at": to_db(now), "updated_at": to_db(now),
            "response_deadline": to_db(response), "resolution_deadline": to_db(resolution),
            "response_breached": False, "resolution_breached": False, "escalated": False,
            "second_line": route == "second_line", "recurrence_of": recurrence,
        }

    def _closed_recently(self, conn: Connection, alerts: Sequence[Alert],
                         now: datetime) -> dict[tuple[str, str | None], list[tuple[datetime, int]]]:
        """Closed tickets of these alertnames that a new alert could recur (newest first)."""
        names = sorted({alert.labels.get("alertname", "")[:255] for alert in alerts})
        if not names:
            return {}
        oldest = min(alert.starts_utc() for alert in alerts)
        since = to_db(min(oldest, now) - timedelta(seconds=self.settings.recurrence_window))
        found: dict[tuple[str, str | None], list[tuple[datetime, int]]] = {}
        rows = conn.execute(
            select(tickets.c.alertname, tickets.c.target, tickets.c.closed_at, tickets.c.id)
            .where(tickets.c.alertname.in_(names), tickets.c.state == "closed", tickets.c.closed_at >= since)
            .order_by(tickets.c.closed_at.desc()))
        for alertname, target, closed_at, ticket_id in rows:
            found.setdefault((alertname, target), []).append((closed_at, ticket_id))
        return found

    def _alert_resolved(self, conn: Connection, ctx: _Ctx, row: dict[str, Any], alert: Alert,
                        now: datetime) -> dict[str, Any]:
        ended = alert.ends_utc() or now
        changes: dict[str, Any] = {"ends_at": ended}
        if row["state"] in OPEN_STATES:
            changes |= {"state": "resolved", "resolved_at": ended}
            changes |= self._late_flags(row, ended, resolving=True)
        return self._change(conn, ctx, row, changes, SYSTEM_ACTOR, "alert_resolved", "告警已恢复", now)

    def _late_flags(self, row: Mapping[str, Any], at: datetime, resolving: bool) -> dict[str, Any]:
        changes: dict[str, Any] = {}
        if (row["acknowledged_at"] is None and not row["response_breached"]
                and at > from_db(row["response_deadline"])):  # type: ignore[operator]
            changes["response_breached"] = True
        if (resolving and not row["resolution_breached"]
                and at > from_db(row["resolution_deadline"])):  # type: ignore[operator]
            changes["resolution_breached"] = True
        return changes

    # -- audit and changes ---------------------------------------------------------------------

    def _audit(self, ctx: _Ctx, ticket_id: int, actor: str, action: str, before: Mapping[str, Any],
               after: Mapping[str, Any], note: str, now: datetime) -> None:
        ctx.audit.append({
            "ticket_id": ticket_id, "at": to_db(now), "actor": actor[:128], "action": action,
            "before_value": json.dumps({k: _jsonable(v) for k, v in before.items()}, ensure_ascii=False),
            "after_value": json.dumps({k: _jsonable(v) for k, v in after.items()}, ensure_ascii=False),
            "note": note})

    def _change(self, conn: Connection, ctx: _Ctx, row: dict[str, Any], changes: Mapping[str, Any],
                actor: str, action: str, note: str, now: datetime) -> dict[str, Any]:
        """Apply `changes` (aware datetimes) to the ticket row, audited; return the new row."""
        stored = {key: to_db(value) if isinstance(value, datetime) else value
                  for key, value in changes.items()}
        before = {key: _aware(row[key]) for key in changes}
        if stored:
            conn.execute(update(tickets).where(tickets.c.id == row["id"]),
                         {**stored, "updated_at": to_db(now)})
        self._audit(ctx, row["id"], actor, action, before, changes, note, now)
        return {**row, **stored, "updated_at": to_db(now)}

    # -- outbox --------------------------------------------------------------------------------

    def _enqueue(self, conn: Connection, ctx: _Ctx, row: Mapping[str, Any], event: str, route: str,
                 key: str, now: datetime, annotations: Mapping[str, str] | None = None) -> None:
        routing = self.settings.routing
        names = routing.second_line if route == "second_line" else routing.first_line
        mobiles = routing.second_line_mobiles if route == "second_line" else routing.duty_mobiles
        mentions = tuple(mobiles) if event != "resolved" else ()
        view = self._view(row, now)
        if annotations:  # the card reads where it fails and since when (failing_checks, started_at)
            view = replace(view, annotations=dict(annotations))
        url = ticket_link(self.settings.public_url, view.id, self.link_secret,
                          now + timedelta(seconds=self.settings.link_ttl))
        for channel in names:
            parts = render_messages(view, event, url, self._max_bytes.get(channel, 4096), mentions,
                                    self.settings.template_dir)
            for index, message in enumerate(parts):
                self._insert_message(ctx, view.id, channel, event, f"{key}|{channel}|{index}", message, now)
                ctx.messages += 1
            if parts:
                ctx.channels.add(channel)

    def _insert_message(self, ctx: _Ctx, ticket_id: int, channel: str, event: str, dedupe_key: str,
                        message: Message, now: datetime) -> None:
        ctx.outbox.append({
            "dedupe_key": dedupe_key[:191], "ticket_id": ticket_id, "channel": channel, "event": event,
            "format": message.format, "content": message.content,
            "mentioned_mobiles": json.dumps(list(message.mentioned_mobiles)),
            "ticket_url": message.ticket_url, "state": "pending", "attempts": 0,
            "next_attempt_at": to_db(now), "created_at": to_db(now), "sent_at": None, "last_error": ""})

    # -- reading -------------------------------------------------------------------------------

    def _view(self, row: Mapping[Any, Any], now: datetime | None = None) -> TicketView:
        now = now or self.clock()
        response_deadline = _aware(row["response_deadline"])
        resolution_deadline = _aware(row["resolution_deadline"])
        overdue = row["state"] in OPEN_STATES and (
            (row["acknowledged_at"] is None and response_deadline <= now) or resolution_deadline <= now)
        return TicketView(
            id=row["id"], group_key=row["group_key"], fingerprint=row["fingerprint"],
            alertname=row["alertname"], item=row["item"], zone=row["zone"], target=row["target"],
            severity_class=row["severity_class"], state=row["state"], summary=row["summary"],
            description=row["description"], labels=json.loads(row["labels"]),
            starts_at=_aware(row["starts_at"]), ends_at=_aware(row["ends_at"]),
            acknowledged_at=_aware(row["acknowledged_at"]), resolved_at=_aware(row["resolved_at"]),
            closed_at=_aware(row["closed_at"]), response_deadline=response_deadline,
            resolution_deadline=resolution_deadline, response_breached=bool(row["response_breached"]),
            resolution_breached=bool(row["resolution_breached"]), escalated=bool(row["escalated"]),
            recurrence_of=row["recurrence_of"], cause=row["cause"], solution=row["solution"],
            resolved_locally=None if row["resolved_locally"] is None else bool(row["resolved_locally"]),
            created_at=_aware(row["created_at"]), in_progress_at=_aware(row["in_progress_at"]),
            second_line=bool(row["second_line"]), overdue=overdue)

    def list_tickets(self, state: str | None = None, severity_class: str | None = None,
                     item: str | None = None, overdue: bool | None = None,
                     limit: int = 200) -> list[TicketView]:
        now = self.clock()
        query = select(tickets).order_by(tickets.c.id.desc()).limit(max(1, min(limit, 5000)))
        if state:
            query = query.where(tickets.c.state == state)
        if severity_class:
            query = query.where(tickets.c.severity_class == severity_class)
        if item:
            try:
                query = query.where(tickets.c.item == normalize_item_id(item))
            except ValueError:
                return []
        if overdue is not None:
            late = and_(tickets.c.state.in_(OPEN_STATES), or_(
                and_(tickets.c.acknowledged_at.is_(None), tickets.c.response_deadline <= to_db(now)),
                tickets.c.resolution_deadline <= to_db(now)))
            query = query.where(late if overdue else ~late)
        with self.engine.connect() as conn:
            return [self._view(row, now) for row in conn.execute(query).mappings()]

    def get_ticket(self, ticket_id: int) -> TicketView | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(tickets).where(tickets.c.id == ticket_id)).mappings().first()
        return None if row is None else self._view(row)

    def timeline(self, ticket_id: int) -> list[AuditEntry]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(audit_log).where(audit_log.c.ticket_id == ticket_id)
                                .order_by(audit_log.c.id)).mappings().all()
        return [AuditEntry(id=row["id"], ticket_id=row["ticket_id"], at=_aware(row["at"]),
                           actor=row["actor"], action=row["action"],
                           before=json.loads(row["before_value"]), after=json.loads(row["after_value"]),
                           note=row["note"]) for row in rows]

    # -- actions by people ---------------------------------------------------------------------

    def _act(self, ticket_id: int, actor: str, action: str, allowed: Sequence[str],
             changes: Callable[[dict[str, Any], datetime], dict[str, Any]], note: str = "") -> TicketView:
        if not actor:
            raise InvalidInputError("缺少操作人")
        now = self.clock()
        with self._write() as (conn, ctx):
            row = conn.execute(select(tickets).where(tickets.c.id == ticket_id)
                               .with_for_update()).mappings().first()
            if row is None:
                raise TicketNotFoundError(ticket_id)
            current = dict(row)
            if current["state"] not in allowed:
                raise InvalidTransitionError(ticket_id, current["state"], action)
            current = self._change(conn, ctx, current, changes(current, now), actor, action, note, now)
        return self._view(current, now)

    def acknowledge(self, ticket_id: int, actor: str) -> TicketView:
        def changes(row: dict[str, Any], now: datetime) -> dict[str, Any]:
            return {"state": "acknowledged", "acknowledged_at": now, **self._late_flags(row, now, False)}

        return self._act(ticket_id, actor, "acknowledge", ("open",), changes)

    def start_progress(self, ticket_id: int, actor: str) -> TicketView:
        def changes(row: dict[str, Any], now: datetime) -> dict[str, Any]:
            found: dict[str, Any] = {"state": "in_progress", "in_progress_at": now}
            if row["acknowledged_at"] is None:
                found |= {"acknowledged_at": now, **self._late_flags(row, now, False)}
            return found

        return self._act(ticket_id, actor, "start_progress", ("open", "acknowledged"), changes)

    def add_note(self, ticket_id: int, actor: str, text: str) -> TicketView:
        if not text.strip():
            raise InvalidInputError("备注不能为空")
        return self._act(ticket_id, actor, "add_note", db.STATES, lambda _row, _now: {}, text.strip())

    def resolve(self, ticket_id: int, actor: str, note: str = "") -> TicketView:
        def changes(row: dict[str, Any], now: datetime) -> dict[str, Any]:
            return {"state": "resolved", "resolved_at": now, **self._late_flags(row, now, True)}

        return self._act(ticket_id, actor, "resolve", OPEN_STATES, changes, note.strip())

    def close(self, ticket_id: int, actor: str, cause: str, solution: str,
              resolved_locally: bool) -> TicketView:
        if not cause.strip():
            raise InvalidInputError("关闭工单需要填写原因")
        if not solution.strip():
            raise InvalidInputError("关闭工单需要填写解决方案")

        def changes(_row: dict[str, Any], now: datetime) -> dict[str, Any]:
            return {"state": "closed", "closed_at": now, "cause": cause.strip(), "solution": solution.strip(),
                    "resolved_locally": bool(resolved_locally)}

        return self._act(ticket_id, actor, "close", ("resolved",), changes)

    # -- deadlines passing ---------------------------------------------------------------------

    def check_deadlines(self) -> list[int]:
        """Flag open tickets whose deadline passed, escalate them and message the second line."""
        now = self.clock()
        due = and_(tickets.c.state.in_(OPEN_STATES), or_(
            and_(tickets.c.acknowledged_at.is_(None), tickets.c.response_breached.is_(False),
                 tickets.c.response_deadline <= to_db(now)),
            and_(tickets.c.resolution_breached.is_(False), tickets.c.resolution_deadline <= to_db(now))))
        escalated: list[int] = []
        with self._write() as (conn, ctx):
            rows = conn.execute(select(tickets).where(due).order_by(tickets.c.id).limit(500)
                                .with_for_update()).mappings().all()
            for found in rows:
                row = dict(found)
                changes: dict[str, Any] = {"escalated": True}
                which = []
                if row["acknowledged_at"] is None and _aware(row["response_deadline"]) <= now \
                        and not row["response_breached"]:
                    changes["response_breached"] = True
                    which.append("response")
                if _aware(row["resolution_deadline"]) <= now and not row["resolution_breached"]:
                    changes["resolution_breached"] = True
                    which.append("resolution")
                note = "超过" + "、".join(_DEADLINE_ZH[w] for w in which)
                row = self._change(conn, ctx, row, changes, SCHEDULER_ACTOR, "escalate", note, now)
                for deadline in which:
                    self._enqueue(conn, ctx, row, "escalation", "second_line",
                                  f"escalation|{row['id']}|{deadline}", now)
                escalated.append(row["id"])
        return escalated

    def requeue_dead_letter(self, message_id: int, actor: str) -> None:
        """Send a dead letter again (after the operator fixed the channel); audited on its ticket."""
        if not actor:
            raise InvalidInputError("缺少操作人")
        now = self.clock()
        with self._write() as (conn, ctx):
            row = conn.execute(select(db.outbox.c.id, db.outbox.c.ticket_id, db.outbox.c.state,
                                      db.outbox.c.channel, db.outbox.c.last_error)
                               .where(db.outbox.c.id == message_id)).first()
            if row is None:
                raise MessageNotFoundError(message_id)
            if row.state != "dead":
                raise InvalidInputError(f"消息 {message_id} 不是发送失败的消息")
            conn.execute(update(db.outbox).where(db.outbox.c.id == message_id),
                         {"state": "pending", "attempts": 0, "next_attempt_at": to_db(now)})
            if row.ticket_id is not None:
                self._audit(ctx, row.ticket_id, actor, "requeue_message",
                            {"message": message_id, "state": "dead", "last_error": row.last_error},
                            {"message": message_id, "state": "pending"}, f"重新发送消息（{row.channel}）",
                            now)
            ctx.channels.add(row.channel)

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(select(func.count()).select_from(db.schema_version))


def _event_key(alert: Alert, route: str) -> str:
    return f"{alert.fingerprint}|{alert.starts_utc().strftime('%Y%m%dT%H%M%S.%f')}|{alert.status}|{route}"


def _aware(moment: Any) -> Any:
    """Datetimes read back from the database are naive UTC; make them aware."""
    if isinstance(moment, datetime) and moment.tzinfo is None:
        return from_db(moment)
    return moment


def _is_deadlock(exc: OperationalError) -> bool:
    code = getattr(exc.orig, "args", (None,))[0]
    return code in (1213, 1205)
