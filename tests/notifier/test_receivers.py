"""Both sides of the Alertmanager → notifier contract: every receiver URL in the generated
`alert_rules/alertmanager.yml` is accepted by the real notifier app, and a real Alertmanager
(Debian's prometheus-alertmanager) running the repository's routing tree delivers to a real
notifier: an important period reaches first and second line, and a 130-minute outage with its
follow-ups is one ticket. Alertmanager is a Go program that ignores faketime, so the on-site hours
and the important period are rebuilt around the current clock and the alerts' startsAt lie in the
past (the Alertmanager v2 API accepts them: https://prometheus.io/docs/alerting/latest/clients/)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
import requests
import yaml
from einvoice_notifier import db
from einvoice_notifier.app import Notifier
from einvoice_notifier.payload import Notification
from einvoice_notifier.settings import parse_settings
from sqlalchemy import select

from einvoice_core.contract import WEBHOOK_PATH, Route, SlaEvent, receiver_url
from tests.notifier.support import RecordingChannel, ServedNotifier, alert, notification
from tests.support.procs import Proc, free_port, require_binary, wait_until

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "alert_rules" / "alertmanager.yml"
SHIPPED_BASE = "http://notifier:9878" + WEBHOOK_PATH
"""The notifier URL the generated file carries (deployment substitutes it)."""
TOKEN = "receivers-webhook-token"
API_TOKEN = "receivers-api-token"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _shipped() -> dict[str, Any]:
    loaded = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _receiver_urls(config: dict[str, Any]) -> dict[str, list[str]]:
    return {receiver["name"]: [hook["url"] for hook in receiver.get("webhook_configs", [])]
            for receiver in config["receivers"]}


class World:
    """A notifier (first line: `robot`, second line: `oncall`) served by uvicorn on a free port."""

    def __init__(self, tmp: Path) -> None:
        settings = parse_settings({
            "channels": [{"type": "console", "name": "robot", "stdout": False},
                         {"type": "console", "name": "oncall", "stdout": False}],
            "routing": {"first_line": ["robot"], "second_line": ["oncall"]},
            "outbox": {"poll_interval": "100ms"}, "scheduler_interval": "1h",
            "api_tokens": [{"name": "reports", "token": API_TOKEN, "role": "viewer"}],
        })
        self.robot, self.oncall = RecordingChannel("robot"), RecordingChannel("oncall")
        engine = db.make_engine(f"sqlite:///{tmp / 'notifier.db'}")
        db.migrate(engine)
        self.notifier = Notifier(settings, engine, channels={"robot": self.robot, "oncall": self.oncall},
                                 webhook_token=TOKEN)
        self.served = ServedNotifier(self.notifier)

    @property
    def service(self) -> Any:
        return self.notifier.service

    def routes(self) -> list[str]:
        with self.notifier.engine.connect() as conn:
            return list(conn.execute(select(db.notifications.c.route)).scalars())


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    found = World(tmp_path)
    with found.served:
        yield found
    found.notifier.engine.dispose()


def test_every_receiver_url_of_the_generated_config_is_accepted(world: World) -> None:
    urls = _receiver_urls(_shipped())
    every = {url for found in urls.values() for url in found}
    # Both ways: the file uses exactly the routes of the contract, each as receiver_url builds it.
    assert every == {receiver_url(SHIPPED_BASE, route) for route in Route}
    now = datetime.now(UTC)
    for index, (receiver, found) in enumerate(sorted(urls.items())):
        for url in found:
            assert url.startswith(SHIPPED_BASE)
            parts = urlsplit(url)
            body = notification(alert(f"{index:04x}", now, target=f"http://intake-{index}/health"))
            body["receiver"] = receiver
            answer = requests.post(world.served.url + parts.path + (f"?{parts.query}" if parts.query else ""),
                                   json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
            assert 200 <= answer.status_code < 300, (receiver, url, answer.status_code, answer.text)
    assert len(world.service.list_tickets()) == len(urls)
    assert set(world.routes()) == {route.value for route in Route}


def test_rates_api_per_period(world: World) -> None:
    """The monthly report reads the two rates of a period over the JSON API."""
    def get(query: str) -> requests.Response:
        return requests.get(f"{world.served.url}/api/v1/rates{query}", timeout=30,
                            headers={"Authorization": f"Bearer {API_TOKEN}"})

    now = datetime.now(UTC)
    world.service.ingest(Notification.model_validate(notification(alert("0101", now))))
    (ticket,) = world.service.list_tickets()
    world.service.resolve(ticket.id, "alice")
    world.service.close(ticket.id, "alice", "原因", "方案", True)
    month = get("")
    assert month.status_code == 200, month.text
    body = month.json()
    assert (body["closed"], body["closed_locally"], body["local_ratio"]) == (1, 1, 1.0)
    assert (body["resolved"], body["recurred"], body["one_time_ratio"]) == (1, 0, 1.0)
    empty = get("?start=2020-01-01T00:00:00%2B08:00&end=2020-02-01T00:00:00%2B08:00").json()
    assert (empty["closed"], empty["local_ratio"], empty["one_time_ratio"]) == (0, None, None)
    assert get("?start=2020-01-01T00:00:00%2B08:00").status_code == 422
    assert get("?start=2020-02-01T00:00:00%2B08:00&end=2020-01-01T00:00:00%2B08:00").status_code == 422
    assert requests.get(f"{world.served.url}/api/v1/rates", timeout=30).status_code == 401


# ------------------------------------------------------------------------------------------------
# A real Alertmanager with the repository's routing tree


def _window(start: datetime, end: datetime) -> list[dict[str, str]]:
    """A daily time range from start to end (less than a day apart), split at midnight if it wraps."""
    a, b = start.strftime("%H:%M"), end.strftime("%H:%M")
    if a < b:
        return [{"start_time": a, "end_time": b}]
    tail = [{"start_time": "00:00", "end_time": b}] if b != "00:00" else []
    return [{"start_time": a, "end_time": "24:00"}, *tail]


class Alertmanager:
    """The shipped alertmanager.yml with only what a test must change: the notifier's address and
    token file, the group timings shortened to 1 s, on-site hours that exclude the current hour
    (so critical alerts also reach the second line) and, if asked, an important period now."""

    def __init__(self, tmp: Path, notifier_url: str, important_period_now: bool) -> None:
        binary = require_binary("prometheus-alertmanager", "alertmanager")
        token = tmp / "token"
        token.write_text(TOKEN + "\n", encoding="utf-8")
        config = copy.deepcopy(_shipped())
        for receiver in config["receivers"]:
            for hook in receiver.get("webhook_configs", []):
                hook["url"] = hook["url"].replace(SHIPPED_BASE, notifier_url + WEBHOOK_PATH)
                hook["http_config"]["authorization"]["credentials_file"] = str(token)

        def shorten(route: dict[str, Any]) -> None:
            for key in ("group_wait", "group_interval"):
                if key in route:
                    route[key] = "1s"
            for child in route.get("routes", []):
                shorten(child)

        config["route"]["group_wait"] = config["route"]["group_interval"] = "1s"
        shorten(config["route"])
        now = datetime.now(SHANGHAI)
        away = _window(now + timedelta(hours=1), now + timedelta(hours=3))
        important = ([{"times": [{"start_time": "00:00", "end_time": "24:00"}], "location": "Asia/Shanghai"}]
                     if important_period_now else [{"years": ["2020"], "location": "Asia/Shanghai"}])
        names = {interval["name"] for interval in config["time_intervals"]}
        assert names == {"onsite_hours", "important_periods"}, names
        config["time_intervals"] = [
            {"name": "onsite_hours", "time_intervals": [{"times": away, "location": "Asia/Shanghai"}]},
            {"name": "important_periods", "time_intervals": important},
        ]
        path = tmp / "alertmanager.yml"
        path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        (tmp / "am-data").mkdir()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = Proc([binary, f"--config.file={path}", f"--storage.path={tmp / 'am-data'}",
                          f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=",
                          "--log.level=debug"], log=tmp / "alertmanager.log")
        self.proc.wait_port(self.port)
        wait_until(lambda: requests.get(f"{self.url}/-/ready", timeout=1).ok, what="alertmanager ready")

    def post(self, *alerts: dict[str, Any]) -> None:
        requests.post(f"{self.url}/api/v2/alerts", json=list(alerts), timeout=10).raise_for_status()


def _am_alert(labels: dict[str, str], starts: datetime, ends: datetime | None = None,
              annotations: dict[str, str] | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"labels": labels, "annotations": annotations or {"summary": "测试"},
                             "startsAt": starts.isoformat()}
    if ends is not None:
        found["endsAt"] = ends.isoformat()
    return found


CRITICAL = {"alertname": "EinvoiceCheckFailing", "severity": "critical", "zone": "intranet", "item": "11",
            "check": "redis_cluster", "target": "10.1.0.11:7000"}
WARNING = {"alertname": "EinvoiceCheckFailing", "severity": "warning", "zone": "intranet", "item": "14",
           "check": "push_backlog", "target": "oracle-push"}


@pytest.mark.slow
@pytest.mark.xdist_group("notifier_e2e")
def test_important_period_through_alertmanager_reaches_everyone_once(tmp_path: Path, world: World) -> None:
    am = Alertmanager(tmp_path, world.served.url, important_period_now=True)
    try:
        now = datetime.now(UTC)
        am.post(_am_alert(CRITICAL, now), _am_alert(WARNING, now))
        # each alert: its on-site receiver and the important-period receiver (second line muted)
        wait_until(lambda: sorted(world.routes()) == ["first_line"] * 2 + ["important_period"] * 2,
                   timeout=30, what=f"four deliveries (now {world.routes()})")
        tickets = world.service.list_tickets()
        assert sorted(t.severity_class for t in tickets) == ["general", "urgent"]
        assert all(t.second_line for t in tickets)
        wait_until(lambda: len(world.robot.sent) >= 2 and len(world.oncall.sent) >= 2, timeout=30,
                   what="cards to both lines")
        with world.notifier.engine.connect() as conn:
            rows = conn.execute(select(db.outbox.c.ticket_id, db.outbox.c.channel)).all()
        assert sorted(rows) == sorted((t.id, channel) for t in tickets for channel in ("robot", "oncall"))
        assert sorted(m.content.count("【告警】") for m in world.robot.sent + world.oncall.sent) == [1] * 4
    finally:
        am.proc.stop()


@pytest.mark.slow
@pytest.mark.xdist_group("notifier_e2e")
def test_130_minute_outage_through_alertmanager_is_one_ticket(tmp_path: Path, world: World) -> None:
    """A 130-minute outage of 受理服务 at night, labelled as the generated rules label it: the
    outage alert, then its follow-ups (30-minute restore breached, 2-hour limit exceeded), each on
    the on-site and second-line receivers. One ticket, one restore breach, the 2-hour escalation on
    the same ticket, resolved when the outage ends."""
    am = Alertmanager(tmp_path, world.served.url, important_period_now=False)
    try:
        now = datetime.now(UTC)
        began = now - timedelta(minutes=130)
        base = {"severity": "critical", "severity_class": "outage", "service": "intake"}
        notes = {"summary": "受理服务宕机", "started_at": str(int(began.timestamp()))}
        outage = {"alertname": "EinvoiceServiceOutage", **base}
        breached = {"alertname": "EinvoiceServiceOutageRestoreBreached", **base,
                    "sla_event": SlaEvent.RESTORE_BREACHED.value}
        exceeded = {"alertname": "EinvoiceServiceOutageLimitExceeded", **base,
                    "sla_event": SlaEvent.LIMIT_EXCEEDED.value}
        am.post(_am_alert(outage, began + timedelta(minutes=3), annotations=notes))
        wait_until(lambda: sorted(world.routes()) == ["first_line", "second_line"], timeout=30,
                   what=f"the outage on both routes (now {world.routes()})")
        (ticket,) = world.service.list_tickets()
        assert (ticket.severity_class, ticket.problem_key) == ("outage", "service=intake")
        assert ticket.resolution_deadline == datetime.fromtimestamp(int(began.timestamp()), UTC) + timedelta(
            minutes=30)
        am.post(_am_alert(breached, began + timedelta(minutes=31), annotations=notes),
                _am_alert(exceeded, began + timedelta(minutes=121), annotations=notes))

        def applied() -> tuple[str, ...]:
            found = world.service.get_ticket(ticket.id)
            return found.sla_events if found else ()

        both = {"restore_breached", "limit_exceeded"}
        wait_until(lambda: set(applied()) == both and len(world.routes()) == 6, timeout=30,
                   what=f"both follow-ups on both routes (now {applied()}, {world.routes()})")
        ended = datetime.now(UTC)
        am.post(_am_alert(outage, began + timedelta(minutes=3), ended, notes),
                _am_alert(breached, began + timedelta(minutes=31), ended, notes),
                _am_alert(exceeded, began + timedelta(minutes=121), ended, notes))
        wait_until(lambda: (world.service.get_ticket(ticket.id) or ticket).state == "resolved", timeout=30,
                   what="the outage resolved")
        (final,) = world.service.list_tickets()
        assert final.id == ticket.id and final.resolution_breached and final.escalated
        assert world.notifier.registry.get_sample_value(
            "einvoice_notifier_deadline_breaches_total",
            {"deadline": "resolution", "severity_class": "outage"}) == 1
        with world.notifier.engine.connect() as conn:
            rows = conn.execute(select(db.outbox.c.channel, db.outbox.c.event, db.outbox.c.dedupe_key)
                                .where(db.outbox.c.format == "markdown")).all()
        escalations = sorted(key for channel, event, key in rows if event == "escalation")
        assert escalations == [f"sla|{ticket.id}|limit_exceeded|oncall|0",
                               f"sla|{ticket.id}|restore_breached|oncall|0"]
        assert sorted((channel, event) for channel, event, _ in rows if event != "escalation") == [
            ("oncall", "firing"), ("oncall", "resolved"), ("robot", "firing"), ("robot", "resolved")]
    finally:
        am.proc.stop()
