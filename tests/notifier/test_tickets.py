"""Tickets, deadlines, escalation, recurrence, audit and the outbox, on SQLite and on MariaDB."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from einvoice_notifier import db
from einvoice_notifier.app import Notifier
from einvoice_notifier.messaging.base import SendResult
from einvoice_notifier.outbox import list_messages
from einvoice_notifier.payload import Notification
from einvoice_notifier.service import (
    InvalidInputError,
    InvalidTransitionError,
    TicketNotFoundError,
    severity_class_of,
)
from einvoice_notifier.settings import parse_settings
from sqlalchemy import func, select

from tests.notifier.support import FakeClock, RecordingChannel, alert, notification, shanghai

LUNCH = shanghai(2026, 11, 27, 12, 30)


def _settings(mobiles: bool = False, **extra: Any) -> Any:
    routing: dict[str, Any] = {"first_line": ["robot"], "second_line": ["oncall"]}
    if mobiles:
        routing |= {"duty_mobiles": ["13800000001"], "second_line_mobiles": ["13900000002"]}
    return parse_settings({
        "channels": [{"type": "console", "name": "robot", "stdout": False},
                     {"type": "console", "name": "oncall", "stdout": False}],
        "routing": routing,
        "outbox": {"max_attempts": 3, "backoff_initial": "2s", "backoff_max": "60s"},
        **extra,
    })


class World:
    def __init__(self, url: str, clock: FakeClock, **extra: Any) -> None:
        self.clock = clock
        self.robot = RecordingChannel("robot")
        self.oncall = RecordingChannel("oncall")
        self.notifier = Notifier(_settings(**extra), db.make_engine(url), clock,
                                 {"robot": self.robot, "oncall": self.oncall}, webhook_token="t")
        db.migrate(self.notifier.engine)
        self.service = self.notifier.service

    def ingest(self, *alerts: dict, route: str = "first_line") -> Any:
        return self.service.ingest(Notification.model_validate(notification(*alerts)), route)

    def outbox_rows(self) -> list[dict]:
        with self.notifier.engine.connect() as conn:
            return [dict(row) for row in conn.execute(select(db.outbox).order_by(db.outbox.c.id)).mappings()]

    def deliver(self) -> None:
        for sender in self.notifier.outbox.senders.values():
            sender.run_once()

    def sample(self, name: str, **labels: str) -> float | None:
        return self.notifier.registry.get_sample_value(name, labels)


@pytest.fixture
def world(store_url: str) -> Iterator[World]:
    found = World(store_url, FakeClock(LUNCH))
    yield found
    found.notifier.engine.dispose()


def test_severity_class_from_labels() -> None:
    assert severity_class_of({"severity_class": "outage", "severity": "warning"}) == "outage"
    assert severity_class_of({"severity_class": "stall", "severity": "critical"}) == "stall"
    assert severity_class_of({"severity_class": "routine"}) == "routine"
    # The class comes from the label the rules set, never from the alert's name.
    named = {"alertname": "EinvoiceServiceOutageLimitExceeded", "severity": "critical"}
    assert severity_class_of(named) == "urgent"
    assert severity_class_of({"severity": "critical"}) == "urgent"
    assert severity_class_of({"severity": "warning"}) == "general"
    assert severity_class_of({"severity": "info", "severity_class": "bogus"}) == "general"


def test_redelivery_creates_no_second_ticket_or_message(store_url: str) -> None:
    world = World(store_url, FakeClock(LUNCH), mobiles=True)
    first = world.ingest(alert("aa01", LUNCH))
    again = world.ingest(alert("aa01", LUNCH))
    # The card, then a text message that @s the person on duty.
    assert (first.new_tickets, first.messages) == (1, 2)
    assert (again.new_tickets, again.new_events, again.messages) == (0, 0, 0)
    grown = world.ingest(alert("aa01", LUNCH), alert("aa02", LUNCH, target="http://intake-2/health"))
    assert (grown.new_tickets, grown.messages) == (1, 2)
    assert len(world.service.list_tickets()) == 2
    rows = world.outbox_rows()
    assert [(row["ticket_id"], row["format"]) for row in rows] == [
        (rows[0]["ticket_id"], "markdown"), (rows[0]["ticket_id"], "text"),
        (rows[2]["ticket_id"], "markdown"), (rows[2]["ticket_id"], "text")]
    assert {row["event"] for row in rows} == {"firing"}
    ticket = world.service.list_tickets(item="5")[-1]
    assert ticket.group_key == '{}:{alertname="X"}' and ticket.item == "05" and ticket.zone == "extranet"
    assert ticket.summary == "受理服务健康检查失败"
    assert [entry.action for entry in world.service.timeline(ticket.id)] == ["create"]
    world.deliver()
    assert [m.mentioned_mobiles for m in world.robot.sent] == [(), ("13800000001",)] * 2
    world.notifier.engine.dispose()


def test_resolved_alert_resolves_the_ticket_once(world: World) -> None:
    world.ingest(alert("bb01", LUNCH))
    ended = LUNCH + timedelta(minutes=20)
    world.clock.advance(minutes=21)
    world.ingest(alert("bb01", LUNCH, status="resolved", ends_at=ended))
    world.ingest(alert("bb01", LUNCH, status="resolved", ends_at=ended))
    (ticket,) = world.service.list_tickets()
    assert ticket.state == "resolved" and ticket.resolved_at == ended and ticket.ends_at == ended
    assert not ticket.resolution_breached
    assert [row["event"] for row in world.outbox_rows()] == ["firing", "resolved"]
    entry = world.service.timeline(ticket.id)[-1]
    assert (entry.actor, entry.action, entry.before["state"], entry.after["state"]) == (
        "alertmanager", "alert_resolved", "open", "resolved")
    assert world.robot.sent == []
    world.deliver()
    assert len(world.robot.sent) == 2
    assert "已恢复" in world.robot.sent[1].content or "恢复" in world.robot.sent[1].content


def test_resolved_without_firing_still_records_a_ticket(world: World) -> None:
    world.ingest(alert("cc01", LUNCH, status="resolved", ends_at=LUNCH + timedelta(minutes=3)))
    (ticket,) = world.service.list_tickets()
    assert ticket.state == "resolved"


def test_people_work_a_ticket_and_every_step_is_audited(world: World) -> None:
    world.ingest(alert("dd01", LUNCH))
    ticket_id = world.service.list_tickets()[0].id
    world.clock.advance(minutes=5)
    world.service.acknowledge(ticket_id, "alice")
    with pytest.raises(InvalidTransitionError, match="已响应"):
        world.service.acknowledge(ticket_id, "bob")
    world.service.start_progress(ticket_id, "alice")
    world.service.add_note(ticket_id, "alice", "重启受理服务 intake-1")
    with pytest.raises(InvalidInputError):
        world.service.add_note(ticket_id, "alice", "   ")
    with pytest.raises(InvalidTransitionError):
        world.service.close(ticket_id, "alice", "原因", "方案", True)  # not resolved yet
    world.clock.advance(minutes=10)
    world.service.resolve(ticket_id, "alice", "已恢复")
    with pytest.raises(InvalidInputError, match="原因"):
        world.service.close(ticket_id, "alice", " ", "方案", True)
    closed = world.service.close(ticket_id, "bob", "连接池耗尽", "调大连接池并重启", False)
    assert closed.state == "closed" and closed.resolved_locally is False and closed.cause == "连接池耗尽"
    assert closed.acknowledged_at == LUNCH + timedelta(minutes=5)
    with pytest.raises(TicketNotFoundError):
        world.service.acknowledge(999999, "alice")
    timeline = world.service.timeline(ticket_id)
    assert [(entry.actor, entry.action) for entry in timeline] == [
        ("alertmanager", "create"), ("alice", "acknowledge"), ("alice", "start_progress"),
        ("alice", "add_note"), ("alice", "resolve"), ("bob", "close")]
    assert timeline[1].at == LUNCH + timedelta(minutes=5)
    assert timeline[3].note == "重启受理服务 intake-1"
    assert timeline[5].before["state"] == "resolved" and timeline[5].after["cause"] == "连接池耗尽"
    assert world.sample("einvoice_notifier_tickets", state="closed", severity_class="urgent") == 1
    assert world.sample("einvoice_notifier_local_resolution_ratio") == 0.0
    assert world.sample("einvoice_notifier_time_to_acknowledge_seconds_bucket",
                        severity_class="urgent", le="300.0") == 1
    assert world.sample("einvoice_notifier_time_to_resolve_seconds_sum", severity_class="urgent") == 900


def test_deadlines_per_class_on_the_calendar(world: World) -> None:
    world.ingest(alert("ee01", LUNCH),  # urgent: the working clock starts 14:30
                 alert("ee02", LUNCH, severity="warning"),
                 alert("ee03", LUNCH, alertname="EinvoiceServiceOutage", service="intake",
                       severity_class="outage"))
    by_fp = {ticket.fingerprint: ticket for ticket in world.service.list_tickets()}
    assert by_fp["ee01"].severity_class == "urgent"
    assert by_fp["ee01"].response_deadline == shanghai(2026, 11, 27, 14, 30)  # 2 h around the clock
    assert by_fp["ee01"].resolution_deadline == shanghai(2026, 11, 27, 16, 30)  # 2 working hours
    assert by_fp["ee02"].severity_class == "general"
    assert by_fp["ee02"].response_deadline == shanghai(2026, 11, 27, 16, 30)
    assert by_fp["ee02"].resolution_deadline == shanghai(2026, 11, 27, 18, 30)
    assert by_fp["ee03"].severity_class == "outage"  # wall clock, even in the lunch break
    assert by_fp["ee03"].response_deadline == LUNCH + timedelta(minutes=10)
    assert by_fp["ee03"].resolution_deadline == LUNCH + timedelta(minutes=30)
    deadline = world.sample("einvoice_notifier_ticket_deadline_timestamp_seconds",
                            ticket_id=str(by_fp["ee03"].id), item="05", severity_class="outage",
                            deadline="resolution")
    assert deadline == (LUNCH + timedelta(minutes=30)).timestamp()


def test_passed_deadline_escalates_once_to_the_second_line(store_url: str) -> None:
    world = World(store_url, FakeClock(LUNCH), mobiles=True)
    world.ingest(alert("ff01", LUNCH, alertname="EinvoiceServiceOutage", severity_class="outage"))
    assert world.service.check_deadlines() == []
    world.clock.advance(minutes=11)
    (ticket_id,) = world.service.check_deadlines()
    assert world.service.check_deadlines() == []
    ticket = world.service.get_ticket(ticket_id)
    assert ticket is not None and ticket.escalated and ticket.response_breached
    assert not ticket.resolution_breached and ticket.overdue
    assert [t.id for t in world.service.list_tickets(overdue=True)] == [ticket_id]
    world.clock.advance(minutes=20)
    assert world.service.check_deadlines() == [ticket_id]
    events = [(row["channel"], row["event"], row["format"]) for row in world.outbox_rows()]
    # Each escalation: the card and an @ of the second line.
    assert events.count(("oncall", "escalation", "markdown")) == 2
    assert events.count(("oncall", "escalation", "text")) == 2
    assert events.count(("robot", "firing", "markdown")) == 1
    world.deliver()
    assert [m.mentioned_mobiles for m in world.oncall.sent if m.format == "text"] == [("13900000002",)] * 2
    assert world.sample("einvoice_notifier_deadline_breaches_total", deadline="response",
                        severity_class="outage") == 1
    assert world.sample("einvoice_notifier_deadline_breaches_total", deadline="resolution",
                        severity_class="outage") == 1
    assert world.service.timeline(ticket_id)[-1].actor == "system"
    # A late acknowledgement keeps the breach on record.
    late = world.service.acknowledge(ticket_id, "alice")
    assert late.response_breached
    world.notifier.engine.dispose()


def test_late_acknowledgement_counts_even_before_the_scheduler_ran(world: World) -> None:
    world.ingest(alert("ff02", LUNCH))
    world.clock.now = shanghai(2026, 11, 27, 14, 31)
    ticket = world.service.acknowledge(world.service.list_tickets()[0].id, "alice")
    assert ticket.response_breached and not ticket.escalated


def test_recurrence_within_30_days_links_and_lowers_one_time_ratio(world: World) -> None:
    world.ingest(alert("a701", LUNCH))
    first = world.service.list_tickets()[0].id
    world.ingest(alert("a701", LUNCH, status="resolved", ends_at=LUNCH + timedelta(minutes=5)))
    world.service.close(first, "alice", "磁盘满", "清理日志", True)
    assert world.sample("einvoice_notifier_one_time_resolution_ratio") == 1.0
    again = LUNCH + timedelta(days=3)
    world.clock.now = again
    world.ingest(alert("a701", again))
    second = world.service.list_tickets()[0]
    assert second.id != first and second.recurrence_of == first
    assert world.sample("einvoice_notifier_one_time_resolution_ratio") == 0.0
    assert world.sample("einvoice_notifier_local_resolution_ratio") == 1.0
    # Another target is another problem; a month later is a new problem.
    world.ingest(alert("a702", again, target="http://intake-9/health"))
    assert world.service.list_tickets()[0].recurrence_of is None
    later = LUNCH + timedelta(days=31)
    world.ingest(alert("a701", later))
    assert world.service.list_tickets()[0].recurrence_of is None


def test_second_line_route_reaches_the_second_line_once(world: World) -> None:
    world.ingest(alert("a801", LUNCH))
    world.ingest(alert("a801", LUNCH), route="second_line")
    world.ingest(alert("a801", LUNCH), route="second_line")
    (ticket,) = world.service.list_tickets()
    assert ticket.second_line
    events = [(row["channel"], row["event"]) for row in world.outbox_rows()]
    assert events == [("robot", "firing"), ("oncall", "firing")]
    with world.notifier.engine.connect() as conn:
        routes = conn.execute(select(db.notifications.c.route).order_by(db.notifications.c.id)).scalars()
        assert list(routes) == ["first_line", "second_line", "second_line"]


def test_list_filters(world: World) -> None:
    world.ingest(alert("a901", LUNCH), alert("a902", LUNCH, severity="warning", item="13"))
    world.service.acknowledge(world.service.list_tickets(severity_class="general")[0].id, "alice")
    assert {t.fingerprint for t in world.service.list_tickets(state="open")} == {"a901"}
    assert {t.fingerprint for t in world.service.list_tickets(item="13")} == {"a902"}
    assert world.service.list_tickets(item="not-an-item") == []
    assert {t.fingerprint for t in world.service.list_tickets(overdue=False)} == {"a901", "a902"}
    assert len(world.service.list_tickets(limit=1)) == 1


def test_outbox_backs_off_then_dead_letters(world: World) -> None:
    world.robot.results = [SendResult.retry("http_502"), SendResult.retry("errcode_45009", after=30),
                           SendResult.permanent("errcode_93000")]
    world.ingest(alert("b701", LUNCH))
    sender = world.notifier.outbox.senders["robot"]
    assert sender.run_once() == pytest.approx(2.0)  # first backoff
    assert sender.run_once() == pytest.approx(2.0)  # not due yet: nothing sent
    assert world.robot.attempts == 1
    world.clock.advance(seconds=2)
    assert sender.run_once() == pytest.approx(30.0)  # the channel's retry_after wins
    world.clock.advance(seconds=30)
    assert sender.run_once() is None
    (row,) = [row for row in world.outbox_rows() if row["channel"] == "robot"]
    assert (row["state"], row["attempts"], row["last_error"]) == ("dead", 3, "errcode_93000")
    assert world.sample("einvoice_notifier_outbox_dead_letters", channel="robot") == 1
    assert world.sample("einvoice_notifier_outbox_depth", channel="robot") == 0
    assert world.sample("einvoice_notifier_sends_total", channel="robot", result="retry") == 2
    assert [m.id for m in list_messages(world.notifier.engine)] == [row["id"]]


def test_paced_sends_do_not_count_and_max_attempts_dead_letters(world: World) -> None:
    world.robot.results = [SendResult.retry("paced", after=5, count_attempt=False),
                           SendResult.retry("http_502"), SendResult.sent(),  # row 1, row 2
                           SendResult.retry("http_502"), SendResult.retry("http_502")]  # row 1 twice
    world.ingest(alert("b801", LUNCH), alert("b802", LUNCH, target="x"))
    sender = world.notifier.outbox.senders["robot"]
    sender.run_once()
    assert world.robot.attempts == 1  # paced: the second row was not tried
    rows = [row for row in world.outbox_rows() if row["channel"] == "robot"]
    assert rows[0]["attempts"] == 0 and rows[0]["state"] == "pending"
    for _ in range(6):
        world.clock.advance(seconds=60)
        sender.run_once()
    rows = [row for row in world.outbox_rows() if row["channel"] == "robot"]
    assert rows[0]["state"] == "dead" and rows[0]["attempts"] == 3
    assert rows[1]["state"] == "sent"
    assert world.sample("einvoice_notifier_outbox_oldest_age_seconds", channel="robot") == 0


def test_pending_messages_survive_a_restart(store_url: str) -> None:
    clock = FakeClock(LUNCH)
    before = World(store_url, clock)
    before.ingest(alert("b901", LUNCH), alert("b902", LUNCH, target="y"))
    assert before.sample("einvoice_notifier_outbox_depth", channel="robot") == 2
    clock.advance(seconds=90)
    assert before.sample("einvoice_notifier_outbox_oldest_age_seconds", channel="robot") == 90
    before.notifier.engine.dispose()
    after = World(store_url, clock)
    after.deliver()
    assert len(after.robot.sent) == 2
    assert {row["state"] for row in after.outbox_rows()} == {"sent"}
    with after.notifier.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(db.tickets)).scalar() == 2
    after.notifier.engine.dispose()


def test_migrations_are_recorded_and_rerun_safely(store_url: str) -> None:
    engine = db.make_engine(store_url)
    assert db.migrate(engine) == len(db.MIGRATIONS)
    assert db.migrate(engine) == len(db.MIGRATIONS)
    with engine.connect() as conn:
        applied = conn.execute(select(func.count()).select_from(db.schema_version)).scalar()
    assert applied == len(db.MIGRATIONS)
    engine.dispose()


def test_unicode_round_trips_through_the_store(world: World) -> None:
    text = "受理服务 😀 𠀀 \u200b ‮ e\u0301 ﷽ a\x00b \\ ' \" %s ; --"
    world.ingest(alert("c701", LUNCH, instance_note=text))
    (ticket,) = world.service.list_tickets()
    assert ticket.labels["instance_note"] == text
    world.service.add_note(ticket.id, "张三", text)
    assert world.service.timeline(ticket.id)[-1].note == text.strip()
    assert world.service.timeline(ticket.id)[-1].actor == "张三"


def test_times_keep_microseconds(world: World) -> None:
    moment = datetime(2026, 11, 27, 4, 30, 1, 123456, tzinfo=UTC)
    world.ingest(alert("c801", moment))
    world.ingest(alert("c801", moment))
    (ticket,) = world.service.list_tickets()
    assert ticket.starts_at == moment


def test_a_later_migration_step_upgrades_an_existing_store(store_url: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """How a release adds a column: the step runs once, on data already there, on both backends."""
    from sqlalchemy import text

    before = World(store_url, FakeClock(LUNCH))
    before.ingest(alert("d100", LUNCH))
    before.notifier.engine.dispose()

    def add_column(conn: Any) -> None:
        conn.execute(text("ALTER TABLE tickets ADD COLUMN runbook_note VARCHAR(64)"))

    step = len(db.MIGRATIONS) + 1
    monkeypatch.setattr(db, "MIGRATIONS", (*db.MIGRATIONS, (step, "tickets.runbook_note", add_column)))
    engine = db.make_engine(store_url)
    assert db.migrate(engine) == step
    assert db.migrate(engine) == step
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM tickets WHERE runbook_note IS NULL")).scalar() == 1
        assert sorted(conn.execute(select(db.schema_version.c.version)).scalars()) == list(range(1, step + 1))
    engine.dispose()


def test_stored_messages_are_already_redacted(world: World) -> None:
    """What sits in the outbox is exactly what leaves: no taxpayer ID or invoice number in it."""
    leaky = alert("d200", LUNCH)
    leaky["annotations"]["summary"] = "推送失败：纳税人识别号 91450103198765432P，发票号码 00123456 未推送"
    world.ingest(leaky)
    (row,) = world.outbox_rows()
    assert "91450103198765432P" not in row["content"] and "00123456" not in row["content"]
    assert "〔税号已隐藏〕" in row["content"]
    assert "/console/link/" in row["content"]
