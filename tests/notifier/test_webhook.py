"""The webhook and JSON API over real HTTP (uvicorn on a free port): bad input, auth, 503, metrics."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import bcrypt
import pytest
import requests
from einvoice_notifier import db
from einvoice_notifier.app import WEBHOOK_PATH, Notifier
from einvoice_notifier.messaging.base import SendResult
from einvoice_notifier.settings import parse_settings
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from tests.notifier.support import (
    RecordingChannel,
    ServedNotifier,
    alert,
    free_port,
    notification,
    wait_until,
)

TOKEN = "webhook-token-for-tests"
API_TOKEN = "api-token-for-tests"
NOW = datetime.now(UTC).replace(microsecond=0)

NOTIFIER_METRICS = {
    "einvoice_notifier_tickets", "einvoice_notifier_deadline_breaches",
    "einvoice_notifier_time_to_acknowledge_seconds", "einvoice_notifier_time_to_resolve_seconds",
    "einvoice_notifier_outbox_depth", "einvoice_notifier_outbox_oldest_age_seconds",
    "einvoice_notifier_outbox_dead_letters", "einvoice_notifier_sends",
    "einvoice_notifier_local_resolution_ratio", "einvoice_notifier_one_time_resolution_ratio",
    "einvoice_notifier_ticket_deadline_timestamp_seconds", "einvoice_notifier_webhook_requests",
    "einvoice_notifier_roster_uncovered_shifts",
}
"""The shared list (counters without `_total`, as the parser names families)."""


def _hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


def _settings(**extra: Any) -> Any:
    return parse_settings({
        "channels": [{"type": "console", "name": "robot", "stdout": False}],
        "routing": {"first_line": ["robot"], "second_line": ["robot"]},
        "users": [{"name": "alice", "password_hash": _hash("alice-pw"), "role": "operator"},
                  {"name": "victor", "password_hash": _hash("victor-pw"), "role": "viewer"}],
        "api_tokens": [{"name": "script", "token": API_TOKEN, "role": "operator"}],
        "outbox": {"max_attempts": 1, "poll_interval": "100ms"},
        "body_limit_bytes": 1024 * 1024,
        **extra,
    })


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class Client:
    def __init__(self, served: ServedNotifier, robot: RecordingChannel) -> None:
        self.served = served
        self.robot = robot
        self.http = requests.Session()

    def post(self, body: Any, token: str | None = TOKEN, raw: bytes | None = None,
             query: str = "") -> requests.Response:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else json.dumps(body).encode()
        return self.http.post(self.served.url + WEBHOOK_PATH + query, data=data, headers=headers, timeout=30)

    def count(self, table: Any) -> int:
        with self.served.notifier.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)

    def metrics(self) -> dict[str, Any]:
        text = self.http.get(self.served.url + "/metrics", timeout=10).text
        return {family.name: family for family in text_string_to_metric_families(text)}


@pytest.fixture
def client(store_url: str) -> Iterator[Client]:
    robot = RecordingChannel("robot")
    notifier = Notifier(_settings(), db.make_engine(store_url), channels={"robot": robot},
                        webhook_token=TOKEN)
    with ServedNotifier(notifier) as served:
        yield Client(served, robot)
    notifier.engine.dispose()


@pytest.fixture
def sqlite_client(tmp_path: Any) -> Iterator[Client]:
    robot = RecordingChannel("robot")
    notifier = Notifier(_settings(), db.make_engine(f"sqlite:///{tmp_path / 'n.db'}"),
                        channels={"robot": robot}, webhook_token=TOKEN)
    with ServedNotifier(notifier) as served:
        yield Client(served, robot)
    notifier.engine.dispose()


def test_valid_notification_is_stored_before_the_answer(client: Client) -> None:
    answer = client.post(notification(alert("a1", NOW), alert("a2", NOW, target="t2")))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "ok", "alerts": 2, "new_events": 2, "new_tickets": 2}
    assert client.count(db.tickets) == 2  # committed when the 200 left
    assert client.count(db.outbox) == 2
    again = client.post(notification(alert("a1", NOW), alert("a2", NOW, target="t2")))
    assert again.json()["new_events"] == 0 and client.count(db.outbox) == 2
    wait_until(lambda: len(client.robot.sent) == 2, what="both messages sent")
    assert client.count(db.notifications) == 2


def test_concurrent_redeliveries_make_one_ticket(client: Client) -> None:
    body = notification(*[alert(f"c{i:03x}", NOW, target=f"t{i}") for i in range(10)])
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _i: client.post(body).status_code, range(16)))
    assert codes == [200] * 16
    assert client.count(db.tickets) == 10
    assert client.count(db.outbox) == 10
    assert client.count(db.alert_events) == 10


@pytest.mark.parametrize("token", [None, "", "wrong", TOKEN + "x", TOKEN.upper()])
def test_wrong_token_is_401_and_stores_nothing(sqlite_client: Client, token: str | None) -> None:
    answer = sqlite_client.post(notification(alert("a1", NOW)), token=token)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert sqlite_client.count(db.tickets) == 0


def test_basic_auth_is_not_a_webhook_token(sqlite_client: Client) -> None:
    answer = sqlite_client.http.post(sqlite_client.served.url + WEBHOOK_PATH,
                                     json=notification(alert("a1", NOW)), headers=_basic("alice", "alice-pw"))
    assert answer.status_code == 401


@pytest.mark.parametrize("raw, code, needle", [
    (b"{not json", 400, "not valid JSON"),
    (b"", 400, "not valid JSON"),
    (b"\xff\xfe{}", 400, "not valid JSON"),
    (b"[]", 422, "version 4"),
    (b'"just a string"', 422, "version 4"),
    (json.dumps(notification(alert("a1", NOW)) | {"version": "3"}).encode(), 422, "version"),
    (json.dumps({k: v for k, v in notification(alert("a1", NOW)).items() if k != "alerts"}).encode(),
     422, "alerts"),
    (json.dumps(notification({**alert("a1", NOW), "startsAt": "yesterday"})).encode(), 422,
     "alerts.0.startsAt"),
    (json.dumps(notification({k: v for k, v in alert("a1", NOW).items() if k != "fingerprint"})).encode(),
     422, "alerts.0.fingerprint"),
    (b'{"version": "4", "groupKey": "g", "status": "firing", "receiver": "r", "alerts": [{"status": '
     b'"firing", "labels": {"a": "\\ud800"}, "startsAt": "2026-01-01T00:00:00Z", "fingerprint": "ab"}]}',
     422, "alerts.0.labels.a"),
])
def test_bad_input_is_a_4xx_with_a_message(sqlite_client: Client, raw: bytes, code: int, needle: str) -> None:
    answer = sqlite_client.post(None, raw=raw)
    assert answer.status_code == code, answer.text
    assert needle in json.dumps(answer.json())
    assert sqlite_client.count(db.tickets) == 0


def test_ten_megabyte_body_is_413(sqlite_client: Client) -> None:
    big = notification(alert("a1", NOW, padding="x" * 60000))
    big["alerts"] = big["alerts"] * 170  # ≈ 10 MB
    raw = json.dumps(big).encode()
    assert len(raw) > 10_000_000
    answer = sqlite_client.post(None, raw=raw)
    assert answer.status_code == 413
    assert "larger than 1048576" in answer.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
        for start in range(0, 3_000_000, 65536):
            yield raw[start:start + 65536]

    streamed = sqlite_client.http.post(sqlite_client.served.url + WEBHOOK_PATH, data=chunks(),
                                       headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert streamed.status_code == 413
    assert sqlite_client.count(db.tickets) == 0


def test_unicode_edge_cases_are_kept_exactly(sqlite_client: Client) -> None:
    texts = {"emoji": "告警 🔥🚨", "rtl": "\u202eabc\u202c", "zero_width": "a\u200bb\ufeff",
             "ext_b": "𠀀𪚥", "combining": "e\u0301", "nul": "a\x00b", "long": "长" * 5000}
    answer = sqlite_client.post(notification(alert("a1", NOW, **texts)))
    assert answer.status_code == 200, answer.text
    labels = sqlite_client.served.notifier.service.list_tickets()[0].labels
    assert {key: labels[key] for key in texts} == texts


def test_route_query(sqlite_client: Client) -> None:
    assert sqlite_client.post(notification(alert("a1", NOW)), query="?route=third_line").status_code == 400
    assert sqlite_client.post(notification(alert("a1", NOW)), query="?route=second_line").status_code == 200
    ticket = sqlite_client.served.notifier.service.list_tickets()[0]
    assert ticket.second_line


def test_database_down_is_503_and_the_rest_keeps_serving() -> None:
    closed_port = free_port()
    url = f"mysql+pymysql://notifier:pw@127.0.0.1:{closed_port}/notifier"
    notifier = Notifier(_settings(), db.make_engine(url), channels={"robot": RecordingChannel("robot")},
                        webhook_token=TOKEN)
    with ServedNotifier(notifier) as served:
        client = Client(served, RecordingChannel())
        answer = client.post(notification(alert("a1", NOW)))
        assert answer.status_code == 503
        assert "retry" in answer.json()["error"]
        assert client.http.get(served.url + "/-/healthy", timeout=10).status_code == 200
        assert client.http.get(served.url + "/-/ready", timeout=10).status_code == 503
        families = client.metrics()
        assert "einvoice_notifier_tickets" not in families  # absent, not a failed scrape
        codes = {s.labels["code"]: s.value for s in families["einvoice_notifier_webhook_requests"].samples
                 if s.name.endswith("_total")}
        assert codes["503"] == 1


def test_api_auth_roles_and_actions(sqlite_client: Client) -> None:
    sqlite_client.post(notification(alert("a1", NOW)))
    base = sqlite_client.served.url + "/api/v1"
    http = sqlite_client.http
    assert http.get(f"{base}/tickets", timeout=10).status_code == 401
    assert http.get(f"{base}/tickets", headers=_basic("alice", "nope"), timeout=10).status_code == 401
    assert http.get(f"{base}/tickets", headers=_basic("mallory", "x"), timeout=10).status_code == 401
    listed = http.get(f"{base}/tickets", headers=_basic("victor", "victor-pw"), timeout=10)
    assert listed.status_code == 200
    (ticket,) = listed.json()
    assert ticket["state"] == "open" and ticket["state_zh"] == "新建" and ticket["severity_class"] == "urgent"
    tid = ticket["id"]
    assert http.post(f"{base}/tickets/{tid}/acknowledge", headers=_basic("victor", "victor-pw"),
                     timeout=10).status_code == 403
    evil = {**_basic("alice", "alice-pw"), "Origin": "https://evil.example"}
    assert http.post(f"{base}/tickets/{tid}/acknowledge", headers=evil, timeout=10).status_code == 403
    ack = http.post(f"{base}/tickets/{tid}/acknowledge", timeout=10,
                    headers={**_basic("alice", "alice-pw"), "Origin": sqlite_client.served.url})
    assert ack.status_code == 200 and ack.json()["state"] == "acknowledged"
    again = http.post(f"{base}/tickets/{tid}/acknowledge", headers=_basic("alice", "alice-pw"), timeout=10)
    assert again.status_code == 409 and "已响应" in again.json()["detail"]
    bearer = {"Authorization": f"Bearer {API_TOKEN}"}
    assert http.post(f"{base}/tickets/{tid}/note", json={"text": "在查"}, headers=bearer,
                     timeout=10).status_code == 200
    assert http.post(f"{base}/tickets/{tid}/progress", headers=bearer, timeout=10).status_code == 200
    assert http.post(f"{base}/tickets/{tid}/resolve", json={"note": "好了"}, headers=bearer,
                     timeout=10).status_code == 200
    assert http.post(f"{base}/tickets/{tid}/close", json={"cause": "x", "solution": "y"}, headers=bearer,
                     timeout=10).status_code == 422
    closed = http.post(f"{base}/tickets/{tid}/close", headers=bearer, timeout=10,
                       json={"cause": "证书过期", "solution": "更换证书", "resolved_locally": True})
    assert closed.status_code == 200 and closed.json()["state_zh"] == "已关闭"
    assert http.post(f"{base}/tickets/999999/acknowledge", headers=bearer, timeout=10).status_code == 404
    detail = http.get(f"{base}/tickets/{tid}", headers=bearer, timeout=10).json()
    assert [(e["actor"], e["action"]) for e in detail["timeline"]] == [
        ("alertmanager", "create"), ("alice", "acknowledge"), ("token:script", "add_note"),
        ("token:script", "start_progress"), ("token:script", "resolve"), ("token:script", "close")]
    assert http.get(f"{base}/tickets?state=closed&item=05", headers=bearer, timeout=10).json()[0]["id"] == tid
    assert http.get(f"{base}/tickets?state=bogus", headers=bearer, timeout=10).status_code == 422
    paths = http.get(sqlite_client.served.url + "/openapi.json", timeout=10).json()["paths"]
    assert {WEBHOOK_PATH, "/api/v1/tickets", "/api/v1/tickets/{ticket_id}/close",
            "/api/v1/outbox"} <= set(paths)


def test_dead_letters_in_api_and_every_shared_metric_name(sqlite_client: Client) -> None:
    sqlite_client.robot.results = [SendResult.permanent("errcode_93000")]
    sqlite_client.post(notification(alert("a1", NOW - timedelta(minutes=5))))
    sqlite_client.post(notification(alert("a1", NOW - timedelta(minutes=5), status="resolved", ends_at=NOW)))
    service = sqlite_client.served.notifier.service
    tid = service.list_tickets()[0].id
    service.close(tid, "alice", "原因", "方案", True)
    sqlite_client.post(notification(alert("a2", NOW)))  # an open ticket, for the deadline series
    bearer = {"Authorization": f"Bearer {API_TOKEN}"}

    def dead() -> list:
        return sqlite_client.http.get(sqlite_client.served.url + "/api/v1/outbox", headers=bearer,
                                      timeout=10).json()

    wait_until(lambda: len(dead()) == 1, what="a dead letter")
    assert dead()[0]["last_error"] == "errcode_93000" and dead()[0]["channel"] == "robot"
    message_id = dead()[0]["id"]
    families = sqlite_client.metrics()
    ours = {name for name in families if name.startswith("einvoice_notifier")}
    assert ours == NOTIFIER_METRICS
    dead_letters = families["einvoice_notifier_outbox_dead_letters"].samples
    assert [(s.labels, s.value) for s in dead_letters] == [({"channel": "robot"}, 1.0)]
    deadline_samples = families["einvoice_notifier_ticket_deadline_timestamp_seconds"].samples
    assert {s.labels["deadline"] for s in deadline_samples} == {"response", "resolution"}
    assert {s.labels["ticket_id"] for s in deadline_samples} == {str(tid + 1)}
    # The operator fixed the robot: the dead letter goes out again, and the ticket says who asked.
    requeue = sqlite_client.served.url + f"/api/v1/outbox/{message_id}/requeue"
    viewer = _basic("victor", "victor-pw")
    assert sqlite_client.http.post(requeue, headers=viewer, timeout=10).status_code == 403
    sent_before = len(sqlite_client.robot.sent)
    assert sqlite_client.http.post(requeue, headers=bearer, timeout=10).status_code == 204
    wait_until(lambda: dead() == [], what="dead letter re-sent")
    wait_until(lambda: len(sqlite_client.robot.sent) == sent_before + 1, what="the message delivered")
    assert sqlite_client.http.post(requeue, headers=bearer, timeout=10).status_code == 409
    assert sqlite_client.http.post(sqlite_client.served.url + "/api/v1/outbox/999999/requeue",
                                   headers=bearer, timeout=10).status_code == 404
    entry = service.timeline(tid)[-1]
    assert (entry.actor, entry.action, entry.before["state"]) == ("token:script", "requeue_message", "dead")


def test_an_operator_template_that_breaks_on_one_alert_costs_neither_ticket_nor_message(
        tmp_path: Any) -> None:
    """The override passes the start-up check (it renders the sample, item 10) but fails on item 05:
    the alert is still stored and answered 200, and the built-in card goes out instead."""
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "alert_card.md.j2").write_text(
        '{% if item == "05" %}{{ labels.no_such_label }}{% endif %}# 自定义卡片\n{{ link_line }}\n',
        encoding="utf-8")
    robot = RecordingChannel("robot")
    notifier = Notifier(_settings(template_dir=str(templates)),
                        db.make_engine(f"sqlite:///{tmp_path / 'n.db'}"), channels={"robot": robot},
                        webhook_token=TOKEN)
    with ServedNotifier(notifier) as served:
        client = Client(served, robot)
        answer = client.post(notification(alert("f1", NOW)))
        assert answer.status_code == 200, answer.text
        assert client.count(db.tickets) == 1
        wait_until(lambda: len(robot.sent) == 1, what="the fallback card sent")
    notifier.engine.dispose()
    [card] = robot.sent
    assert "自定义卡片" not in card.content and "受理服务健康检查失败" in card.content
