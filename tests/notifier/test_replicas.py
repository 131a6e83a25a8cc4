"""Several notifiers on one database (issue 16): what each guarantee rests on, one at a time.

Two or three `Notifier`s with their own engines (their own connections, as separate processes
have) share one real MariaDB and a clock the test moves; threads released by a barrier make their
writes collide. The end-to-end version with real processes and Alertmanagers is
test_replicas_storm.py.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from einvoice_notifier import db
from einvoice_notifier.settings import ConfigError, parse_settings
from sqlalchemy import func, select, text, update

from einvoice_core.contract import SlaEvent
from tests.notifier.support import FakeClock, MariaDB, shanghai
from tests.notifier.test_sla_tickets import _follow_up, _outage
from tests.notifier.test_tickets import World, alert

pytestmark = pytest.mark.xdist_group("notifier_replicas")

T0 = shanghai(2026, 11, 27, 12, 30)
R = TypeVar("R")


@pytest.fixture
def mariadb_url(mariadb: MariaDB) -> str:
    return mariadb.new_database()


@pytest.fixture
def replicas(mariadb_url: str) -> Iterator[list[World]]:
    clock = FakeClock(T0)
    found = [World(mariadb_url, clock) for _ in range(3)]
    yield found
    for world in found:
        world.notifier.engine.dispose()


def _at_once(calls: list[Callable[[], R]]) -> list[R]:
    """Run the calls in threads released together; re-raise the first failure."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    if errors:
        raise errors[0]
    return results


def _count(world: World, table: Any, *where: Any) -> int:
    with world.notifier.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar() or 0


def test_the_same_group_at_three_replicas_at_once_is_one_ticket_per_alert(replicas: list[World]) -> None:
    """Both Alertmanagers of a cluster, and a load balancer's retry, deliver one group to several
    replicas at the same moment: the unique keys decide, the losers retry and find it stored."""
    rounds, size = 8, 6
    for number in range(rounds):
        alerts = [alert(f"{number:04x}{index:04x}", T0, target=f"http://intake-{number}-{index}:7001/health")
                  for index in range(size)]
        results = _at_once([lambda world=world, alerts=alerts: world.ingest(*alerts) for world in replicas])
        assert sum(result.new_tickets for result in results) == size
    first = replicas[0]
    assert _count(first, db.tickets) == rounds * size
    assert _count(first, db.alert_events) == rounds * size
    with first.notifier.engine.connect() as conn:
        keys = conn.execute(select(db.outbox.c.ticket_id, db.outbox.c.channel)).all()
    assert len(keys) == len(set(keys)) == rounds * size, "one message per ticket and channel"


def test_an_outage_and_its_follow_up_at_two_replicas_at_once_are_one_ticket(replicas: list[World]) -> None:
    """The outage alert and its restore warning come in two groups (two alertnames), each to another
    replica at the same moment, before any ticket of that outage exists: still one ticket."""
    services = 6
    for number in range(services):
        service = f"svc{number}"
        outage = _outage(f"a{number:03x}", T0, service=service)
        warning = _follow_up(f"b{number:03x}", T0, SlaEvent.RESTORE_WARNING,
                             "EinvoiceServiceOutageRestoreDeadline")
        warning["labels"]["service"] = service
        _at_once([lambda outage=outage: replicas[0].ingest(outage),
                  lambda warning=warning: replicas[1].ingest(warning)])
    first = replicas[0]
    with first.notifier.engine.connect() as conn:
        per_service = Counter(conn.execute(select(db.tickets.c.problem_key)).scalars())
        cards = conn.execute(select(func.count()).where(db.outbox.c.event == "firing")).scalar()
    assert len(per_service) == services and set(per_service.values()) == {1}
    assert cards == services, "one card per outage"


def test_each_message_is_sent_by_one_replica(replicas: list[World]) -> None:
    """Three senders of one channel drain one outbox together: every message once, none twice."""
    alerts = [alert(f"c{index:05x}", T0, target=f"http://t{index}:1/") for index in range(60)]
    replicas[0].ingest(*alerts)

    def drain(world: World) -> Callable[[], None]:
        def run() -> None:
            sender = world.notifier.outbox.senders["robot"]
            while sender.run_once(batch=5) == 0.0 or _count(world, db.outbox, db.outbox.c.state == "pending"):
                pass
        return run

    _at_once([drain(world) for world in replicas])
    sent = [message.ticket_url for world in replicas for message in world.robot.sent]
    assert len(sent) == len(set(sent)) == 60
    assert all(world.robot.sent for world in replicas), "every replica took a share"
    assert all(world.notifier.outbox.senders["robot"]._skip_locked for world in replicas), \
        "MariaDB 10.11 claims with SKIP LOCKED"
    assert _count(replicas[0], db.outbox, db.outbox.c.lease_owner.is_not(None)) == 0


def test_a_dead_replicas_leased_messages_are_taken_over_when_the_lease_ends(store_url: str) -> None:
    """A sender leases messages and dies before sending them: the other sender skips them until
    the lease has run out, then sends them. On SQLite too (the lease columns work everywhere)."""
    clock = FakeClock(T0)
    dead, alive = World(store_url, clock), World(store_url, clock)
    try:
        dead.ingest(*[alert(f"d{index:05x}", T0, target=f"http://t{index}:1/") for index in range(5)])
        token, _until, held = dead.notifier.outbox.senders["robot"]._claim(batch=3)  # then it dies
        assert len(held) == 3 and token.startswith(dead.notifier.outbox.senders["robot"].holder)
        sender = alive.notifier.outbox.senders["robot"]
        due = sender.run_once()
        assert len(alive.robot.sent) == 2, "the free ones are sent at once"
        lease = dead.notifier.settings.outbox.lease
        assert due is not None and 0 < due <= lease, "the next look is when the leases end"
        clock.advance(seconds=lease - 1)
        sender.run_once()
        assert len(alive.robot.sent) == 2, "not before the lease ends"
        clock.advance(seconds=2)
        assert sender.run_once() is None
        assert len(alive.robot.sent) == 5 and not dead.robot.sent
        assert _count(alive, db.outbox, db.outbox.c.state != "sent") == 0
    finally:
        dead.notifier.engine.dispose()
        alive.notifier.engine.dispose()


def test_an_outcome_is_not_written_over_a_lease_another_replica_took(store_url: str) -> None:
    """A sender whose lease ran out (say its database was away) does not overwrite the state of the
    replica that took the message over; a message it did send is still marked sent."""
    clock = FakeClock(T0)
    slow, other = World(store_url, clock), World(store_url, clock)
    try:
        slow.ingest(alert("e0001", T0))
        sender = slow.notifier.outbox.senders["robot"]
        token, _until, (row,) = sender._claim(batch=1)
        clock.advance(seconds=slow.notifier.settings.outbox.lease + 1)
        other_token, _until, (same,) = other.notifier.outbox.senders["robot"]._claim(batch=1)
        assert same["id"] == row["id"]
        from einvoice_notifier.messaging.base import SendResult

        sender._record(row, SendResult.retry("timeout"), token)
        with other.notifier.engine.connect() as conn:
            owner = conn.execute(select(db.outbox.c.lease_owner, db.outbox.c.attempts)).one()
        assert owner == (other_token, 0), "the late retry outcome was not written"
        sender._record(row, SendResult.sent(), token)
        assert _count(other, db.outbox, db.outbox.c.state == "sent") == 1
    finally:
        slow.notifier.engine.dispose()
        other.notifier.engine.dispose()


def test_escalation_timers_fire_once_across_replicas(replicas: list[World]) -> None:
    """The deadline checks run on one replica at a time (the scheduler lease); when it dies, another
    takes over once the lease ends. An overdue ticket is escalated once, with one message."""
    replicas[0].ingest(alert("f0001", T0))
    clock = replicas[0].clock
    clock.advance(hours=5)  # past the urgent class's response and resolution deadlines
    ran = _at_once([world.notifier.run_scheduled for world in replicas])
    assert ran.count(True) == 1
    holder = ran.index(True)
    with replicas[0].notifier.engine.connect() as conn:
        escalations = conn.execute(select(db.outbox.c.dedupe_key)
                                   .where(db.outbox.c.event == "escalation")).all()
        audit = conn.execute(select(func.count()).where(db.audit_log.c.action == "escalate")).scalar()
    assert audit == 1 and len({key for (key,) in escalations}) == len(escalations) > 0
    others = [world for index, world in enumerate(replicas) if index != holder]
    assert not others[0].notifier.run_scheduled(), "the holder's lease is still running"
    clock.advance(seconds=replicas[holder].notifier.scheduler_lease_ttl() + 1)  # the holder died
    assert others[0].notifier.run_scheduled()
    assert not replicas[holder].notifier.run_scheduled(), "it came back: the job has a new holder"
    assert _count(replicas[0], db.audit_log, db.audit_log.c.action == "escalate") == 1


def test_replicas_starting_together_migrate_once(mariadb_url: str) -> None:
    engines = [db.make_engine(mariadb_url) for _ in range(3)]
    try:
        versions = _at_once([lambda engine=engine: db.migrate(engine) for engine in engines])
        assert versions == [len(db.MIGRATIONS)] * 3
        with engines[0].connect() as conn:
            applied = conn.execute(select(db.schema_version.c.version)).scalars().all()
        assert sorted(applied) == [step for step, _description, _apply in db.MIGRATIONS]
    finally:
        for engine in engines:
            engine.dispose()


def test_the_migration_lock_is_one_at_a_time(mariadb_url: str) -> None:
    """While one replica migrates (holds the lock), another waits instead of migrating too."""
    engine = db.make_engine(mariadb_url)
    holder = engine.connect()
    try:
        assert holder.execute(text("SELECT GET_LOCK(:n, 0)"), {"n": db.MIGRATION_LOCK}).scalar() == 1
        done = threading.Event()
        waiter = threading.Thread(target=lambda: (db.migrate(engine), done.set()))
        waiter.start()
        assert not done.wait(1.0), "migrated while another replica held the lock"
        holder.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": db.MIGRATION_LOCK})
        assert done.wait(60)
        waiter.join(10)
    finally:
        holder.close()
        engine.dispose()


def test_a_schema_3_store_with_a_duplicated_outage_upgrades(store_url: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Two open tickets of one outage, as a race of the previous release could leave them: step 4
    gives the key to the newer one and does not fail on the other; a follow-up then joins it."""
    engine = db.make_engine(store_url)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(db, "MIGRATIONS", db.MIGRATIONS[:3])
            assert db.migrate(engine) == 3
        labels = '{"alertname": "EinvoiceServiceOutage", "service": "intake", "severity_class": "outage"}'
        with engine.begin() as conn:
            for fingerprint in ("0b01", "0b02"):
                conn.execute(text(
                    "INSERT INTO tickets (fingerprint, starts_at, group_key, alertname, severity_class,"
                    " state, summary, description, labels, created_at, updated_at, response_deadline,"
                    " resolution_deadline, response_breached, resolution_breached, escalated, second_line,"
                    " problem_key, sla_events)"
                    " VALUES (:f, :at, '{}', 'EinvoiceServiceOutage', 'outage', 'open', '', '', :labels,"
                    " :at, :at, :at, :at, 0, 0, 0, 0, 'service=intake', '')"),
                    {"f": fingerprint, "at": db.to_db(T0), "labels": labels})
        assert db.migrate(engine) == len(db.MIGRATIONS)
        with engine.connect() as conn:
            keys = conn.execute(select(db.tickets.c.open_outage_key)
                                .order_by(db.tickets.c.id)).scalars().all()
        assert keys[0] is None and keys[1] is not None
    finally:
        engine.dispose()
    world = World(store_url, FakeClock(T0 + timedelta(minutes=20)))
    try:
        world.ingest(_follow_up("0b03", T0, SlaEvent.RESTORE_WARNING, "EinvoiceServiceOutageRestoreDeadline"))
        assert _count(world, db.tickets) == 2, "the follow-up joined an open ticket"
        world.ingest(_outage("0b04", T0))
        assert _count(world, db.tickets) == 2, "so did another outage alert of the same service"
    finally:
        world.notifier.engine.dispose()


def test_pruning_keeps_what_the_reports_read(store_url: str) -> None:
    clock = FakeClock(T0)
    world = World(store_url, clock, retention={"events": "30d", "sent_messages": "20d"})
    try:
        world.ingest(alert("0c01", T0, target="http://closed:1/"), alert("0c02", T0, target="http://open:1/"))
        world.deliver()
        closed_id, open_id = sorted(view.id for view in world.service.list_tickets())
        world.service.resolve(closed_id, "ops")
        world.service.close(closed_id, "ops", "磁盘满", "清理日志", resolved_locally=True)
        with world.notifier.engine.begin() as conn:  # one dead letter: kept for the operator
            conn.execute(update(db.outbox).where(db.outbox.c.ticket_id == open_id), {"state": "dead"})
        month = (T0 - timedelta(days=1), T0 + timedelta(days=1))
        rates = world.service.rates(*month)
        audit = _count(world, db.audit_log)

        nothing = {"notifications": 0, "alert_events": 0, "sent_messages": 0, "more": 0}
        clock.advance(days=19)
        assert world.service.prune() == nothing
        clock.advance(days=2)
        assert world.service.prune() == {**nothing, "sent_messages": 1}
        clock.advance(days=10)
        assert world.service.prune() == {**nothing, "notifications": 1, "alert_events": 1}
        assert _count(world, db.tickets) == 2 and _count(world, db.audit_log) == audit
        assert world.service.rates(*month) == rates
        assert _count(world, db.outbox, db.outbox.c.state == "dead") == 1
        with world.notifier.engine.connect() as conn:
            kept = conn.execute(select(db.alert_events.c.ticket_id)).scalars().all()
        assert kept == [open_id], "the events of a ticket not closed stay (its alert may come again)"
        # A redelivery of the still-open alert is still recognised: no second ticket, no message.
        result = world.ingest(alert("0c02", T0, target="http://open:1/"))
        assert result.new_events == 0 and _count(world, db.tickets) == 2
    finally:
        world.notifier.engine.dispose()


def test_the_scheduler_prunes_on_its_interval(store_url: str) -> None:
    clock = FakeClock(T0)
    world = World(store_url, clock, retention={"events": "7d", "interval": "1h"})
    try:
        world.ingest(alert("0d01", T0))
        clock.advance(days=8)
        assert world.notifier.run_scheduled()
        assert _count(world, db.notifications) == 0
        world.ingest(alert("0d02", T0 + timedelta(days=8)))
        clock.advance(days=8)
        assert world.notifier.run_scheduled()
        assert _count(world, db.notifications) == 0
        world.ingest(alert("0d03", T0 + timedelta(days=16)))
        clock.advance(minutes=30)
        assert world.notifier.run_scheduled()
        assert _count(world, db.notifications) == 1, "not again within the interval"
    finally:
        world.notifier.engine.dispose()


@pytest.mark.parametrize(("extra", "key"), [
    ({"outbox": {"lease": "15s"}}, "outbox.lease (15s) must be at least twice the timeout of channel wecom"),
    ({"retention": {"events": "3d"}}, "retention.events must be at least 7d"),
    ({"retention": {"sent_messages": "1h"}}, "retention.sent_messages must be at least 1d"),
    ({"retention": {"keep": "1d"}}, "retention.keep"),
])
def test_replica_settings_that_cannot_work_fail_at_start(extra: dict[str, Any], key: str) -> None:
    channel = {"type": "wechat_app", "name": "wecom", "corp_id": "c", "agent_id": 1, "secret": "s",
               "to_user": ["duty"], "timeout": 10}
    with pytest.raises(ConfigError, match=key.replace("(", r"\(").replace(")", r"\)")):
        parse_settings({"channels": [channel], "routing": {"first_line": ["wecom"], "second_line": ["wecom"]},
                        **extra})


def test_the_store_figures_come_from_one_replica_at_a_time(replicas: list[World]) -> None:
    """Dashboards sum the ticket gauges over instances: each ticket must be counted once, however
    many replicas Prometheus scrapes. The in-process counters come from every replica."""
    replicas[0].ingest(alert("0e01", T0))
    tickets = {"state": "open", "severity_class": "urgent"}

    def reporting() -> list[int]:
        return [index for index, world in enumerate(replicas)
                if world.sample("einvoice_notifier_tickets", **tickets) is not None]

    assert reporting() == [0, 1, 2], "nobody holds the scheduler yet: every replica reports"
    assert replicas[1].notifier.run_scheduled()
    assert reporting() == [1]
    assert replicas[1].sample("einvoice_notifier_tickets", **tickets) == 1
    assert all(world.sample("einvoice_notifier_webhook_requests_total", code="200") is not None
               for world in replicas)
    replicas[0].clock.advance(seconds=replicas[1].notifier.scheduler_lease_ttl() + 1)  # replica 1 died
    assert reporting() == [0, 1, 2]
    assert replicas[2].notifier.run_scheduled()
    assert reporting() == [2]


def test_a_large_first_prune_is_spread_over_rounds(store_url: str) -> None:
    """A store that never pruned (a year of webhook records) is pruned a few batches per round, so
    the deadline checks of the replica doing it are not held up."""
    clock = FakeClock(T0)
    world = World(store_url, clock, retention={"events": "7d", "interval": "1h"})
    try:
        for index in range(7):
            world.ingest(alert(f"0f{index:02x}", T0))
        clock.advance(days=8)
        assert world.service.prune(batch=2, max_batches=2) == {
            "notifications": 4, "alert_events": 0, "sent_messages": 0, "more": 1}
        assert world.service.prune(batch=2, max_batches=2)["notifications"] == 3
        assert _count(world, db.notifications) == 0
    finally:
        world.notifier.engine.dispose()
