"""Three notifier processes on one MariaDB, two Alertmanagers in a gossip cluster, a storm of
alerts, and one notifier and one Alertmanager SIGKILLed in the middle of it (and the same behind
nginx, the wiring the deploy docs recommend). Afterwards every alert
has exactly one ticket and reached WeCom exactly once; duplicates and losses are counted and printed.

Wiring (a decision): each Alertmanager names all three notifiers' webhook URLs (one
webhook_config each), so every notification reaches every live replica at once, and with the
cluster's peer timeout at 50 ms both Alertmanagers usually send each group too: up to six
concurrent deliveries of one group race into the store, the worst case for the dedupe. A load
balancer would hand each delivery to one replica and race less; the guarantees do not depend on it.
The notifiers are started together, so their schema migrations race as well (one migrates, the
others wait on the lock). WeCom is tests/notifier/messaging/fake_wecom.py (the application-message
API, which has no per-minute cap like the group robot's 20 messages).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from einvoice_notifier import db
from einvoice_notifier.app import WEBHOOK_PATH
from sqlalchemy import Engine, func, select

from tests.notifier.messaging.fake_wecom import FakeWeCom
from tests.notifier.support import MariaDB
from tests.support.procs import Proc, free_port, require_binary, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("notifier_replicas")]

TOKEN = "replica-webhook-token"
LINK = re.compile(r"/console/link/(\d+)\?")
GROUPS = 48
"""Alert groups (alertnames) of plain alerts, each of ALERTS alerts."""
ALERTS = 10
SERVICES = 8
"""Services in outage: each an outage alert and its restore warning, in two groups: one ticket."""
WAVES = 8


class ClusterAlertmanager:
    """prometheus-alertmanager in cluster mode on loopback, sending to every notifier."""

    def __init__(self, tmp: Path, name: str, webhooks: list[str], cluster_port: int,
                 peers: list[int]) -> None:
        binary = require_binary("prometheus-alertmanager", "alertmanager")
        self.port = free_port()
        base = tmp / name
        base.mkdir()
        config = {
            "route": {"receiver": "notifiers", "group_by": ["alertname"], "group_wait": "1s",
                      "group_interval": "2s", "repeat_interval": "1h"},
            "receivers": [{"name": "notifiers", "webhook_configs": [{
                "url": url, "send_resolved": False,
                "http_config": {"authorization": {"credentials": TOKEN}}} for url in webhooks]}],
        }
        (base / "alertmanager.yml").write_text(yaml.safe_dump(config))
        self.proc = Proc([binary, f"--config.file={base / 'alertmanager.yml'}", f"--storage.path={base}",
                          f"--web.listen-address=127.0.0.1:{self.port}",
                          f"--cluster.listen-address=127.0.0.1:{cluster_port}",
                          *[f"--cluster.peer=127.0.0.1:{peer}" for peer in peers],
                          "--cluster.peer-timeout=50ms", "--cluster.gossip-interval=100ms",
                          "--cluster.pushpull-interval=2s", "--log.level=info"],
                         log=base / "alertmanager.log")

    def ready(self) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/-/ready", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def cluster_size(self) -> int:
        try:
            status = requests.get(f"http://127.0.0.1:{self.port}/api/v2/status", timeout=2).json()
        except (requests.RequestException, ValueError):
            return 0
        return len(status.get("cluster", {}).get("peers") or [])

    def post(self, alerts: list[dict[str, Any]]) -> bool:
        """Post as Prometheus does; False when this Alertmanager is gone (the other one has them)."""
        try:
            answer = requests.post(f"http://127.0.0.1:{self.port}/api/v2/alerts", json=alerts, timeout=10)
        except requests.ConnectionError:
            return False
        assert answer.status_code == 200, answer.text
        return True


def _plain(group: int, since: str) -> list[dict[str, Any]]:
    return [{"labels": {"alertname": f"EinvoiceStorm{group:02d}", "severity": "critical", "item": "05",
                        "zone": "extranet", "target": f"http://intake-{group}-{index}:7001/health"},
             "annotations": {"summary": f"受理服务 {group}-{index} 健康检查失败"}, "startsAt": since}
            for index in range(ALERTS)]


def _outages(services: range, since: str) -> list[dict[str, Any]]:
    found = []
    for service in services:
        common = {"severity": "critical", "severity_class": "outage", "service": f"svc{service}"}
        found.append({"labels": {"alertname": "EinvoiceServiceOutage", **common},
                      "annotations": {"summary": f"服务 svc{service} 宕机"}, "startsAt": since})
        found.append({"labels": {"alertname": "EinvoiceServiceOutageRestoreDeadline", **common,
                                 "sla_event": "restore_warning"},
                      "annotations": {"summary": f"服务 svc{service} 宕机即将超过 30 分钟"},
                      "startsAt": since})
    return found


def _waves() -> list[list[dict[str, Any]]]:
    """The alerts as Prometheus sends them: with their startsAt (the rule's activeAt), the same to
    every Alertmanager (one that stamps its own would make it another alert)."""
    per_wave = GROUPS // WAVES
    since = datetime.now(UTC).isoformat()
    return [[alert for group in range(wave * per_wave, (wave + 1) * per_wave)
             for alert in _plain(group, since)] + _outages(range(wave, SERVICES, WAVES), since)
            for wave in range(WAVES)]


def _start_notifier(tmp: Path, index: int, url: str, wecom: FakeWeCom) -> tuple[Proc, int]:
    port = free_port()
    config = {
        "listen": f"127.0.0.1:{port}", "public_url": "http://notifier.example:9878",
        "database_url": url, "webhook_token": TOKEN, "console_secret_key": "replicas-share-this-secret",
        "channels": [{"type": "wechat_app", "name": "wecom", "corp_id": wecom.corp_id,
                      "agent_id": wecom.agent_id, "secret": wecom.corp_secret, "to_user": ["duty"],
                      "base_url": wecom.base_url, "timeout": 2}],
        "routing": {"first_line": ["wecom"], "second_line": ["wecom"]},
        "outbox": {"poll_interval": "200ms", "lease": "4s"}, "scheduler_interval": "2s",
    }
    path = tmp / f"notifier-{index}.yml"
    path.write_text(yaml.safe_dump(config))
    proc = Proc([sys.executable, "-m", "einvoice_notifier.cli", "--config", str(path), "--log-level", "info"],
                log=tmp / f"notifier-{index}.log", env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return proc, port


def _state(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        tickets = conn.execute(select(func.count()).select_from(db.tickets)).scalar() or 0
        unsent = conn.execute(select(func.count()).where(db.outbox.c.state != "sent")).scalar() or 0
        rows = conn.execute(select(func.count()).select_from(db.outbox)).scalar() or 0
    return {"tickets": tickets, "unsent": unsent, "messages": rows}


def _leased_by(engine: Engine, pid: int) -> int:
    """Messages a replica held (leased) when it died: the others send them once the lease ends."""
    with engine.connect() as conn:
        held = db.outbox.c.lease_owner.like(f"%:{pid}:%")
        return conn.execute(select(func.count()).where(db.outbox.c.state == "pending", held)).scalar() or 0


def _sent_by(port: int) -> float:
    """Messages a live replica sent, from its own /metrics."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    found = re.search(r'einvoice_notifier_sends_total\{channel="wecom",result="sent"\} ([0-9.e+]+)', text)
    return float(found.group(1)) if found else 0.0


@pytest.fixture
def mariadb_url(tmp_path: Path) -> Iterator[str]:
    server = MariaDB(tmp_path / "mariadb").start()
    try:
        yield server.new_database()
    finally:
        server.stop()


def test_three_notifiers_two_alertmanagers_a_storm_and_two_kills(tmp_path: Path, mariadb_url: str) -> None:
    wecom = FakeWeCom().start()
    notifiers = [_start_notifier(tmp_path, index, mariadb_url, wecom) for index in range(3)]
    webhooks = [f"http://127.0.0.1:{port}{WEBHOOK_PATH}" for _proc, port in notifiers]
    gossip = [free_port(), free_port()]
    ams = [ClusterAlertmanager(tmp_path, f"am{index}", webhooks, gossip[index], [gossip[1 - index]])
           for index in range(2)]
    engine = db.make_engine(mariadb_url)
    waves = _waves()
    posted = sum(len(wave) for wave in waves)
    expected = GROUPS * ALERTS + SERVICES  # one ticket (and one message) per alert, per outage
    started = time.monotonic()
    try:
        for proc, port in notifiers:
            proc.wait_port(port, timeout=60)
        wait_until(lambda: all(am.ready() for am in ams), timeout=30, what="alertmanagers ready")
        wait_until(lambda: all(am.cluster_size() == 2 for am in ams), timeout=30, what="a cluster of two")
        killed_at = WAVES // 2
        orphaned = 0
        for number, wave in enumerate(waves):
            if number == killed_at:
                # Mid-storm: the previous waves are being delivered, stored and sent right now, and
                # the replica about to die is among the senders.
                wait_until(lambda: _state(engine)["tickets"] > 0, timeout=30, what="tickets arriving")
                # Best while it is sending and messages wait; mid-storm in any case.
                with contextlib.suppress(TimeoutError):
                    wait_until(lambda: _sent_by(notifiers[1][1]) > 0 and _state(engine)["unsent"] > 0,
                               timeout=10, what="notifier 1 sending while messages wait")
                notifiers[1][0].kill()
                ams[1].proc.kill()
                orphaned = _leased_by(engine, notifiers[1][0].popen.pid)
            for am in ams:
                am.post(wave)
            wait_until(lambda: _state(engine)["tickets"] > 0, timeout=30, what="the storm arriving")
        try:
            wait_until(lambda: _state(engine) == {"tickets": expected, "unsent": 0, "messages": expected}
                       and len(wecom.accepted) >= expected, timeout=90, what="every alert stored and sent")
        except TimeoutError:
            pytest.fail(f"not every alert stored and sent: {_state(engine)}, {len(wecom.accepted)} at WeCom, "
                        f"{expected} expected")
        # Whatever is still in flight (Alertmanager retrying the dead replica) lands now or never.
        with engine.connect() as conn:
            tickets = conn.execute(select(db.tickets.c.id, db.tickets.c.target, db.tickets.c.labels,
                                          db.tickets.c.severity_class)).all()
            deliveries = conn.execute(select(func.count()).select_from(db.notifications)).scalar() or 0
            outbox_rows = conn.execute(select(db.outbox.c.ticket_id, db.outbox.c.state)).all()
        per_target = Counter(target for _id, target, _labels, cls in tickets if cls != "outage")
        outage_tickets = [ticket for ticket in tickets if ticket.severity_class == "outage"]
        received = Counter(int(found.group(1)) for message in wecom.accepted
                           for found in [LINK.search(message.content)] if found)
        ids = {ticket.id for ticket in tickets}
        duplicated_tickets = sum(count - 1 for count in per_target.values()) + len(outage_tickets) - SERVICES
        lost_tickets = GROUPS * ALERTS - len(per_target) + SERVICES - len({t.labels for t in outage_tickets})
        duplicated_messages = sum(count - 1 for count in received.values())
        lost_messages = len(ids - set(received))
        live_sends = {index: _sent_by(port) for index, (proc, port) in enumerate(notifiers) if proc.alive()}
        print(f"\nstorm: {posted} alerts posted to each of 2 alertmanagers in {WAVES} waves; notifier 1 and "
              f"alertmanager 1 SIGKILLed before wave {killed_at} holding {orphaned} leased message(s); "
              f"{deliveries} webhook deliveries stored; "
              f"{len(tickets)} tickets for {expected} expected; {sum(received.values())} messages at WeCom; "
              f"duplicated tickets {duplicated_tickets}, lost tickets {lost_tickets}, duplicated messages "
              f"{duplicated_messages}, lost messages {lost_messages}; re-sends WeCom's duplicate check "
              f"absorbed {wecom.duplicates_dropped}; sent by the live replicas {live_sends}; "
              f"{time.monotonic() - started:.1f} s")
        assert duplicated_tickets == 0 and lost_tickets == 0
        assert set(per_target.values()) == {1} and len(per_target) == GROUPS * ALERTS
        assert sorted(ticket.labels.count("svc") for ticket in outage_tickets) == [1] * SERVICES
        assert len(outbox_rows) == expected and {state for _id, state in outbox_rows} == {"sent"}
        assert Counter(ticket_id for ticket_id, _state in outbox_rows) == Counter(ids)
        assert duplicated_messages == 0 and lost_messages == 0
        assert len(wecom.accepted) == expected
        assert deliveries > len(waves) * (GROUPS // WAVES + 2), "the dedupe was exercised"
        assert all(sent > 0 for sent in live_sends.values()), "every live replica sent messages"
    finally:
        for am in ams:
            am.proc.stop()
        for proc, _port in notifiers:
            proc.stop()
        wecom.stop()
        engine.dispose()


NGINX_CONF = """
error_log {root}/error.log;
pid {root}/nginx.pid;
events {{}}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    upstream notifiers {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://notifiers;
            # docs/deploy.md "通知服务多副本": the webhook is idempotent, so a POST may go to the next one.
            proxy_next_upstream error timeout http_502 http_503 non_idempotent;
            proxy_connect_timeout 2s;
        }}
    }}
}}
"""


def _notifications(am: ClusterAlertmanager, outcome: str) -> float:
    """alertmanager_notifications_total or ..._failed_total of the webhook integration."""
    text = requests.get(f"http://127.0.0.1:{am.port}/metrics", timeout=5).text
    name = f"alertmanager_notifications{outcome}_total"
    found = re.search(rf'{name}\{{integration="webhook"\}} ([0-9.e+]+)', text)
    assert found is not None, f"{name} missing"
    return float(found.group(1))


def test_behind_nginx_a_killed_replica_costs_alertmanager_nothing(tmp_path: Path, mariadb_url: str) -> None:
    """The production wiring: one address, nginx in front of three replicas with the
    proxy_next_upstream line the deploy docs give. A replica SIGKILLed while alerts arrive: nginx
    hands its requests (the one in flight too) to another replica, Alertmanager never sees a failed
    notification, and every alert is one ticket and one message."""
    binary = require_binary("nginx", "/usr/sbin/nginx")
    wecom = FakeWeCom().start()
    notifiers = [_start_notifier(tmp_path, index, mariadb_url, wecom) for index in range(3)]
    port = free_port()
    (tmp_path / "nginx.conf").write_text(NGINX_CONF.format(
        root=tmp_path, port=port,
        servers="\n".join(f"        server 127.0.0.1:{notifier_port};"
                          for _proc, notifier_port in notifiers)))
    nginx = Proc([binary, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
                 log=tmp_path / "nginx.log")
    am = ClusterAlertmanager(tmp_path, "am", [f"http://127.0.0.1:{port}{WEBHOOK_PATH}"], free_port(), [])
    engine = db.make_engine(mariadb_url)
    waves = _waves()
    expected = GROUPS * ALERTS + SERVICES
    try:
        for proc, notifier_port in [*notifiers, (nginx, port)]:
            proc.wait_port(notifier_port, timeout=60)
        wait_until(am.ready, timeout=30, what="alertmanager ready")
        for number, wave in enumerate(waves):
            if number == WAVES // 2:
                wait_until(lambda: _state(engine)["tickets"] > 0, timeout=30, what="tickets arriving")
                notifiers[1][0].kill()
            am.post(wave)
        try:
            wait_until(lambda: _state(engine) == {"tickets": expected, "unsent": 0, "messages": expected}
                       and len(wecom.accepted) >= expected, timeout=90, what="every alert stored and sent")
        except TimeoutError:
            pytest.fail(f"not every alert stored and sent: {_state(engine)}, {len(wecom.accepted)} at WeCom, "
                        f"{expected} expected")
        received = Counter(int(found.group(1)) for message in wecom.accepted
                           for found in [LINK.search(message.content)] if found)
        failed, sent = _notifications(am, "_failed"), _notifications(am, "")
        print(f"\nbehind nginx: {expected} tickets, {sum(received.values())} messages at WeCom for "
              f"{len(received)} tickets; Alertmanager's webhook notifications {sent:g}, failed {failed:g}")
        assert sent >= len(waves)
        assert len(received) == expected and set(received.values()) == {1}
        assert failed == 0, "nginx passed every request on to a live replica"
    finally:
        am.proc.stop()
        nginx.stop()
        for proc, _port in notifiers:
            proc.stop()
        wecom.stop()
        engine.dispose()
