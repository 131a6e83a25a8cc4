"""Durable outbox: senders that deliver stored messages through their channel, never losing one.

A message row is written in the same transaction as the ticket change that caused it (see
service.py), so after a crash it is still there and is sent on the next start. One sender thread per
channel delivers due rows oldest first. A retry backs off exponentially (or waits what the channel
asked, e.g. WeChat's 45009 rate limit); after `max_attempts` counted attempts, or at once for a
permanent error (93000: bad robot key), the row becomes a dead letter, shown in metrics and in the
API. When the database fails just after a send, the outcome is kept in memory and written once the
database is back, so the message is not sent again. Only a crash between the channel's answer and
the row update re-sends that one message (at-least-once), the right side to err on for a notice.

Replicas: several notifiers may share one MySQL/MariaDB. A sender first leases the due rows it is
about to send (`lease_owner` = a token of this claim, `lease_until` = now + `outbox.lease`), in one
short transaction; on MariaDB ≥ 10.6 and MySQL 8 the candidates are read `FOR UPDATE SKIP LOCKED`,
so two replicas claiming at once take different rows instead of queueing on the same ones, and the
conditional UPDATE (only rows nobody holds) decides on every backend. The HTTP send runs outside any
transaction; the outcome is written only while the lease is still this claim's. A replica that dies
holding leases leaves its rows to the others once `lease_until` passes. A send is only started while
at least half the lease is left, and the lease is at least twice the channel's timeout (settings),
so a live sender never loses a row to another replica mid-send.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, case, func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from .db import from_db, outbox, to_db, utcnow, write_lock
from .messaging.base import Channel, Message, Outcome, SendResult
from .metrics import LabelledCounter
from .settings import OutboxSettings

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
CONTENDED_RETRY = 0.05
"""Seconds a sender waits when every due row was being claimed by another replica."""
PACING_MEMORY = timedelta(seconds=60)
"""How far back sent messages count toward a channel's rate window (WeCom's robot: one minute)."""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    ticket_id: int | None
    channel: str
    event: str
    state: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    last_error: str
    content: str


def _row(found: Mapping[Any, Any]) -> OutboxRow:
    return OutboxRow(
        id=found["id"], ticket_id=found["ticket_id"], channel=found["channel"],
        event=found["event"], state=found["state"], attempts=found["attempts"],
        created_at=from_db(found["created_at"]), next_attempt_at=from_db(found["next_attempt_at"]),  # type: ignore[arg-type]
        sent_at=from_db(found["sent_at"]), last_error=found["last_error"],
        content=found["content"])


def list_messages(engine: Engine, state: str | None = "dead", limit: int = 200) -> list[OutboxRow]:
    query = select(outbox).order_by(outbox.c.id.desc()).limit(max(1, min(limit, 5000)))
    if state:
        query = query.where(outbox.c.state == state)
    with engine.connect() as conn:
        return [_row(found) for found in conn.execute(query).mappings()]


class Sender:
    """Delivers one channel's due messages; `run_once` is the unit tests drive with their clock."""

    def __init__(self, engine: Engine, channel: Channel, settings: OutboxSettings, clock: Clock = utcnow,
                 sends: LabelledCounter | None = None, pacing_peers: Iterable[str] = ()) -> None:
        self.engine = engine
        self.channel = channel
        self.pacing_peers = tuple(sorted({channel.name, *pacing_peers}))
        """Channel names that send through the same rate-limited endpoint (one WeCom robot)."""
        self._paced_from_store = False
        self.settings = settings
        self.clock = clock
        self.sends = sends
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unrecorded: dict[int, tuple[str, dict[str, object]]] = {}
        """Outcomes the database could not take yet (claim token, values): kept here so a sent
        message is not re-sent."""
        self.holder = replica_name()
        self._skip_locked: bool | None = None

    def backoff(self, attempts: int) -> float:
        return min(self.settings.backoff_max, self.settings.backoff_initial * 2 ** max(attempts - 1, 0))

    def run_once(self, batch: int = 20) -> float | None:
        """Send what is due now; return seconds until the next row is due (None: nothing pending)."""
        self._flush_unrecorded()
        if not self._paced_from_store:
            self._pace_from_store()
        token, until, rows = self._claim(batch)
        left = [int(row["id"]) for row in rows]
        # One connection records the whole batch, each outcome a single autocommitted UPDATE: a
        # pool checkout per message (ping, reset) cost more than the message's own statement.
        recorder = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") if rows else None
        try:
            for found in rows:
                if self._stop.is_set():
                    return 0.0
                if (until - self.clock()).total_seconds() < self.settings.lease / 2:
                    break  # too little lease left to be sure to finish: claim again
                result = self._send(found)
                left.remove(int(found["id"]))
                self._record(found, result, token, recorder)
                if result.outcome is Outcome.RETRY and not result.count_attempt:
                    break  # paced by the channel: later rows would be refused as well
        finally:
            if recorder is not None:
                recorder.close()
            if left:
                self._release(token, left)
        due = self._next_due()
        if not rows and due == 0.0:
            # Due rows that another replica is claiming this very moment: look again shortly
            # rather than spin.
            return CONTENDED_RETRY
        return due

    def _supports_skip_locked(self) -> bool:
        """MariaDB ≥ 10.6 and MySQL ≥ 8.0.1 have SKIP LOCKED. Asked once connected (the server's
        version is known from the first connection on)."""
        if self._skip_locked is None:
            dialect = self.engine.dialect
            if dialect.name not in ("mysql", "mariadb"):
                self._skip_locked = False
                return False
            version = tuple(getattr(dialect, "server_version_info", None) or ())
            if not version:
                return False  # not connected yet: ask again next time
            self._skip_locked = version >= ((10, 6) if getattr(dialect, "is_mariadb", False) else (8, 0, 1))
        return self._skip_locked

    def _claim(self, batch: int) -> tuple[str, datetime, list[Mapping[Any, Any]]]:
        """Lease up to `batch` due rows nobody holds; return the claim's token, its end, its rows."""
        now = self.clock()
        until = now + timedelta(seconds=self.settings.lease)
        token = f"{self.holder}:{secrets.token_hex(4)}"
        free = or_(outbox.c.lease_until.is_(None), outbox.c.lease_until <= to_db(now))
        due = and_(outbox.c.channel == self.channel.name, outbox.c.state == "pending",
                   outbox.c.next_attempt_at <= to_db(now), free)
        with write_lock(self.engine), self.engine.begin() as conn:
            query = select(outbox.c.id).where(due).order_by(outbox.c.id).limit(batch)  # oldest first
            if self._supports_skip_locked():  # else SQLite's one writer, or the UPDATE below decides
                query = query.with_for_update(skip_locked=True)
            ids = conn.execute(query).scalars().all()
            if not ids:
                return token, until, []
            conn.execute(update(outbox).where(outbox.c.id.in_(ids), due),
                         {"lease_owner": token, "lease_until": to_db(until)})
        with self.engine.connect() as conn:
            rows = conn.execute(select(outbox).where(outbox.c.id.in_(ids), outbox.c.lease_owner == token)
                                .order_by(outbox.c.id)).mappings().all()
        return token, until, list(rows)

    def _release(self, token: str, ids: list[int]) -> None:
        """Give back the rows of a claim not sent (stopped, paced, lease running short). By id: the
        lease columns have no index (a sender finds its rows by the due index, then by id)."""
        try:
            with write_lock(self.engine), self.engine.begin() as conn:
                conn.execute(update(outbox).where(outbox.c.id.in_(ids), outbox.c.lease_owner == token),
                             {"lease_owner": None, "lease_until": None})
        except DBAPIError as exc:  # they come free when the lease ends anyway
            log.warning("outbox %s: could not release leases (%s)", self.channel.name,
                        type(exc.orig).__name__)

    def _pace_from_store(self) -> None:
        """Give the channel's rate window what the store says went out in the last minute (a restart
        must not grant a fresh allowance). Once per sender; raises while the database is down."""
        remember = getattr(self.channel, "remember_sent", None)
        if remember is not None:
            now = self.clock()
            with self.engine.connect() as conn:
                sent = conn.execute(select(outbox.c.sent_at).where(
                    outbox.c.channel.in_(self.pacing_peers), outbox.c.state == "sent",
                    outbox.c.sent_at >= to_db(now - PACING_MEMORY))).scalars().all()
            ages = [(now - from_db(at)).total_seconds() for at in sent if at is not None]  # type: ignore[operator]
            remember(ages)
            if ages:
                log.info("outbox %s: %d message(s) sent in the last minute before start; pacing from them",
                         self.channel.name, len(ages))
        self._paced_from_store = True

    def _send(self, found: Mapping[Any, Any]) -> SendResult:
        message = Message(format=found["format"], content=found["content"],
                          mentioned_mobiles=tuple(json.loads(found["mentioned_mobiles"])),
                          ticket_url=found["ticket_url"])
        try:
            return self.channel.send(message)
        except Exception:  # the contract: a channel never raises; if one does it is a bug, retried
            log.exception("channel %s raised while sending outbox row %s", self.channel.name, found["id"])
            return SendResult.retry("exception")

    def _record(self, found: Mapping[Any, Any], result: SendResult, token: str,
                conn: Connection | None = None) -> None:
        now = self.clock()
        attempts = int(found["attempts"]) + (1 if result.count_attempt else 0)
        values: dict[str, object] = {"attempts": attempts, "last_error": result.reason[:255],
                                     "lease_owner": None, "lease_until": None}
        if result.outcome is Outcome.SENT:
            values |= {"state": "sent", "sent_at": to_db(now), "last_error": ""}
        elif result.outcome is Outcome.PERMANENT or attempts >= self.settings.max_attempts:
            values["state"] = "dead"
            log.warning("outbox row %s on channel %s is a dead letter after %d attempts: %s",
                        found["id"], self.channel.name, attempts, result.reason)
        else:
            delay = result.retry_after if result.retry_after is not None else self.backoff(attempts)
            values["next_attempt_at"] = to_db(now + timedelta(seconds=max(delay, 0.0)))
        if self.sends is not None:
            label = result.outcome.value if result.outcome is not Outcome.RETRY or result.count_attempt \
                else "paced"
            self.sends.labels(channel=self.channel.name, result=label).inc()
        self._unrecorded[int(found["id"])] = (token, values)
        self._flush_unrecorded(conn)

    def _flush_unrecorded(self, autocommit: Connection | None = None) -> None:
        """Write the outcomes not yet stored; raises (and keeps them) while the database is down.

        An outcome is written while this claim still holds the row. A message sent after its lease
        ran out (the database was down longer than the lease) is marked sent all the same, unless
        another replica already recorded it: that one may have sent it too, and is counted."""
        for row_id, (token, values) in list(self._unrecorded.items()):
            with write_lock(self.engine), (nullcontext(autocommit) if autocommit is not None
                                           else self.engine.begin()) as conn:
                mine = and_(outbox.c.id == row_id, outbox.c.lease_owner == token)
                held = conn.execute(update(outbox).where(mine), values).rowcount
                if not held:
                    log.warning("outbox row %s on channel %s: lease lost before its outcome was stored",
                                row_id, self.channel.name)
                    if values.get("state") == "sent":
                        conn.execute(update(outbox).where(outbox.c.id == row_id, outbox.c.state == "pending"),
                                     values)
            del self._unrecorded[row_id]

    def _next_due(self) -> float | None:
        # A row another replica holds is due again when its lease ends (if it is still pending).
        when = case((outbox.c.lease_until > outbox.c.next_attempt_at, outbox.c.lease_until),
                    else_=outbox.c.next_attempt_at)
        with self.engine.connect() as conn:
            due = conn.execute(select(func.min(when)).where(
                outbox.c.channel == self.channel.name, outbox.c.state == "pending")).scalar()
        if due is None:
            return None
        return max(0.0, (from_db(due) - self.clock()).total_seconds())  # type: ignore[operator]

    # -- thread ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"outbox-{self.channel.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.wake.clear()
            try:
                delay = self.run_once()
            except DBAPIError as exc:
                log.warning("outbox %s: database unavailable (%s); will retry", self.channel.name,
                            type(exc.orig).__name__)
                delay = self.settings.poll_interval
            except Exception:  # a bug must not silently end deliveries for good: log, keep going
                log.exception("outbox %s: unexpected error; will retry", self.channel.name)
                delay = self.settings.poll_interval
            if delay == 0.0:
                continue
            wait = self.settings.poll_interval if delay is None else min(delay, self.settings.poll_interval)
            self.wake.wait(wait)


def replica_name() -> str:
    """Who holds a lease, for the logs and the database: host, process and a random part (two
    notifiers in one process are two holders), at most 55 characters."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


class Outbox:
    """All senders; `notify(channels)` wakes the ones that have new rows."""

    def __init__(self, engine: Engine, channels: Mapping[str, Channel], settings: OutboxSettings,
                 clock: Clock = utcnow, sends: LabelledCounter | None = None) -> None:
        groups: dict[str, list[str]] = {}
        for name, channel in channels.items():
            groups.setdefault(str(getattr(channel, "pacing_key", "") or f"channel:{name}"), []).append(name)
        self.senders = {name: Sender(engine, channel, settings, clock, sends,
                                     groups[str(getattr(channel, "pacing_key", "") or f"channel:{name}")])
                        for name, channel in channels.items()}

    def notify(self, channels: set[str]) -> None:
        for name in channels:
            sender = self.senders.get(name)
            if sender is not None:
                sender.wake.set()

    def start(self) -> None:
        for sender in self.senders.values():
            sender.start()

    def stop(self) -> None:
        for sender in self.senders.values():
            sender.stop()
