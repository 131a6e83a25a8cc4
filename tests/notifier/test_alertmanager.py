"""A real Alertmanager (Debian's prometheus-alertmanager) posting to a real notifier, with faults:
the notifier killed and restarted while alerts arrive, the database down for a while. Afterwards
every alert Alertmanager sent has its ticket and its message, none twice."""

from __future__ import annotations

import os
import re
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from einvoice_notifier import db
from einvoice_notifier.app import WEBHOOK_PATH, Notifier
from einvoice_notifier.settings import parse_settings
from sqlalchemy import Engine, func, select

from tests.notifier.support import MariaDB, RecordingChannel, ServedNotifier
from tests.support.procs import Proc, free_port, require_binary, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("notifier_e2e")]

TOKEN = "am-webhook-token"
LINK = re.compile(r"/console/link/(\d+)\?")


class Alertmanager:
    def __init__(self, tmp: Path, notifier_port: int) -> None:
        binary = require_binary("prometheus-alertmanager", "alertmanager")
        self.port = free_port()
        config = {
            "route": {"receiver": "notifier", "group_by": ["alertname"], "group_wait": "1s",
                      "group_interval": "1s", "repeat_interval": "1h"},
            "receivers": [{"name": "notifier", "webhook_configs": [{
                "url": f"http://127.0.0.1:{notifier_port}{WEBHOOK_PATH}", "send_resolved": True,
                "http_config": {"authorization": {"credentials": TOKEN}}}]}],
        }
        path = tmp / "alertmanager.yml"
        path.write_text(yaml.safe_dump(config))
        (tmp / "am-data").mkdir()
        self.proc = Proc([binary, f"--config.file={path}", f"--storage.path={tmp / 'am-data'}",
                          f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=",
                          "--log.level=info"], log=tmp / "alertmanager.log")
        self.proc.wait_port(self.port)

    def post(self, alerts: list[dict[str, Any]]) -> None:
        answer = requests.post(f"http://127.0.0.1:{self.port}/api/v2/alerts", json=alerts, timeout=10)
        assert answer.status_code == 200, answer.text

    def stop(self) -> None:
        self.proc.stop()


def _alerts(name: str, count: int, resolved: bool = False) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    found = []
    for index in range(count):
        item: dict[str, Any] = {
            "labels": {"alertname": name, "severity": "critical", "item": "05", "zone": "extranet",
                       "target": f"http://intake-{index}.{name.lower()}:7001/health"},
            "annotations": {"summary": f"受理服务 {index} 健康检查失败"},
        }
        if resolved:
            item["endsAt"] = (now - timedelta(seconds=1)).isoformat()
        found.append(item)
    return found


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        tickets = conn.execute(select(func.count()).select_from(db.tickets)).scalar() or 0
        resolved = conn.execute(select(func.count()).where(db.tickets.c.state == "resolved")).scalar() or 0
        pending = conn.execute(select(func.count()).where(db.outbox.c.state != "sent")).scalar() or 0
        rows = conn.execute(select(func.count()).select_from(db.outbox)).scalar() or 0
    return {"tickets": tickets, "resolved": resolved, "unsent": pending, "messages": rows}


def _one_row_per_ticket_event(engine: Engine) -> None:
    with engine.connect() as conn:
        pairs = conn.execute(select(db.outbox.c.ticket_id, db.outbox.c.event)).all()
        targets = conn.execute(select(db.tickets.c.target)).scalars().all()
    assert len(pairs) == len(set(pairs)), "a ticket event was enqueued twice"
    assert len(targets) == len(set(targets)), "an alert got two tickets"


@pytest.fixture
def notifier_config(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    port = free_port()
    config = {
        "listen": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}",
        "database_url": f"sqlite:///{tmp_path / 'notifier.db'}", "webhook_token": TOKEN,
        "console_secret_key": "console-secret-for-tests",
        "channels": [{"type": "console", "name": "console", "path": str(tmp_path / "messages.log"),
                      "stdout": False}],
        "outbox": {"poll_interval": "200ms"}, "scheduler_interval": "1h",
    }
    path = tmp_path / "notifier.yml"
    path.write_text(yaml.safe_dump(config))
    yield path, port


def _start_notifier(config: Path, port: int, log: Path) -> Proc:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = Proc([sys.executable, "-m", "einvoice_notifier.cli", "--config", str(config)], log=log, env=env)
    return proc.wait_port(port, timeout=60)


def test_notifier_killed_and_restarted_while_alerts_arrive(tmp_path: Path,
                                                           notifier_config: tuple[Path, int]) -> None:
    config, port = notifier_config
    notifier = _start_notifier(config, port, tmp_path / "notifier-1.log")
    am = Alertmanager(tmp_path, port)
    engine = db.make_engine(f"sqlite:///{tmp_path / 'notifier.db'}")
    kills = 0
    try:
        am.post(_alerts("EinvoiceWaveA", 10))
        wait_until(lambda: _counts(engine)["tickets"] >= 1, timeout=30, what="first tickets")
        am.post(_alerts("EinvoiceWaveB", 10))
        notifier.kill()  # SIGKILL while wave B is being delivered
        kills += 1
        am.post(_alerts("EinvoiceWaveC", 10))
        notifier = _start_notifier(config, port, tmp_path / "notifier-2.log")
        am.post(_alerts("EinvoiceWaveA", 10, resolved=True) + _alerts("EinvoiceWaveD", 10))
        notifier.kill()
        kills += 1
        notifier = _start_notifier(config, port, tmp_path / "notifier-3.log")
        wait_until(lambda: _counts(engine) == {"tickets": 40, "resolved": 10, "unsent": 0, "messages": 50},
                   timeout=90, what=f"every alert stored and sent (now {_counts(engine)})")
        _one_row_per_ticket_event(engine)
        blocks = (tmp_path / "messages.log").read_text(encoding="utf-8").split("\n=== ")
        delivered = Counter(int(m.group(1)) for block in blocks for m in [LINK.search(block)] if m)
        assert len(delivered) == 40, "every ticket reached the channel"
        # At-least-once: only a message in flight at a SIGKILL may show twice.
        assert sum(delivered.values()) - 50 <= kills
    finally:
        am.stop()
        notifier.stop()
        engine.dispose()


def test_database_down_for_a_while_then_everything_arrives(tmp_path: Path) -> None:
    mariadb = MariaDB(tmp_path / "mariadb").start()
    url = mariadb.new_database()
    robot = RecordingChannel("console")
    settings = parse_settings({"channels": [{"type": "console", "name": "console", "stdout": False}],
                               "outbox": {"poll_interval": "200ms"}, "scheduler_interval": "1h"})
    notifier = Notifier(settings, db.make_engine(url), channels={"console": robot}, webhook_token=TOKEN)
    served = ServedNotifier(notifier)
    am = None
    try:
        with served:
            am = Alertmanager(tmp_path, served.port)
            am.post(_alerts("EinvoiceBeforeOutage", 5))
            wait_until(lambda: _counts(notifier.engine)["tickets"] == 5, timeout=30, what="first tickets")
            mariadb.stop()
            am.post(_alerts("EinvoiceDuringOutage", 8) + _alerts("EinvoiceBeforeOutage", 5, resolved=True))
            answered_503 = notifier.counters.webhook_requests.values
            wait_until(lambda: answered_503.get(("503",), 0) >= 2, timeout=30, what="503 answers")
            mariadb.start()
            wait_until(lambda: _safe_counts(notifier.engine) == {
                "tickets": 13, "resolved": 5, "unsent": 0, "messages": 18},
                timeout=90, what="everything stored after the outage")
            _one_row_per_ticket_event(notifier.engine)
            sent = Counter(m.content for m in robot.sent)
            assert len(robot.sent) == 18 and max(sent.values()) == 1, "no message twice"
            tickets = Counter(int(LINK.search(m.ticket_url or "").group(1)) for m in robot.sent)  # type: ignore[union-attr]
            assert sorted(tickets.values()) == [1] * 8 + [2] * 5  # the 5 resolved: firing + resolved
    finally:
        if am is not None:
            am.stop()
        mariadb.stop()
        notifier.engine.dispose()


def _safe_counts(engine: Engine) -> dict[str, int] | None:
    from sqlalchemy.exc import DBAPIError

    try:
        return _counts(engine)
    except DBAPIError:
        return None
