"""Tickets: created from Alertmanager notifications, worked by people, audited, with SLA clocks.

One ticket per *problem*: normally per alert (fingerprint + startsAt), not per notification
group. Alertmanager groups alerts by labels and re-sends the whole group whenever one alert
changes, so a group is a delivery unit, not a problem: alerts in one group start, resolve and
get worked at different times, and the contract scores response and resolution per problem.
Each ticket keeps the `groupKey` of the
notification that created it, so the console can show the alerts that arrived together. An alert
that fires again after resolving gets a new startsAt from Alertmanager and so a new ticket, linked
to the earlier ticket of the same problem (payload.problem_key_of: the service, or item + check +
target), resolved or closed, as a recurrence when it starts within 30 days of that ticket's
resolution (一次性解决率).

One outage (or stall) of one service is one ticket. Its follow-up alerts, which the rules mark with
`sla_event` (30-minute restore warned and breached, 2-hour limit near and exceeded), join the
not-closed ticket of the same service and class: a timeline entry, and for a breach or the limit a
message to the second line, each at most once per ticket; never a ticket or clock of their own.

Clocks (SPEC §3): the response deadline (#8 substantive response; #5 phone response for stalls and
outages) is wall-clock time; the resolution deadline (#9) is working hours on the calendar for the
routine, general and urgent classes and wall-clock time (30 minutes) for stalls and outages. Both
run from when the problem began (the alert's `started_at` annotation when it has one).

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
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, and_, func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from einvoice_core.catalogue import normalize_item_id
from einvoice_core.contract import (
    REPORT_CHANNEL_ZH,
    SERVICE_LABEL,
    SLA_EVENT_ZH,
    TICKET_CLASS_ZH,
    TICKET_STATE_ZH,
    ReportChannel,
    Route,
    SlaEvent,
    TicketClass,
)

from . import db, duty
from .archive import FORMAT_ZH, REPORTS_PAGE, list_archive
from .calendar import WorkingCalendar, load_calendar_data
from .db import OPEN_STATES, alert_events, audit_log, from_db, notifications, ticket_alerts, tickets, to_db
from .messaging.base import Channel, Message
from .messaging.redact import redact
from .notices import TICKET_LINK_TEXT, NoticeKind, render_notice
from .payload import Alert, Notification, problem_key_of, sla_event_of, ticket_class_of
from .rendering import render_messages, ticket_link
from .settings import Settings
from .systems import is_drill, system_of

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
SYSTEM_ACTOR = "alertmanager"
SCHEDULER_ACTOR = "system"
_DEADLINE_ZH = {"response": "响应时限", "resolution": "解决时限", "substantive": "实质响应时限"}
ACTION_ZH = {"create": "创建", "acknowledge": "响应", "start_progress": "开始处理", "add_note": "备注",
             "resolve": "解决", "close": "关闭", "alert_resolved": "告警恢复", "escalate": "超时升级",
             "second_line": "转二线", "requeue_message": "重新发送", "sla_event": "SLA 事件",
             "alert_joined": "告警并入", "report": "报告问题", "escalate_second_line": "转二线",
             "forward_bureau": "提交税务局系统管理员", "major_incident": "重大事件",
             "agreed_fix": "约定解决日期", "link": "关联同一问题", "typical": "典型问题",
             "fault_owner": "故障定责", "change_link": "关联变更", "complaint_link": "关联投诉"}
ESCALATION_TARGETS = {"second_line": "escalate_second_line", "bureau": "forward_bureau"}
"""Where an operator escalates a ticket, and the timeline action that records it."""
REPORT_SOURCE = "report"
MAX_REPORT_DELAY = timedelta(hours=24)
"""How long after the fact a report may be entered with its own report time."""
RESTORE_CLASSES = (TicketClass.STALL, TicketClass.OUTAGE)
"""Classes held to the 30-minute restore: one ticket per service and class while it lasts."""
REPORT_NOTICE_SETTLE = 60.0
"""Seconds a report's files must be unchanged before it is announced (one run writes HTML then PDF)."""
REPORT_NOTICE_WINDOW = 12 * 3600.0
"""Reports last written longer ago than this are not announced (older ones were, or the notifier was
down for half a day); shorter than the outbox's shortest retention (1 d), so no key is forgotten
while its report still counts as new."""
ESCALATING_EVENTS = (SlaEvent.RESTORE_BREACHED, SlaEvent.LIMIT_NEAR, SlaEvent.LIMIT_EXCEEDED)
"""SLA follow-ups that escalate the ticket to the second line; a restore warning is only noted."""


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
        super().__init__(f"工单 {ticket_id} 当前状态为「{_zh(TICKET_STATE_ZH, state)}」，"
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
    problem_key: str | None = None
    sla_events: tuple[str, ...] = ()
    """The SLA follow-ups applied to this ticket (SlaEvent values)."""
    sla_event: str | None = None
    """Set only on the view rendered for one SLA follow-up message: which one it is."""
    annotations: dict[str, str] = field(default_factory=dict)
    """The annotations of the alert a message is being rendered for (not stored; empty otherwise)."""
    source: str = "alert"
    """alert, or report: opened by an operator for a problem a person reported."""
    report_channel: str | None = None
    reporter: str | None = None
    substantive_deadline: datetime | None = None
    """Reported problems: the substantive response (#8, met by starting work); response_deadline is
    then the channel's first response (#5, met by acknowledging)."""
    substantive_breached: bool = False
    agreed_fix_at: datetime | None = None
    agreed_fix_ref: str | None = None
    duplicate_of: int | None = None
    escalated_to: str | None = None
    major_incident_at: datetime | None = None
    typical: bool = False
    system: str | None = None
    """The system of the contract's scope (thresholds.yaml `systems`; systems.system_of)."""
    drill: bool = False
    """Opened by an alert inside a declared disaster-recovery drill: reported apart from the SLA."""

    @property
    def report_channel_zh(self) -> str:
        return _zh(REPORT_CHANNEL_ZH, self.report_channel) if self.report_channel else ""

    @property
    def state_zh(self) -> str:
        return _zh(TICKET_STATE_ZH, self.state)

    @property
    def severity_zh(self) -> str:
        return _zh(TICKET_CLASS_ZH, self.severity_class)

    @property
    def sla_event_zh(self) -> str:
        return _zh(SLA_EVENT_ZH, self.sla_event) if self.sla_event else ""


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


@dataclass(frozen=True, slots=True)
class ResolutionRates:
    """本级解决率 and 一次性解决率 of one period [start, end) (SPEC §3 #10, #11).

    本级解决率: of the tickets closed in the period, those solved at this level: the closer ticked
    "resolved locally" and the ticket was never escalated to the second line (a deadline breach or
    an SLA follow-up escalates it). 一次性解决率: of the tickets resolved in the period, those whose
    problem did not start again within the recurrence window (30 days) after the resolution. A
    period's 一次性解决率 is final only a window after its end; until then a later recurrence can
    still lower it. A ratio is None when the period has no ticket to count."""

    start: datetime
    end: datetime
    closed: int
    closed_locally: int
    resolved: int
    recurred: int

    @property
    def local_ratio(self) -> float | None:
        return self.closed_locally / self.closed if self.closed else None

    @property
    def one_time_ratio(self) -> float | None:
        return (self.resolved - self.recurred) / self.resolved if self.resolved else None


def resolution_rates(conn: Connection, start: datetime, end: datetime) -> ResolutionRates:
    """The two rates of [start, end), read from the store (aware datetimes)."""
    lo, hi = to_db(start), to_db(end)
    # A ticket linked to another of the same problem (duplicate_of) is that problem counted again.
    # Drill tickets (a declared disaster-recovery drill) are reported apart, never in the rates.
    closed = and_(tickets.c.state == "closed", tickets.c.closed_at >= lo, tickets.c.closed_at < hi,
                  tickets.c.duplicate_of.is_(None), tickets.c.drill.is_not(True))
    closed_count = conn.execute(select(func.count()).where(closed)).scalar() or 0
    local_count = conn.execute(select(func.count()).where(
        closed, tickets.c.resolved_locally.is_(True), tickets.c.escalated.is_(False))).scalar() or 0
    resolved = and_(tickets.c.state.in_(("resolved", "closed")), tickets.c.resolved_at >= lo,
                    tickets.c.resolved_at < hi, tickets.c.duplicate_of.is_(None),
                    tickets.c.drill.is_not(True))
    resolved_count = conn.execute(select(func.count()).where(resolved)).scalar() or 0
    later = tickets.alias("later")
    recurred = conn.execute(select(func.count()).where(
        resolved, select(later.c.id).where(later.c.recurrence_of == tickets.c.id).exists())).scalar() or 0
    return ResolutionRates(start, end, closed_count, local_count, resolved_count, recurred)


def month_bounds(moment: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The calendar month (in `tz`, Asia/Shanghai for the reports) containing `moment`, in UTC."""
    local = moment.astimezone(tz)
    first = date(local.year, local.month, 1)
    following = date(local.year + local.month // 12, local.month % 12 + 1, 1)
    return (datetime.combine(first, time(0), tz).astimezone(UTC),
            datetime.combine(following, time(0), tz).astimezone(UTC))


@dataclass(slots=True)
class _Ctx:
    """What one transaction produced: rows written in bulk before commit, senders to wake after."""

    channels: set[str] = field(default_factory=set)
    messages: int = 0
    shared_messages: bool = False
    """Some alert of this transaction was also delivered on the route that shares its message keys
    (on-site and important period): look for its messages already in the outbox before inserting."""
    audit: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    mobiles: dict[str, list[str]] = field(default_factory=dict)
    """Who is on duty per line, looked up once per transaction."""

    def flush(self, conn: Connection) -> None:
        """One executemany per table: statements compiled once, parameters sent as a batch.

        A message already in the outbox under the same key is dropped: the on-site and the
        important-period receivers deliver the same alert, and each channel gets it once."""
        if self.outbox and self.shared_messages:
            keys = [row["dedupe_key"] for row in self.outbox]
            taken: set[str] = set()
            for start in range(0, len(keys), 500):
                taken.update(conn.execute(select(db.outbox.c.dedupe_key).where(
                    db.outbox.c.dedupe_key.in_(keys[start:start + 500]))).scalars())
            if taken:
                kept = [row for row in self.outbox if row["dedupe_key"] not in taken]
                self.messages -= len(self.outbox) - len(kept)
                self.outbox[:] = kept
        for table, rows in ((alert_events, self.events), (audit_log, self.audit), (db.outbox, self.outbox)):
            if rows:
                conn.execute(table.insert(), rows)
                rows.clear()


severity_class_of = ticket_class_of
"""The ticket class of an alert's labels (payload.ticket_class_of; the old name)."""


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

    def deadlines(self, severity_class: str, began: datetime) -> tuple[datetime, datetime]:
        """(response, resolution) deadlines of a ticket of this class whose problem began then.

        The response is counted in hours around the clock (SPEC §3 #8, and #5's 10-minute phone
        response for stalls and outages); the resolution in working hours on the calendar, or
        around the clock for the classes whose policy says `wall` (the 30-minute restore)."""
        policy = self.settings.sla[TicketClass(severity_class)]
        response = began + timedelta(seconds=policy.response)
        if policy.clock == "wall":
            return response, began + timedelta(seconds=policy.resolution)
        return response, self.calendar.add_working_seconds(began, policy.resolution)

    # -- ingest --------------------------------------------------------------------------------

    def ingest(self, notification: Notification, route: str = Route.FIRST_LINE) -> IngestResult:
        """Store a webhook notification; raise StoreUnavailableError when the database fails."""
        try:
            found = Route(route)
        except ValueError:
            raise ValueError(f"unknown route {route!r}") from None
        for attempt in range(4):
            try:
                return self._ingest_once(notification, found)
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

    def _ingest_once(self, notification: Notification, route: Route) -> IngestResult:
        now = self.clock()
        new_events = 0
        with self._write() as (conn, ctx):
            keyed = [(alert, _event_key(alert, route)) for alert in notification.alerts]
            seen: set[str] = set()
            if keyed:
                # The on-site and important-period deliveries of one alert share message keys:
                # whether the other one came already is asked in the same query.
                partner = _SHARED_ROUTE.get(route)
                others = [_event_key(alert, partner) for alert, _ in keyed] if partner else []
                found = conn.execute(select(alert_events.c.event_key).where(
                    alert_events.c.event_key.in_([key for _, key in keyed] + others))).scalars()
                seen = set(found)
                ctx.shared_messages = not seen.isdisjoint(others)
            fresh: list[tuple[Alert, str]] = []
            for alert, key in keyed:
                if key not in seen:  # also drops the same alert twice in one payload
                    seen.add(key)
                    fresh.append((alert, key))
            alerts = [alert for alert, _ in fresh]
            index, rows = self._tickets_for(conn, alerts)
            new_tickets = self._place(conn, ctx, notification, alerts, index, rows, now, route)
            for alert, key in fresh:
                ticket_id = index[(alert.fingerprint, to_db(alert.starts_utc()))]
                row = rows[ticket_id]
                ctx.events.append({"event_key": key, "ticket_id": ticket_id, "status": alert.status,
                                   "route": route.value, "received_at": to_db(now)})
                new_events += 1
                event = sla_event_of(alert.labels)
                own = (row["fingerprint"] == alert.fingerprint
                       and _aware(row["starts_at"]) == alert.starts_utc())
                if not own:
                    # An alert that joined a ticket another alert opened: a follow-up applies its
                    # SLA event; the outage alert itself ends the outage; neither sends a new card.
                    if event is not None:
                        if alert.status == "firing":
                            rows[ticket_id] = self._sla_event(conn, ctx, row, event, now)
                    elif alert.status == "resolved":
                        rows[ticket_id] = row = self._alert_resolved(conn, ctx, row, alert, now)
                        self._enqueue(conn, ctx, row, alert.status, route, _message_key(alert, route), now,
                                      annotations=alert.annotations)
                    continue
                if alert.status == "resolved":
                    row = self._alert_resolved(conn, ctx, row, alert, now)
                elif route is not Route.FIRST_LINE and not row["second_line"]:
                    note = "经二线路由送达" if route is Route.SECOND_LINE else "重要时期：一线、二线均已通知"
                    row = self._change(conn, ctx, row, {"second_line": True}, SYSTEM_ACTOR, "second_line",
                                       note, now)
                rows[ticket_id] = row
                self._enqueue(conn, ctx, row, alert.status, route, _message_key(alert, route), now,
                              annotations=alert.annotations)
                if event is not None and alert.status == "firing":
                    rows[ticket_id] = self._sla_event(conn, ctx, row, event, now)
            conn.execute(notifications.insert(), {
                "group_key": notification.group_key, "receiver": notification.receiver[:255],
                "status": notification.status, "route": route.value, "alert_count": len(notification.alerts),
                "new_events": new_events, "truncated_alerts": notification.truncated_alerts,
                "received_at": to_db(now)})
        return IngestResult(len(notification.alerts), new_events, new_tickets, ctx.messages)

    def _tickets_for(self, conn: Connection, alerts: Sequence[Alert],
                     ) -> tuple[dict[tuple[str, Any], int], dict[int, dict[str, Any]]]:
        """The tickets these alerts already belong to: (fingerprint, startsAt) → ticket id, whether
        the alert opened the ticket or joined it; and the rows by id."""
        if not alerts:
            return {}, {}
        fingerprints = sorted({alert.fingerprint for alert in alerts})
        # Locked: another replica changing the same tickets now waits for this transaction (and
        # then reads what it wrote) instead of overwriting it.
        rows = {row["id"]: dict(row) for row in conn.execute(
            select(tickets).where(tickets.c.fingerprint.in_(fingerprints)).order_by(tickets.c.id)
            .with_for_update()).mappings()}
        index = {(row["fingerprint"], row["starts_at"]): ticket_id for ticket_id, row in rows.items()}
        joinable = sorted({alert.fingerprint for alert in alerts if alert.labels.get(SERVICE_LABEL)})
        links = conn.execute(select(ticket_alerts.c.fingerprint, ticket_alerts.c.starts_at,
                                    ticket_alerts.c.ticket_id)
                             .where(ticket_alerts.c.fingerprint.in_(joinable))).all() if joinable else []
        for fingerprint, starts_at, ticket_id in links:
            index[(fingerprint, starts_at)] = ticket_id
            self._load(conn, rows, ticket_id)
        return index, rows

    @staticmethod
    def _load(conn: Connection, rows: dict[int, dict[str, Any]], ticket_id: int) -> dict[str, Any]:
        if ticket_id not in rows:
            found = conn.execute(select(tickets).where(tickets.c.id == ticket_id)
                                 .with_for_update()).mappings().one()
            rows[ticket_id] = dict(found)
        return rows[ticket_id]

    def _place(self, conn: Connection, ctx: _Ctx, notification: Notification, alerts: Sequence[Alert],
               index: dict[tuple[str, Any], int], rows: dict[int, dict[str, Any]], now: datetime,
               route: Route) -> int:
        """Give every alert seen for the first time its ticket: join the ticket of its outage or
        stall where there is one, else open a new ticket. Return how many were opened."""
        unknown: dict[tuple[str, Any], Alert] = {}
        for alert in alerts:
            key = (alert.fingerprint, to_db(alert.starts_utc()))
            if key not in index:
                unknown.setdefault(key, alert)
        main = [(key, alert) for key, alert in unknown.items() if sla_event_of(alert.labels) is None]
        follow_ups = [(key, alert) for key, alert in unknown.items()
                      if sla_event_of(alert.labels) is not None]
        opening: list[Alert] = []
        later: list[tuple[tuple[str, Any], Alert]] = []
        outages: set[str] = set()
        for key, alert in main:
            # The outage alert of a service whose ticket a follow-up opened (it arrived first).
            if not self._join(conn, ctx, alert, key, index, rows, OPEN_STATES, now):
                outage = _open_outage_key(alert.labels)
                if outage is not None and outage in outages:
                    later.append((key, alert))  # a second alert of the same outage: joins the first
                    continue
                if outage is not None:
                    outages.add(outage)
                opening.append(alert)
        created = self._create_tickets(conn, ctx, notification, opening, index, rows, now, route)
        for key, alert in later:
            if not self._join(conn, ctx, alert, key, index, rows, OPEN_STATES, now):
                created += self._create_tickets(conn, ctx, notification, [alert], index, rows, now, route)
        for key, alert in follow_ups:
            # Not closed: a breach reported just after the outage ended still belongs to it.
            if not self._join(conn, ctx, alert, key, index, rows, ("resolved", *OPEN_STATES), now):
                created += self._create_tickets(conn, ctx, notification, [alert], index, rows, now, route)
        return created

    def _join(self, conn: Connection, ctx: _Ctx, alert: Alert, key: tuple[str, Any],
              index: dict[tuple[str, Any], int], rows: dict[int, dict[str, Any]], states: Sequence[str],
              now: datetime) -> bool:
        """Attach a service-level stall/outage alert to its service's ticket of that class."""
        ticket_class = ticket_class_of(alert.labels)
        if ticket_class not in RESTORE_CLASSES or not alert.labels.get(SERVICE_LABEL):
            return False
        found = conn.execute(
            select(tickets.c.id).where(tickets.c.problem_key == problem_key_of(alert.labels),
                                       tickets.c.severity_class == ticket_class.value,
                                       tickets.c.state.in_(states))
            .order_by(tickets.c.id.desc()).limit(1)).scalar()
        if found is None:
            return False
        conn.execute(ticket_alerts.insert(), {"fingerprint": alert.fingerprint, "starts_at": key[1],
                                              "ticket_id": found})
        index[key] = found
        self._load(conn, rows, found)
        self._audit(ctx, found, SYSTEM_ACTOR, "alert_joined", {},
                    {"alertname": alert.labels.get("alertname", "")[:255]}, "", now)
        return True

    def _create_tickets(self, conn: Connection, ctx: _Ctx, notification: Notification,
                        alerts: Sequence[Alert], index: dict[tuple[str, Any], int],
                        rows: dict[int, dict[str, Any]], now: datetime, route: Route) -> int:
        """Insert the tickets of these alerts in one statement; index them; return how many."""
        if not alerts:
            return 0
        earlier = self._recent_problems(conn, alerts, now)
        values = [self._ticket_values(notification, alert, now, route, earlier) for alert in alerts]
        ids = conn.execute(tickets.insert().returning(tickets.c.id, sort_by_parameter_order=True),
                           values).scalars().all()
        for alert, row, ticket_id in zip(alerts, values, ids, strict=True):
            row["id"] = ticket_id
            for name in ("acknowledged_at", "in_progress_at", "resolved_at", "closed_at", "cause", "solution",
                         "resolved_locally"):
                row[name] = None
            index[(alert.fingerprint, row["starts_at"])] = ticket_id
            rows[ticket_id] = row
            self._audit(ctx, ticket_id, SYSTEM_ACTOR, "create", {},
                        {"state": "open", "severity_class": row["severity_class"],
                         "recurrence_of": row["recurrence_of"]}, "", now)
        return len(values)

    def _ticket_values(self, notification: Notification, alert: Alert, now: datetime, route: Route,
                       earlier: Mapping[str, list[tuple[datetime, int]]]) -> dict[str, Any]:
        labels = dict(alert.labels)
        ticket_class = ticket_class_of(labels)
        starts = alert.starts_utc()
        began = alert.began_utc()
        response, resolution = self.deadlines(ticket_class, began)
        # An alert about an item (e.g. no check covers it) has no target: its instance is the exporter.
        found = labels.get("target") or ("" if "item" in labels else labels.get("instance", ""))
        target = found[:512] or None
        problem = problem_key_of(labels)
        since = began - timedelta(seconds=self.settings.recurrence_window)
        recurrence = next((ticket_id for resolved_at, ticket_id in earlier.get(problem, [])
                           if since <= resolved_at <= began), None)
        return {
            "fingerprint": alert.fingerprint, "starts_at": to_db(starts),
            "group_key": notification.group_key, "alertname": labels.get("alertname", "")[:255],
            "item": _item_of(labels), "zone": labels.get("zone"), "target": target,
            "severity_class": ticket_class.value, "state": "open",
            "summary": alert.annotations.get("summary", ""),
            "description": alert.annotations.get("description", ""),
            "labels": json.dumps(labels, ensure_ascii=False, sort_keys=True),
            "ends_at": None, "created_at": to_db(now), "updated_at": to_db(now),
            "response_deadline": to_db(response), "resolution_deadline": to_db(resolution),
            "response_breached": False, "resolution_breached": False, "escalated": False,
            "second_line": route is not Route.FIRST_LINE, "recurrence_of": recurrence,
            "problem_key": problem, "sla_events": "", "open_outage_key": _open_outage_key(labels),
            "system": system_of(labels), "drill": is_drill(labels),
        }

    def _recent_problems(self, conn: Connection, alerts: Sequence[Alert],
                         now: datetime) -> dict[str, list[tuple[datetime, int]]]:
        """Resolved or closed tickets of these problems that a new alert could be a recurrence of:
        problem key → [(resolved at, ticket id)], newest first."""
        keys = sorted({problem_key_of(alert.labels) for alert in alerts})
        oldest = min(min(alert.began_utc() for alert in alerts), now)
        since = to_db(oldest - timedelta(seconds=self.settings.recurrence_window))
        found: dict[str, list[tuple[datetime, int]]] = {}
        rows = conn.execute(
            select(tickets.c.problem_key, tickets.c.resolved_at, tickets.c.id)
            .where(tickets.c.problem_key.in_(keys), tickets.c.state.in_(("resolved", "closed")),
                   tickets.c.resolved_at >= since)
            .order_by(tickets.c.resolved_at.desc(), tickets.c.id.desc()))
        for problem, resolved_at, ticket_id in rows:
            found.setdefault(problem, []).append((_aware(resolved_at), ticket_id))
        return found

    def _sla_event(self, conn: Connection, ctx: _Ctx, row: dict[str, Any], event: SlaEvent,
                   now: datetime) -> dict[str, Any]:
        """Apply one SLA follow-up to its ticket, once: a timeline entry; a breach or the 2-hour
        limit also escalates the ticket and sends one message to the second line. A restore breach
        the scheduler already escalated (the ticket's own 30-minute clock) is not sent again, so
        one outage counts at most one restore breach."""
        done = {name for name in str(row.get("sla_events") or "").split(",") if name}
        if event.value in done:
            return row
        changes: dict[str, Any] = {"sla_events": ",".join(sorted({*done, event.value}))}
        send = event in ESCALATING_EVENTS and row["state"] in OPEN_STATES
        if event is SlaEvent.RESTORE_BREACHED:
            if row["resolution_breached"]:
                send = False
            else:
                changes["resolution_breached"] = True
        if event in ESCALATING_EVENTS:
            changes["escalated"] = True
        row = self._change(conn, ctx, row, changes, SYSTEM_ACTOR, "sla_event", SLA_EVENT_ZH[event], now)
        if send:
            self._enqueue(conn, ctx, row, "escalation", Route.SECOND_LINE, f"sla|{row['id']}|{event.value}",
                          now, sla_event=event)
        return row

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

    @staticmethod
    def _substantive_flag(row: Mapping[str, Any], at: datetime) -> dict[str, Any]:
        """A reported problem whose work starts (or that is resolved) after its substantive-response
        deadline (#8) breached it."""
        deadline = _aware(row.get("substantive_deadline"))
        if (deadline is not None and row.get("in_progress_at") is None
                and not row.get("substantive_breached") and at > deadline):
            return {"substantive_breached": True}
        return {}

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
        if stored.get("state", OPEN_STATES[0]) not in OPEN_STATES and row.get("open_outage_key"):
            stored["open_outage_key"] = None  # the outage is over: the service's next one is a new ticket
        if stored:
            conn.execute(update(tickets).where(tickets.c.id == row["id"]),
                         {**stored, "updated_at": to_db(now)})
        self._audit(ctx, row["id"], actor, action, before, changes, note, now)
        return {**row, **stored, "updated_at": to_db(now)}

    # -- outbox --------------------------------------------------------------------------------

    def _enqueue(self, conn: Connection, ctx: _Ctx, row: Mapping[str, Any], event: str, route: Route,
                 key: str, now: datetime, sla_event: SlaEvent | None = None,
                 annotations: Mapping[str, str] | None = None) -> None:
        """Render and queue the messages of one ticket event for the people of `route`: the first
        line (on-site), the second line, or in an important period both (重要时期: everyone)."""
        routing = self.settings.routing
        if route is Route.SECOND_LINE:
            names, mobiles = list(routing.second_line), self._on_duty(conn, ctx, "second_line", now)
        elif route is Route.IMPORTANT_PERIOD:
            names = list(dict.fromkeys([*routing.first_line, *routing.second_line]))
            mobiles = list(dict.fromkeys([*self._on_duty(conn, ctx, "first_line", now),
                                          *self._on_duty(conn, ctx, "second_line", now)]))
        else:
            names, mobiles = list(routing.first_line), self._on_duty(conn, ctx, "first_line", now)
        mentions = tuple(mobiles) if event != "resolved" else ()
        view = self._view(row, now)
        if annotations:  # the card reads where it fails and since when (failing_checks, started_at)
            view = replace(view, annotations=dict(annotations))
        if sla_event is not None:
            fact = SLA_EVENT_ZH[sla_event]
            view = replace(view, sla_event=sla_event.value,
                           description=f"{fact}。{view.description}" if view.description else f"{fact}。")
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

    def _on_duty(self, conn: Connection, ctx: _Ctx, line: str, now: datetime) -> list[str]:
        """Mobiles to @ on a line: whoever the roster has on duty now, else the configured list."""
        if line not in ctx.mobiles:
            routing = self.settings.routing
            fallback = routing.second_line_mobiles if line == "second_line" else routing.duty_mobiles
            ctx.mobiles[line] = duty.duty_mobiles(conn, line, now, fallback)
        return ctx.mobiles[line]

    def _notice(self, conn: Connection, ctx: _Ctx, kind: NoticeKind, row: Mapping[Any, Any] | None,
                channels: Sequence[str], mobiles: Sequence[str], key: str, now: datetime,
                subject: str = "", note: str = "", actor: str = "", page: str = "/console/handovers",
                link_text: str = TICKET_LINK_TEXT) -> None:
        """Queue a notice (not an alert card) on these channels, @-ing these mobiles; its link is
        the ticket's, or the console `page` for a notice without one."""
        view = self._view(row, now) if row is not None else None
        if view is not None:
            url = ticket_link(self.settings.public_url, view.id, self.link_secret,
                              now + timedelta(seconds=self.settings.link_ttl))
        else:
            url = f"{self.settings.public_url.rstrip('/')}{page}"
        for channel in dict.fromkeys(channels):
            parts = render_notice(kind, view, url, self._max_bytes.get(channel, 4096), tuple(mobiles),
                                  subject=subject, note=note, actor=actor,
                                  template_dir=self.settings.template_dir, link_text=link_text)
            for index, message in enumerate(parts):
                self._insert_message(ctx, view.id if view else None, channel, kind[:32],
                                     f"{key}|{channel}|{index}", message, now)
                ctx.messages += 1
            if parts:
                ctx.channels.add(channel)

    def _insert_message(self, ctx: _Ctx, ticket_id: int | None, channel: str, event: str, dedupe_key: str,
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
        substantive = _aware(row.get("substantive_deadline"))
        overdue = row["state"] in OPEN_STATES and (
            (row["acknowledged_at"] is None and response_deadline <= now) or resolution_deadline <= now
            or (substantive is not None and row.get("in_progress_at") is None and substantive <= now))
        return TicketView(
            problem_key=row.get("problem_key"),
            sla_events=tuple(name for name in str(row.get("sla_events") or "").split(",") if name),
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
            second_line=bool(row["second_line"]), overdue=overdue,
            source=row.get("source") or "alert", report_channel=row.get("report_channel"),
            reporter=row.get("reporter"), substantive_deadline=_aware(row.get("substantive_deadline")),
            substantive_breached=bool(row.get("substantive_breached")),
            agreed_fix_at=_aware(row.get("agreed_fix_at")), agreed_fix_ref=row.get("agreed_fix_ref"),
            duplicate_of=row.get("duplicate_of"), escalated_to=row.get("escalated_to"),
            major_incident_at=_aware(row.get("major_incident_at")), typical=bool(row.get("typical")),
            system=row.get("system"), drill=bool(row.get("drill")))

    def list_tickets(self, state: str | None = None, severity_class: str | None = None,
                     item: str | None = None, overdue: bool | None = None,
                     limit: int = 200, system: str | None = None,
                     drill: bool | None = None) -> list[TicketView]:
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
        if system:
            query = query.where(tickets.c.system == system)
        if drill is not None:
            query = query.where(tickets.c.drill.is_(drill))
        if overdue is not None:
            late = and_(tickets.c.state.in_(OPEN_STATES), or_(
                and_(tickets.c.acknowledged_at.is_(None), tickets.c.response_deadline <= to_db(now)),
                tickets.c.resolution_deadline <= to_db(now),
                and_(tickets.c.in_progress_at.is_(None), tickets.c.substantive_deadline.is_not(None),
                     tickets.c.substantive_deadline <= to_db(now))))
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
             changes: Callable[[dict[str, Any], datetime], dict[str, Any]], note: str = "",
             after: Callable[[Connection, _Ctx, dict[str, Any], datetime], None] | None = None) -> TicketView:
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
            if after is not None:
                after(conn, ctx, current, now)
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
            return found | self._substantive_flag(row, now)

        return self._act(ticket_id, actor, "start_progress", ("open", "acknowledged"), changes)

    def add_note(self, ticket_id: int, actor: str, text: str) -> TicketView:
        if not text.strip():
            raise InvalidInputError("备注不能为空")
        return self._act(ticket_id, actor, "add_note", db.STATES, lambda _row, _now: {}, text.strip())

    def resolve(self, ticket_id: int, actor: str, note: str = "") -> TicketView:
        def changes(row: dict[str, Any], now: datetime) -> dict[str, Any]:
            return {"state": "resolved", "resolved_at": now, **self._late_flags(row, now, True),
                    **self._substantive_flag(row, now)}

        return self._act(ticket_id, actor, "resolve", OPEN_STATES, changes, note.strip())

    def close(self, ticket_id: int, actor: str, cause: str, solution: str,
              resolved_locally: bool) -> TicketView:
        if not cause.strip():
            raise InvalidInputError("关闭工单需要填写原因")
        if not solution.strip():
            raise InvalidInputError("关闭工单需要填写解决方案")

        def changes(row: dict[str, Any], now: datetime) -> dict[str, Any]:
            # 本级解决率 follows what the ticket did: escalated to the second line is not local.
            return {"state": "closed", "closed_at": now, "cause": cause.strip(), "solution": solution.strip(),
                    "resolved_locally": bool(resolved_locally) and not row["escalated"]}

        found = self.get_ticket(ticket_id)
        where = "提交税务局系统管理员" if found is not None and found.escalated_to == "bureau" else "升级二线"
        note = f"工单已{where}，不计入本级解决" if resolved_locally else ""
        return self._act(ticket_id, actor, "close", ("resolved",), changes,
                         note if found is not None and found.escalated else "")

    # -- reported problems, escalation, major incidents ------------------------------------------

    def report_deadlines(self, channel: ReportChannel, ticket_class: TicketClass,
                         reported: datetime) -> tuple[datetime, datetime, datetime]:
        """(first response #5, substantive response #8, resolution #9) of a problem reported then.

        The first response is the channel's time (phone 10 min, website 1 h, on-site 30 min, remote
        2 h), capped by the class's own response; the substantive response and the resolution are the
        class's clocks (#8 around the clock, #9 in working hours; 30 minutes for a stall or outage)."""
        substantive, resolution = self.deadlines(ticket_class, reported)
        first = min(reported + timedelta(seconds=self.settings.report_response[channel]), substantive)
        return first, substantive, resolution

    def report(self, actor: str, channel: str, reporter: str, summary: str, ticket_class: str,
               description: str = "", item: str | None = None, system: str | None = None,
               reported_at: datetime | None = None) -> TicketView:
        """Open a ticket for a problem a person reported (电话, 运维网站, 现场, 远程, 微信/QQ, 12366)."""
        if not actor:
            raise InvalidInputError("缺少操作人")
        errors = []
        try:
            found_channel = ReportChannel(channel)
        except ValueError:
            found_channel = None
            errors.append("请选择报告渠道")
        try:
            found_class = TicketClass(ticket_class)
        except ValueError:
            found_class = None
            errors.append("请选择问题级别")
        if not summary.strip():
            errors.append("请填写问题摘要")
        if not reporter.strip():
            errors.append("请填写报告人")
        item_id = None
        if item:
            try:
                item_id = normalize_item_id(item)
            except ValueError:
                errors.append(f"检查项 {item[:8]} 不存在")
        now = self.clock()
        reported = reported_at or now
        if reported.tzinfo is None:
            errors.append("报告时间需要带时区")
        elif reported > now + timedelta(minutes=1):
            errors.append("报告时间不能晚于当前时间")
        elif now - reported > MAX_REPORT_DELAY:
            errors.append("报告时间不能早于 24 小时前")
        if errors or found_channel is None or found_class is None:
            raise InvalidInputError("；".join(errors))
        first, substantive, resolution = self.report_deadlines(found_channel, found_class, reported)
        fingerprint = f"report-{secrets.token_hex(12)}"
        values = {
            "fingerprint": fingerprint, "starts_at": to_db(reported), "group_key": "", "alertname": "",
            "item": item_id, "zone": None, "target": (system or "").strip()[:512] or None,
            "severity_class": found_class.value, "state": "open", "summary": summary.strip()[:2000],
            "description": description.strip(), "labels": "{}", "ends_at": None,
            "created_at": to_db(now), "updated_at": to_db(now), "response_deadline": to_db(first),
            "resolution_deadline": to_db(resolution), "response_breached": False,
            "resolution_breached": False, "escalated": False, "second_line": False, "recurrence_of": None,
            "problem_key": f"{REPORT_SOURCE}|{fingerprint}", "sla_events": "", "source": REPORT_SOURCE,
            "report_channel": found_channel.value, "reporter": reporter.strip()[:500],
            "substantive_deadline": to_db(substantive), "substantive_breached": False, "typical": False,
            "system": system_of({"system": (system or "").strip()}, item_id), "drill": False,
        }
        with self._write() as (conn, ctx):
            ticket_id = conn.execute(tickets.insert().returning(tickets.c.id), values).scalar_one()
            row = conn.execute(select(tickets).where(tickets.c.id == ticket_id)).mappings().one()
            self._audit(ctx, ticket_id, actor, "report", {},
                        {"state": "open", "severity_class": found_class.value,
                         "report_channel": found_channel.value, "reported_at": reported},
                        f"{REPORT_CHANNEL_ZH[found_channel]}报告", now)
            self._notice(conn, ctx, "reported", row, self.settings.routing.first_line,
                         self._on_duty(conn, ctx, "first_line", now), f"report|{ticket_id}", now,
                         actor=actor)
        return self._view(row, now)

    def escalate(self, ticket_id: int, actor: str, target: str, note: str) -> TicketView:
        """Escalate to the second line (二线) or forward to the bureau's system administrators
        (问题提交税务局系统管理员核实处理): a timeline entry, a message to them, and the ticket no
        longer counts as solved at this level (本级解决率)."""
        action = ESCALATION_TARGETS.get(target)
        if action is None:
            raise InvalidInputError("升级去向需为二线或税务局系统管理员")
        if not note.strip():
            raise InvalidInputError("请填写升级说明")
        routing = self.settings.routing

        def changes(row: dict[str, Any], now: datetime) -> dict[str, Any]:
            if (row.get("escalated_to") or "") == target:
                done = "转二线" if target == "second_line" else "提交税务局系统管理员"
                raise InvalidInputError(f"工单已{done}")
            found: dict[str, Any] = {"escalated": True, "escalated_to": target}
            if target == "second_line":
                found["second_line"] = True
            return found

        def send(conn: Connection, ctx: _Ctx, row: dict[str, Any], now: datetime) -> None:
            if target == "second_line":
                channels, mobiles = routing.second_line, self._on_duty(conn, ctx, "second_line", now)
            else:
                channels, mobiles = routing.bureau_admins, list(routing.bureau_admin_mobiles)
            self._notice(conn, ctx, action, row, channels, mobiles,  # type: ignore[arg-type]
                         f"{action}|{row['id']}", now, note=note.strip(), actor=actor)

        return self._act(ticket_id, actor, action, OPEN_STATES, changes, note.strip(), after=send)

    def declare_major_incident(self, ticket_id: int, actor: str, note: str) -> TicketView:
        """重大事件: pages the second line for expert consultation (专家会诊); the ticket is what the
        incident analysis report is written from. The second line is involved, so it is escalated."""
        if not note.strip():
            raise InvalidInputError("请填写重大事件说明")

        def changes(row: dict[str, Any], now: datetime) -> dict[str, Any]:
            if row.get("major_incident_at") is not None:
                raise InvalidInputError("工单已宣布为重大事件")
            return {"major_incident_at": now, "escalated": True, "second_line": True}

        def send(conn: Connection, ctx: _Ctx, row: dict[str, Any], now: datetime) -> None:
            self._notice(conn, ctx, "major_incident", row, self.settings.routing.second_line,
                         self._on_duty(conn, ctx, "second_line", now), f"major|{row['id']}", now,
                         note=note.strip(), actor=actor)

        return self._act(ticket_id, actor, "major_incident", (*OPEN_STATES, "resolved"), changes,
                         note.strip(), after=send)

    def major_incidents(self, start: datetime, end: datetime) -> list[TicketView]:
        """Tickets declared major incidents in [start, end): the incident analysis report's list."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(tickets).where(
                tickets.c.major_incident_at >= to_db(start), tickets.c.major_incident_at < to_db(end))
                .order_by(tickets.c.major_incident_at)).mappings().all()
        return [self._view(row) for row in rows]

    def set_agreed_fix(self, ticket_id: int, actor: str, fix_at: datetime, approval_ref: str) -> TicketView:
        """A fix the bureau approved on its own schedule (监控、调优、程序优化, SPEC §3 #9.3): the agreed
        date replaces the resolution deadline. A breach already recorded stays recorded."""
        if not approval_ref.strip():
            raise InvalidInputError("请填写税务局批准文号或审批单号")
        if fix_at.tzinfo is None:
            raise InvalidInputError("约定日期需要带时区")

        def changes(row: dict[str, Any], now: datetime) -> dict[str, Any]:
            if fix_at <= now:
                raise InvalidInputError("约定解决日期需晚于当前时间")
            return {"resolution_deadline": fix_at, "agreed_fix_at": fix_at,
                    "agreed_fix_ref": approval_ref.strip()[:255]}

        return self._act(ticket_id, actor, "agreed_fix", OPEN_STATES, changes,
                         f"税务局批准：{approval_ref.strip()[:255]}")

    def link_same_problem(self, ticket_id: int, other_id: int, actor: str) -> TicketView:
        """Mark `ticket_id` as the same problem as `other_id` (a reported problem and the alert about
        it): the problem is counted once, on `other_id`, in the rates and reports."""
        if ticket_id == other_id:
            raise InvalidInputError("不能关联工单自身")
        other = self.get_ticket(other_id)
        if other is None:
            raise InvalidInputError(f"工单 {other_id} 不存在")
        root = other.duplicate_of or other_id

        def changes(row: dict[str, Any], now: datetime) -> dict[str, Any]:
            if row.get("duplicate_of") is not None:
                raise InvalidInputError(f"工单已关联到 #{row['duplicate_of']}")
            if root == row["id"]:
                raise InvalidInputError("两张工单已互相关联")
            return {"duplicate_of": root}

        return self._act(ticket_id, actor, "link", db.STATES, changes, f"与工单 #{root} 为同一问题，只计一次")

    def mark_typical(self, ticket_id: int, actor: str, typical: bool = True) -> TicketView:
        """A closed ticket marked (or unmarked) as a typical problem for the quarterly handbook."""
        return self._act(ticket_id, actor, "typical", ("closed",), lambda _row, _now: {"typical": typical},
                         "列为典型问题" if typical else "取消典型问题")

    # -- roster, handovers, inspections, knowledge ---------------------------------------------

    def add_shifts(self, actor: str, shifts: Sequence[duty.ShiftIn]) -> list[int]:
        if not actor:
            raise InvalidInputError("缺少操作人")
        with self._write() as (conn, _ctx):
            try:
                return duty.add_shifts(conn, shifts, actor, self.clock())
            except duty.RosterError as exc:
                raise InvalidInputError(str(exc)) from None

    def delete_shift(self, shift_id: int, actor: str) -> None:
        with self._write() as (conn, _ctx):
            if not duty.delete_shift(conn, shift_id):
                raise InvalidInputError(f"班次 {shift_id} 不存在")
        log.info("roster: %s deleted shift %s", actor, shift_id)

    def roster(self, start: datetime, end: datetime) -> list[duty.Shift]:
        with self.engine.connect() as conn:
            return duty.shifts_between(conn, start, end)

    def roster_cover(self, start: datetime, end: datetime) -> list[duty.RequiredShift]:
        with self.engine.connect() as conn:
            return duty.roster_cover(conn, self.calendar, start, end)

    def on_duty(self, at: datetime | None = None) -> dict[str, list[duty.Shift]]:
        with self.engine.connect() as conn:
            return duty.on_duty(conn, at or self.clock())

    def uncovered_shifts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return duty.uncovered_shifts(conn, self.calendar, self.clock(), self.settings.roster_horizon)

    def handover(self, actor: str, from_person: str, to_person: str, notes: str) -> duty.Handover:
        """交接班: the open tickets and the notes passed on, and a message to the first line."""
        if not actor:
            raise InvalidInputError("缺少操作人")
        errors = [text for ok, text in ((from_person.strip(), "请填写交班人"),
                                        (to_person.strip(), "请填写接班人")) if not ok]
        if errors:
            raise InvalidInputError("；".join(errors))
        now = self.clock()
        with self._write() as (conn, ctx):
            found = duty.record_handover(conn, actor, from_person.strip(), to_person.strip(), notes.strip(),
                                         now)
            listed = "、".join(f"#{i}" for i in found.open_tickets[:50]) or "无"
            note = f"未关闭工单：{listed}" + (f"\n交接事项：{found.notes}" if found.notes else "")
            self._notice(conn, ctx, "handover", None, self.settings.routing.first_line,
                         self._on_duty(conn, ctx, "first_line", now), f"handover|{found.id}", now,
                         subject=f"{found.from_person} → {found.to_person}", note=note, actor=actor)
        return found

    def handovers(self, limit: int = 50) -> list[duty.Handover]:
        with self.engine.connect() as conn:
            return duty.list_handovers(conn, limit)

    def local_today(self) -> date:
        return self.clock().astimezone(self.calendar.tz).date()

    def inspection(self, day: date) -> duty.Inspection | None:
        with self.engine.connect() as conn:
            return duty.get_inspection(conn, self.calendar, self.settings.inspection_due, day)

    def inspection_prefill(self) -> duty.Prefill:
        return duty.prefill_from_prometheus(self.settings.prometheus_url, self.settings.prometheus_timeout)

    def sign_inspection(self, actor: str, day: date, entries: Sequence[duty.InspectionEntry], notes: str,
                        source: str) -> duty.Inspection:
        if not actor:
            raise InvalidInputError("缺少操作人")
        with self._write() as (conn, _ctx):
            try:
                return duty.sign_inspection(conn, self.calendar, self.settings.inspection_due, day, entries,
                                            notes.strip(), source, actor, self.clock())
            except duty.RosterError as exc:
                raise InvalidInputError(str(exc)) from None

    def inspection_summary(self, start: date, end: date) -> duty.InspectionSummary:
        with self.engine.connect() as conn:
            try:
                return duty.inspection_summary(conn, self.calendar, self.settings.inspection_due, start, end,
                                               self.clock())
            except duty.RosterError as exc:
                raise InvalidInputError(str(exc)) from None

    def knowledge(self, query: str, typical_only: bool = False, limit: int = 100) -> list[dict[str, Any]]:
        """知识库: cause and solution of closed tickets, redacted (the handbook leaves the platform)."""
        with self.engine.connect() as conn:
            found = duty.search_knowledge(conn, query, typical_only, limit)
        return [{**row, **{key: redact(row[key] or "") for key in ("summary", "cause", "solution")}}
                for row in found]

    def rates(self, start: datetime, end: datetime) -> ResolutionRates:
        """本级解决率 and 一次性解决率 of [start, end) (aware datetimes); the monthly report reads it."""
        if start.tzinfo is None or end.tzinfo is None or end <= start:
            raise InvalidInputError("统计区间需要带时区的开始与结束时间，且结束晚于开始")
        with self.engine.connect() as conn:
            return resolution_rates(conn, start, end)

    # -- deadlines passing ---------------------------------------------------------------------

    def announce_reports(self, archive: Path) -> int:
        """《…》已生成: one notice to the first line for each report that has newly appeared in the
        archive (`einvoice-report --out`), linking to the console's 报告 page. A report counts as new
        while its files were last written between REPORT_NOTICE_SETTLE and REPORT_NOTICE_WINDOW ago
        (settled: the HTML and PDF of one run are both there); it is announced once per kind and
        period, by the outbox's unique key (kept for retention.sent_messages, at least a day, longer
        than the window), so a rerun of the same period, another replica or a restart sends nothing
        more. Returns the messages queued."""
        now = self.clock()
        fresh = [report for report in list_archive(archive)
                 if REPORT_NOTICE_SETTLE <= (now - report.modified).total_seconds() <= REPORT_NOTICE_WINDOW]
        if not fresh:
            return 0
        with self._write() as (conn, ctx):
            ctx.shared_messages = True  # flush() drops the keys already in the outbox
            for report in fresh:
                formats = "、".join(FORMAT_ZH[fmt] for fmt, _url, _size in report.files)
                self._notice(conn, ctx, "report_ready", None, self.settings.routing.first_line, (),
                             f"report|{report.kind}|{report.label}", now,
                             subject=f"《{report.title}》{report.label}", note=f"格式：{formats}",
                             page=REPORTS_PAGE, link_text="查看报告")
        return ctx.messages

    def check_deadlines(self) -> list[int]:
        """Flag open tickets whose deadline passed, escalate them and message the second line."""
        now = self.clock()
        due = and_(tickets.c.state.in_(OPEN_STATES), or_(
            and_(tickets.c.acknowledged_at.is_(None), tickets.c.response_breached.is_(False),
                 tickets.c.response_deadline <= to_db(now)),
            and_(tickets.c.resolution_breached.is_(False), tickets.c.resolution_deadline <= to_db(now)),
            and_(tickets.c.in_progress_at.is_(None), tickets.c.substantive_breached.is_(False),
                 tickets.c.substantive_deadline <= to_db(now))))
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
                if (row.get("substantive_deadline") is not None and row["in_progress_at"] is None
                        and not row["substantive_breached"] and _aware(row["substantive_deadline"]) <= now):
                    changes["substantive_breached"] = True
                    which.append("substantive")
                note = "超过" + "、".join(_DEADLINE_ZH[w] for w in which)
                row = self._change(conn, ctx, row, changes, SCHEDULER_ACTOR, "escalate", note, now)
                # Deadlines breached together: one message that states both.
                self._enqueue(conn, ctx, row, "escalation", Route.SECOND_LINE,
                              f"escalation|{row['id']}|{'+'.join(which)}", now)
                escalated.append(row["id"])
        return escalated

    def prune(self, batch: int = 1000, max_batches: int = 20) -> dict[str, int]:
        """Delete what no report reads once it is older than its retention (settings.retention):
        webhook records, the dedupe events of closed tickets, delivered messages. Tickets and their
        audit log, which the reports read, are never pruned. Small batches, each its own
        transaction, so running replicas are not held up; at most `max_batches` per table in one
        call (the first run on a large store continues on the next rounds: `pruned["more"]` is 1
        while something is left)."""
        now = self.clock()
        retention = self.settings.retention
        events_before = to_db(now - timedelta(seconds=retention.events))
        sent_before = to_db(now - timedelta(seconds=retention.sent_messages))
        closed = select(tickets.c.id).where(tickets.c.state == "closed", tickets.c.closed_at < events_before)
        plans = (
            ("notifications", notifications, notifications.c.received_at < events_before),
            # An alert still firing may be redelivered: its events stay while its ticket is not closed.
            ("alert_events", alert_events, and_(alert_events.c.received_at < events_before,
                                                alert_events.c.ticket_id.in_(closed))),
            ("sent_messages", db.outbox,
             and_(db.outbox.c.state == "sent", db.outbox.c.sent_at < sent_before)),
        )
        pruned: dict[str, int] = {}
        more = 0
        for name, table, condition in plans:
            pruned[name] = 0
            for _round in range(max_batches):
                with self._write() as (conn, _ctx):
                    ids = conn.execute(select(table.c.id).where(condition).order_by(table.c.id)
                                       .limit(batch)).scalars().all()
                    if ids:
                        conn.execute(table.delete().where(table.c.id.in_(ids)))
                pruned[name] += len(ids)
                if len(ids) < batch:
                    break
            else:
                more = 1
        if any(pruned.values()):
            log.info("pruned %s", ", ".join(f"{count} {name}" for name, count in pruned.items()))
        return {**pruned, "more": more}

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


def _open_outage_key(labels: Mapping[str, str]) -> str | None:
    """The unique key an open stall/outage ticket of a service holds (db.outage_key): a second
    replica opening a ticket for the same outage at the same moment fails on it and joins."""
    ticket_class = ticket_class_of(labels)
    if ticket_class not in RESTORE_CLASSES or not labels.get(SERVICE_LABEL):
        return None
    return db.outage_key(problem_key_of(labels), ticket_class.value)


def _event_key(alert: Alert, route: Route) -> str:
    starts = alert.starts_utc().strftime("%Y%m%dT%H%M%S.%f")
    return f"{alert.fingerprint}|{starts}|{alert.status}|{route.value}"


_SHARED_ROUTE = {Route.FIRST_LINE: Route.IMPORTANT_PERIOD, Route.IMPORTANT_PERIOD: Route.FIRST_LINE}
"""Routes whose deliveries of one alert share message keys (see _message_key)."""


def _message_key(alert: Alert, route: Route) -> str:
    """The outbox key of an alert transition: the on-site and the important-period deliveries of
    one alert share it, so a channel both name gets the message once."""
    return _event_key(alert, Route.SECOND_LINE if route is Route.SECOND_LINE else Route.FIRST_LINE)


def _zh(names: Mapping[Any, str], key: str) -> str:
    """The Chinese name of a contract value given as a plain string (itself when unknown)."""
    return names.get(key, key)


def _aware(moment: Any) -> Any:
    """Datetimes read back from the database are naive UTC; make them aware."""
    if isinstance(moment, datetime) and moment.tzinfo is None:
        return from_db(moment)
    return moment


def _is_deadlock(exc: OperationalError) -> bool:
    code = getattr(exc.orig, "args", (None,))[0]
    return code in (1213, 1205)
