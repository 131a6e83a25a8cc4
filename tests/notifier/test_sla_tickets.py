"""One outage is one ticket (its SLA follow-ups join it), the important-period route reaches
everyone, 本级解决率 / 一次性解决率 on a scripted set of tickets, and the schema-2 migration of a
store written by the previous release. On SQLite and on MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from einvoice_notifier import db
from einvoice_notifier.service import month_bounds
from sqlalchemy import func, inspect, select, text

from einvoice_core.contract import SLA_EVENT_ZH, Route, SlaEvent
from tests.notifier.support import FakeClock, alert, shanghai
from tests.notifier.test_tickets import World

T0 = shanghai(2026, 11, 27, 2, 0)  # a night: outages reach the second line directly


@pytest.fixture
def world(store_url: str) -> Iterator[World]:
    found = World(store_url, FakeClock(T0), mobiles=True)
    yield found
    found.notifier.engine.dispose()


def _outage(fingerprint: str, starts: datetime, status: str = "firing", ends: datetime | None = None,
            service: str = "intake", **labels: str) -> dict[str, Any]:
    """A service-level alert as the generated rules label it: no item, no target."""
    found = alert(fingerprint, starts, status, ends, alertname="EinvoiceServiceOutage",
                  severity_class="outage", service=service, **labels)
    for name in ("item", "zone", "target"):
        found["labels"].pop(name)
    found["annotations"] = {"summary": "受理服务宕机", "description": "受理服务全部节点不可用",
                            "started_at": str(int(starts.timestamp()))}
    return found


def _follow_up(fingerprint: str, starts: datetime, event: SlaEvent, alertname: str,
               status: str = "firing", ends: datetime | None = None) -> dict[str, Any]:
    found = _outage(fingerprint, starts, status, ends, sla_event=event.value)
    found["labels"]["alertname"] = alertname
    return found


def _escalations(world: World) -> list[dict[str, Any]]:
    return [row for row in world.outbox_rows()
            if row["event"] == "escalation" and row["format"] == "markdown"]


@pytest.mark.parametrize("scheduler_first", [True, False], ids=["scheduler-first", "alert-first"])
def test_one_outage_one_ticket_one_restore_breach(world: World, scheduler_first: bool) -> None:
    """A 130-minute outage of 受理服务 at night: the outage alert, then its follow-ups (restore
    warning at 20 min, breached at 30, the 2-hour limit near and exceeded), each delivered on the
    on-site and the second-line routes. One ticket, one restore breach, one message per escalation."""
    world.ingest(_outage("0a01", T0))
    world.ingest(_outage("0a01", T0), route=Route.SECOND_LINE)
    (ticket,) = world.service.list_tickets()
    assert (ticket.severity_class, ticket.problem_key) == ("outage", "service=intake")
    assert ticket.second_line
    world.clock.advance(minutes=5)
    world.service.acknowledge(ticket.id, "oncall-li")

    world.clock.now = T0 + timedelta(minutes=20)
    for route in (Route.FIRST_LINE, Route.SECOND_LINE):
        world.ingest(_follow_up("0a02", world.clock.now, SlaEvent.RESTORE_WARNING,
                                "EinvoiceServiceOutageRestoreDeadline"), route=route)
    assert _escalations(world) == []  # a warning is a timeline entry only

    if scheduler_first:
        world.clock.now = T0 + timedelta(minutes=30, seconds=15)
        assert world.service.check_deadlines() == [ticket.id]
    world.clock.now = T0 + timedelta(minutes=31)
    for route in (Route.FIRST_LINE, Route.SECOND_LINE):
        world.ingest(_follow_up("0a03", T0 + timedelta(minutes=31), SlaEvent.RESTORE_BREACHED,
                                "EinvoiceServiceOutageRestoreBreached"), route=route)
    assert world.service.check_deadlines() == []
    assert len(_escalations(world)) == 1, "one restore breach, one message"

    world.clock.now = T0 + timedelta(minutes=100)
    world.ingest(_follow_up("0a04", world.clock.now, SlaEvent.LIMIT_NEAR, "EinvoiceServiceOutageLimitNear"))
    world.clock.now = T0 + timedelta(minutes=121)
    for route in (Route.FIRST_LINE, Route.SECOND_LINE, Route.FIRST_LINE):
        world.ingest(_follow_up("0a05", world.clock.now, SlaEvent.LIMIT_EXCEEDED,
                                "EinvoiceServiceOutageLimitExceeded"), route=route)

    ended = T0 + timedelta(minutes=130)
    world.clock.now = ended + timedelta(seconds=20)
    world.ingest(_outage("0a01", T0, "resolved", ended),
                 _follow_up("0a03", T0 + timedelta(minutes=31), SlaEvent.RESTORE_BREACHED,
                            "EinvoiceServiceOutageRestoreBreached", "resolved", ended),
                 _follow_up("0a05", T0 + timedelta(minutes=121), SlaEvent.LIMIT_EXCEEDED,
                            "EinvoiceServiceOutageLimitExceeded", "resolved", ended))

    (final,) = world.service.list_tickets()
    assert final.id == ticket.id and final.state == "resolved" and final.resolved_at == ended
    assert final.resolution_breached and not final.response_breached and final.escalated
    assert set(final.sla_events) == {event.value for event in SlaEvent}
    assert world.sample("einvoice_notifier_deadline_breaches_total", deadline="resolution",
                        severity_class="outage") == 1
    escalations = _escalations(world)
    assert [row["channel"] for row in escalations] == ["oncall"] * 3  # restore, limit near, limit exceeded
    assert SLA_EVENT_ZH[SlaEvent.LIMIT_EXCEEDED] in escalations[-1]["content"]
    assert SLA_EVENT_ZH[SlaEvent.LIMIT_NEAR] in escalations[-2]["content"]
    timeline = world.service.timeline(ticket.id)
    sla_notes = [entry.note for entry in timeline if entry.action == "sla_event"]
    assert sla_notes == [SLA_EVENT_ZH[e] for e in (SlaEvent.RESTORE_WARNING, SlaEvent.RESTORE_BREACHED,
                                                    SlaEvent.LIMIT_NEAR, SlaEvent.LIMIT_EXCEEDED)]
    firing = [row for row in world.outbox_rows() if row["event"] == "firing" and row["format"] == "markdown"]
    assert [row["channel"] for row in firing] == ["robot", "oncall"], "the follow-ups sent no new card"
    resolved = [row for row in world.outbox_rows() if row["event"] == "resolved"]
    assert [row["channel"] for row in resolved] == ["robot"]


def test_follow_up_of_another_service_or_class_is_not_joined(world: World) -> None:
    world.ingest(_outage("0b01", T0))
    other_service = _follow_up("0b02", T0 + timedelta(minutes=31), SlaEvent.RESTORE_BREACHED,
                               "EinvoiceServiceOutageRestoreBreached")
    other_service["labels"]["service"] = "processing"
    world.ingest(other_service)
    stall = _follow_up("0b03", T0 + timedelta(minutes=31), SlaEvent.RESTORE_BREACHED,
                       "EinvoiceServiceStallRestore")
    stall["labels"]["severity_class"] = "stall"
    world.ingest(stall)
    tickets = world.service.list_tickets()
    assert sorted((t.problem_key, t.severity_class) for t in tickets) == [
        ("service=intake", "outage"), ("service=intake", "stall"), ("service=processing", "outage")]


def test_follow_up_first_opens_the_ticket_and_the_outage_alert_joins_it(world: World) -> None:
    """If a follow-up arrives before its outage alert (lost or delayed), it opens the ticket, and
    the outage alert joins it; the outage alert's resolution resolves it."""
    world.ingest(_follow_up("0c02", T0 + timedelta(minutes=31), SlaEvent.RESTORE_BREACHED,
                            "EinvoiceServiceOutageRestoreBreached"))
    world.ingest(_outage("0c01", T0))
    (ticket,) = world.service.list_tickets()
    assert ticket.resolution_breached and ticket.sla_events == ("restore_breached",)
    world.ingest(_outage("0c01", T0, "resolved", T0 + timedelta(minutes=40)))
    (ticket,) = world.service.list_tickets()
    assert ticket.state == "resolved" and ticket.resolved_at == T0 + timedelta(minutes=40)
    # The next outage of the service is a new ticket, a recurrence of this one.
    world.clock.now = T0 + timedelta(hours=5)
    world.ingest(_outage("0c01", T0 + timedelta(hours=5)))
    newest = world.service.list_tickets()[0]
    assert newest.id != ticket.id and newest.recurrence_of == ticket.id


def test_important_period_reaches_first_and_second_line_once(world: World) -> None:
    """In an important period Alertmanager delivers each alert on the on-site route and on the
    important-period route (second line muted): each channel gets each message once, whichever
    route arrives first."""
    world.ingest(alert("0d01", T0), route=Route.IMPORTANT_PERIOD)
    world.ingest(alert("0d01", T0), route=Route.FIRST_LINE)
    world.ingest(alert("0d02", T0, target="http://intake-2/health"), route=Route.FIRST_LINE)
    result = world.ingest(alert("0d02", T0, target="http://intake-2/health"), route=Route.IMPORTANT_PERIOD)
    assert result.messages == 2  # the second line's card and @ only; the on-site ones were sent
    tickets = world.service.list_tickets()
    assert len(tickets) == 2 and all(t.second_line for t in tickets)
    rows = world.outbox_rows()
    per_ticket = {t.id: sorted((r["channel"], r["format"]) for r in rows if r["ticket_id"] == t.id)
                  for t in tickets}
    expected = sorted([("robot", "markdown"), ("robot", "text"), ("oncall", "markdown"), ("oncall", "text")])
    assert list(per_ticket.values()) == [expected, expected]
    world.deliver()
    assert {m.mentioned_mobiles for m in world.oncall.sent if m.format == "text"} == {
        ("13800000001", "13900000002")}
    with world.notifier.engine.connect() as conn:
        routes = conn.execute(select(db.notifications.c.route)).scalars().all()
    assert sorted(set(routes)) == ["first_line", "important_period"]


def _scripted_month(world: World) -> dict[str, int]:
    """Six tickets in November 2026 (Asia/Shanghai); the figures in the test are worked by hand."""
    ids: dict[str, int] = {}

    def fire_and_resolve(name: str, payload: dict[str, Any], start: datetime, minutes: int) -> None:
        world.clock.now = start
        world.ingest(payload)
        ids[name] = world.service.list_tickets()[0].id
        end = start + timedelta(minutes=minutes)
        world.clock.now = end
        world.ingest({**payload, "status": "resolved", "endsAt": end.isoformat()})

    nov = lambda day, hour=10: shanghai(2026, 11, day, hour)  # noqa: E731
    check = {"check": "intake_http"}
    fire_and_resolve("A", alert("0e01", nov(3), **check), nov(3), 20)
    world.service.close(ids["A"], "alice", "连接池耗尽", "调大连接池", True)
    # B: the same item + check + target a week later (another alertname: still the same problem).
    world.clock.now = nov(10)
    world.ingest(alert("0e02", nov(10), alertname="EinvoiceProbeSlow", **check))
    ids["B"] = world.service.list_tickets()[0].id
    world.clock.now = nov(10, 13)  # 3 h without a response: escalated to the second line
    assert world.service.check_deadlines() == [ids["B"]]
    world.ingest(alert("0e02", nov(10), "resolved", nov(10, 13), alertname="EinvoiceProbeSlow", **check))
    closed_b = world.service.close(ids["B"], "alice", "同一问题复发", "更换节点", True)
    assert closed_b.resolved_locally is False, "an escalated ticket is not solved at this level"
    # C and E: outages of 受理服务 (C resolved, never closed: still a candidate); D: 处理服务.
    fire_and_resolve("C", _outage("0e03", nov(12)), nov(12), 25)
    fire_and_resolve("D", _outage("0e04", nov(13), service="processing"), nov(13), 15)
    world.service.close(ids["D"], "bob", "数据库锁", "结束长事务", True)
    fire_and_resolve("E", _outage("0e05", nov(20)), nov(20), 10)
    # F: the same item and check on another target is another problem.
    fire_and_resolve("F", alert("0e06", nov(21), target="http://intake-2:7001/health", **check), nov(21), 5)
    return ids


def test_local_and_one_time_resolution_rates_per_period(store_url: str) -> None:
    world = World(store_url, FakeClock(shanghai(2026, 11, 1, 9)))
    try:
        ids = _scripted_month(world)
        by_id = {t.id: t for t in world.service.list_tickets()}
        assert by_id[ids["B"]].recurrence_of == ids["A"]
        assert by_id[ids["E"]].recurrence_of == ids["C"]  # resolved, not closed, is a candidate
        assert by_id[ids["D"]].recurrence_of is None  # another service
        assert by_id[ids["F"]].recurrence_of is None  # another target
        assert by_id[ids["C"]].problem_key == "service=intake"
        assert by_id[ids["A"]].problem_key == "item=05|check=intake_http|target=http://intake-1:7001/health"

        november = month_bounds(shanghai(2026, 11, 15, 12), world.service.calendar.tz)
        assert november == (shanghai(2026, 11, 1, 0), shanghai(2026, 12, 1, 0))
        rates = world.service.rates(*november)
        # closed in November: A (local), B (escalated: not local), D (local) -> 2 of 3
        assert (rates.closed, rates.closed_locally) == (3, 2)
        assert rates.local_ratio == pytest.approx(2 / 3)
        # resolved in November: A..F = 6; recurred within 30 days: A (by B) and C (by E) -> 4 of 6
        assert (rates.resolved, rates.recurred) == (6, 2)
        assert rates.one_time_ratio == pytest.approx(4 / 6)
        october = world.service.rates(*month_bounds(shanghai(2026, 10, 15, 12), world.service.calendar.tz))
        assert (october.local_ratio, october.one_time_ratio) == (None, None)
        # The first ten days only: A, B closed (1 of 2 local); A, B resolved, A recurred.
        early = world.service.rates(shanghai(2026, 11, 1, 0), shanghai(2026, 11, 11, 0))
        assert (early.local_ratio, early.one_time_ratio) == (0.5, 0.5)
        # /metrics: the current month.
        world.clock.now = shanghai(2026, 11, 30, 23)
        assert world.sample("einvoice_notifier_local_resolution_ratio") == pytest.approx(2 / 3)
        assert world.sample("einvoice_notifier_one_time_resolution_ratio") == pytest.approx(4 / 6)
        world.clock.now = shanghai(2026, 12, 1, 0, 1)  # a new month has nothing yet
        assert world.sample("einvoice_notifier_local_resolution_ratio") is None
        with pytest.raises(ValueError, match="统计区间"):
            world.service.rates(shanghai(2026, 11, 2, 0), shanghai(2026, 11, 1, 0))
    finally:
        world.notifier.engine.dispose()


def test_a_store_of_the_previous_release_upgrades(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A schema-1 store with tickets in it gets problem keys from its tickets' labels, the SLA
    follow-up columns and the alert links; the upgraded store then works as a new one."""
    engine = db.make_engine(store_url)
    with monkeypatch.context() as patch:
        patch.setattr(db, "MIGRATIONS", db.MIGRATIONS[:1])
        assert db.migrate(engine) == 1
    labels = ('{"alertname": "EinvoiceServiceOutage", "service": "intake", "severity": "critical"}',
              '{"alertname": "EinvoiceCheckFailing", "check": "intake_http", "item": "5", '
              '"target": "http://intake-1:7001/health"}')
    with engine.begin() as conn:
        columns = {column["name"] for column in inspect(conn).get_columns("tickets")}
        assert "problem_key" not in columns and "sla_events" not in columns
        for index, found in enumerate(labels):
            moment = datetime(2026, 11, 1, 2, index)
            conn.execute(text(
                "INSERT INTO tickets (fingerprint, starts_at, group_key, alertname, severity_class, state,"
                " summary, description, labels, created_at, updated_at, response_deadline,"
                " resolution_deadline, response_breached, resolution_breached, escalated, second_line)"
                " VALUES (:fp, :at, '{}', 'X', 'outage', 'open', '', '', :labels, :at, :at, :at, :at,"
                " 0, 0, 0, 0)"), {"fp": f"f{index}", "at": moment, "labels": found})
    assert db.migrate(engine) == len(db.MIGRATIONS)
    assert db.migrate(engine) == len(db.MIGRATIONS)
    with engine.connect() as conn:
        keys = conn.execute(select(db.tickets.c.problem_key, db.tickets.c.sla_events)
                            .order_by(db.tickets.c.id)).all()
        assert [tuple(row) for row in keys] == [
            ("service=intake", ""), ("item=05|check=intake_http|target=http://intake-1:7001/health", "")]
        assert conn.execute(select(func.count()).select_from(db.ticket_alerts)).scalar() == 0
    engine.dispose()
    world = World(store_url, FakeClock(T0))
    try:
        # The old open outage ticket of 受理服务 takes the follow-up of its outage.
        world.ingest(_follow_up("0f01", T0, SlaEvent.LIMIT_NEAR, "EinvoiceServiceOutageLimitNear"))
        assert len(world.service.list_tickets()) == 2
        assert world.service.list_tickets()[-1].sla_events == ("limit_near",)
    finally:
        world.notifier.engine.dispose()
