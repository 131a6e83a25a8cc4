"""Test helpers for the notifier: a real MariaDB, a notifier served by uvicorn in a thread, a
channel that records, a clock the test moves, Alertmanager payloads."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pymysql
import uvicorn
from einvoice_notifier.app import Notifier, create_app
from einvoice_notifier.messaging.base import Message, SendResult

from einvoice_stack.mariadb import mariadb_server_argv
from tests.support.procs import (
    Proc,
    check_mariadb_datadir,
    free_port,
    install_mariadb_datadir,
    require_binary,
    wait_until,
)


class MariaDB:
    """mariadbd on a free port with its own datadir; `stop()`/`start()` for outage tests."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.datadir = base / "data"
        self.port = 0  # chosen when first started, then kept across stop()/start()
        self.proc: Proc | None = None
        self.server = require_binary("mariadbd", "/usr/sbin/mariadbd", "mysqld", "/usr/sbin/mysqld")
        install_mariadb_datadir(self.datadir)

    def start(self) -> MariaDB:
        # The port is taken just before the server binds it: chosen before the data directory's
        # install (seconds under load), another test's server could take it first.
        self.port = self.port or free_port()
        # --skip-grant-tables: the test owns this throwaway server; any user/password connects.
        self.proc = Proc(mariadb_server_argv(self.server, self.base, self.datadir, self.port,
                                             "--skip-grant-tables", "--collation-server=utf8mb4_unicode_ci"),
                         log=self.base / "mariadb.log")
        self.proc.wait_port(self.port, timeout=60)

        def answers() -> bool:
            try:
                pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=1).close()
            except pymysql.err.OperationalError:
                return False
            return True

        wait_until(answers, timeout=30, what="mariadb answering")
        check_mariadb_datadir(self.port, self.datadir)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(timeout=30)
            self.proc = None

    def new_database(self) -> str:
        name = "t_" + uuid.uuid4().hex[:12]
        conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=5)
        try:
            with conn.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        finally:
            conn.close()
        return f"mysql+pymysql://notifier:secret@127.0.0.1:{self.port}/{name}"


@dataclass
class RecordingChannel:
    """A channel that keeps what it was given; `results` scripts the answers (then: sent)."""

    name: str = "console"
    max_bytes: int = 4096
    results: list[SendResult] = field(default_factory=list)
    sent: list[Message] = field(default_factory=list)
    attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, message: Message) -> SendResult:
        with self.lock:
            self.attempts += 1
            result = self.results.pop(0) if self.results else SendResult.sent()
            if result.outcome.value == "sent":
                self.sent.append(message)
            return result


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class ServedNotifier:
    """A Notifier behind a real uvicorn server in a thread, on a free port."""

    def __init__(self, notifier: Notifier, start_background: bool = True) -> None:
        self.notifier = notifier
        self.port = free_port()
        config = uvicorn.Config(create_app(notifier, start_background=start_background), host="127.0.0.1",
                                port=self.port, log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServedNotifier:
        self.thread.start()
        wait_until(lambda: self.server.started, timeout=20, what="notifier started")
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(20)


def alert(fingerprint: str, starts_at: datetime, status: str = "firing", ends_at: datetime | None = None,
          **labels: str) -> dict[str, Any]:
    labels = {"alertname": "EinvoiceHttpProbeDown", "severity": "critical", "item": "05",
              "zone": "extranet", "target": "http://intake-1:7001/health", **labels}
    return {
        "status": status, "labels": labels,
        "annotations": {"summary": "受理服务健康检查失败", "description": "连续 3 次探测失败"},
        "startsAt": iso(starts_at),
        "endsAt": iso(ends_at) if ends_at else "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph", "fingerprint": fingerprint,
    }


def notification(*alerts: dict[str, Any], status: str | None = None, group_key: str = "{}:{alertname=\"X\"}",
                 ) -> dict[str, Any]:
    return {
        "version": "4", "groupKey": group_key, "truncatedAlerts": 0,
        "status": status or ("firing" if any(a["status"] == "firing" for a in alerts) else "resolved"),
        "receiver": "notifier", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093", "alerts": list(alerts),
    }


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def shanghai(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A Beijing-time wall clock reading as an aware UTC datetime."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC) - timedelta(hours=8)
