"""What adversarial testing found in the webhook and the JSON API (issue 10): every malformed body is a
counted 4xx, ids no row can have are 404, the API answers 503 while MariaDB is down, /docs works offline."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from einvoice_notifier import db
from einvoice_notifier.app import Notifier

from tests.notifier.support import MariaDB, RecordingChannel, ServedNotifier, alert, notification
from tests.notifier.test_webhook import API_TOKEN, NOW, TOKEN, Client, _settings

BEARER = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Client]:
    robot = RecordingChannel("robot")
    notifier = Notifier(_settings(), db.make_engine(f"sqlite:///{tmp_path / 'n.db'}"),
                        channels={"robot": robot}, webhook_token=TOKEN)
    with ServedNotifier(notifier) as served:
        yield Client(served, robot)
    notifier.engine.dispose()


def _webhook_codes(client: Client) -> dict[str, float]:
    family = client.metrics()["einvoice_notifier_webhook_requests"]
    return {s.labels["code"]: s.value for s in family.samples if s.name.endswith("_total") and s.value}


def _nested(depth: int) -> bytes:
    alert_body = alert("dee9", NOW)
    text = json.dumps(notification(alert_body), ensure_ascii=False)
    deep = "[" * depth + "]" * depth
    return text.replace('"连续 3 次探测失败"', deep).encode()


@pytest.mark.parametrize("raw, code", [
    (b"[" * 5000 + b"]" * 5000, 400),  # RecursionError in the JSON parser
    (b'{"a":' * 5000 + b"1" + b"}" * 5000, 400),
    (_nested(900), 422),  # parses, then nested far too deep for an annotation
    (_nested(5000), 400),
    (b'{"version": "4", "n": ' + b"9" * 5000 + b"}", 400),  # an integer of 5000 digits
    (b'{"version": "4", "alerts": NaN}', 422),
    (b"\x00" * 64, 400),
], ids=["array-5000", "object-5000", "annotation-900", "annotation-5000", "int-5000-digits", "nan", "nul"])
def test_every_malformed_body_is_a_counted_4xx(api: Client, raw: bytes, code: int) -> None:
    answer = api.post(None, raw=raw)
    assert answer.status_code == code, answer.text[:300]
    assert answer.json()["status"] == "error"
    assert _webhook_codes(api) == {str(code): 1.0}
    assert api.count(db.tickets) == 0
    assert api.post(notification(alert("af7e5", NOW))).status_code == 200  # still serving


def test_deep_bodies_on_the_api_are_4xx_too(api: Client) -> None:
    api.post(notification(alert("a1", NOW)))
    tid = api.served.notifier.service.list_tickets()[0].id
    answer = api.http.post(f"{api.served.url}/api/v1/tickets/{tid}/note", data=b"[" * 5000 + b"]" * 5000,
                           headers={**BEARER, "Content-Type": "application/json"}, timeout=10)
    assert 400 <= answer.status_code < 500


@pytest.mark.parametrize("ticket_id", ["12345678901234567890", "9223372036854775808", "0", "-1",
                                       "999999"])
def test_ids_that_name_no_row_are_404(api: Client, ticket_id: str) -> None:
    base = f"{api.served.url}/api/v1"
    assert api.http.get(f"{base}/tickets/{ticket_id}", headers=BEARER, timeout=10).status_code == 404
    for action in ("acknowledge", "progress"):
        assert api.http.post(f"{base}/tickets/{ticket_id}/{action}", headers=BEARER,
                             timeout=10).status_code == 404
    assert api.http.post(f"{base}/tickets/{ticket_id}/note", json={"text": "x"}, headers=BEARER,
                         timeout=10).status_code == 404
    assert api.http.post(f"{base}/outbox/{ticket_id}/requeue", headers=BEARER,
                         timeout=10).status_code == 404


def test_docs_load_nothing_from_outside(api: Client) -> None:
    page = api.http.get(f"{api.served.url}/docs", timeout=10)
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", page.text)
    urls += re.findall(r"""url:\s*["']([^"']+)""", page.text)
    assert urls, "the page references its assets"
    assert all(url.startswith("/") and not url.startswith("//") for url in urls), urls
    assert "http://" not in page.text and "https://" not in page.text
    assert '"validatorUrl": null' in page.text  # no badge fetched from swagger.io
    for url in urls:
        asset = api.http.get(api.served.url + url, timeout=10)
        assert asset.status_code == 200 and len(asset.content) > 100, url
    assert api.http.get(f"{api.served.url}/redoc", timeout=10).status_code == 404


def test_api_answers_503_while_mariadb_is_down(tmp_path: Path) -> None:
    server = MariaDB(tmp_path / "mariadb").start()
    try:
        url = server.new_database()
        notifier = Notifier(_settings(), db.make_engine(url), channels={"robot": RecordingChannel("robot")},
                            webhook_token=TOKEN)
        with ServedNotifier(notifier) as served:
            client = Client(served, RecordingChannel())
            assert client.post(notification(alert("a1", NOW))).status_code == 200
            tid = notifier.service.list_tickets()[0].id
            base = f"{served.url}/api/v1"
            console = requests.Session()
            form = console.get(f"{served.url}/console/login", timeout=10).text
            csrf = form.split('name="csrf" value="')[1].split('"')[0]
            logged_in = console.post(f"{served.url}/console/login", allow_redirects=False, timeout=30, data={
                "username": "alice", "password": "alice-pw", "csrf": csrf})
            assert logged_in.status_code == 303
            server.stop()
            calls: list[tuple[str, str, dict[str, Any] | None]] = [
                ("get", "/tickets", None), ("get", f"/tickets/{tid}", None),
                ("post", f"/tickets/{tid}/acknowledge", None),
                ("post", f"/tickets/{tid}/note", {"text": "在查"}), ("get", "/outbox", None)]
            for method, path, body in calls:
                answer = client.http.request(method, base + path, json=body, headers=BEARER, timeout=30)
                assert answer.status_code == 503, (path, answer.status_code, answer.text[:200])
                assert answer.headers["Retry-After"] == "30"
                assert "unavailable" in answer.json()["detail"]
            assert client.post(notification(alert("a2", NOW))).status_code == 503
            for path in ("/console/tickets", f"/console/tickets/{tid}"):
                page = console.get(served.url + path, timeout=30)
                assert page.status_code == 503 and "工单库暂时不可用" in page.text, path
            server.start()
            answer = client.http.get(f"{base}/tickets/{tid}", headers=BEARER, timeout=30)
            assert answer.status_code == 200 and answer.json()["id"] == tid
        notifier.engine.dispose()
    finally:
        server.stop()
