"""The console's 报告 and SLA pages on a real notifier app (its own settings, store and login):
the archive `einvoice-report` wrote is listed and served, nothing outside it can be reached, and the
SLA page shows the scripted month's figures written by hand (test_monthly.py has the same numbers)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import bcrypt
import pytest
from einvoice_reports import cli
from fastapi.testclient import TestClient

PASSWORD = "viewer-pw-2026"
NOW = datetime(2026, 12, 1, 1, 30, tzinfo=UTC)


def _app(tmp: Path, store: str, prometheus: str | None, archive: Path | None) -> TestClient:
    from einvoice_notifier.app import Notifier, create_app
    from einvoice_notifier.settings import parse_settings

    raw: dict = {
        "state_dir": str(tmp), "database_url": store, "webhook_token": "t" * 32,
        "console_secret_key": "console-test-secret-key-0123456789",
        "users": [{"name": "boss", "role": "viewer",
                   "password_hash": bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()}],
    }
    if prometheus:
        raw["prometheus_url"] = prometheus
    if archive is not None:
        raw["report_archive"] = str(archive)
    return TestClient(create_app(Notifier(parse_settings(raw)), start_background=False))


def login(client: TestClient) -> None:
    form = client.get("/console/login")
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', form.text).group(1)
    answer = client.post("/console/login", data={"username": "boss", "password": PASSWORD, "csrf": csrf,
                                                 "next": "/console/reports"}, follow_redirects=False)
    assert answer.status_code == 303


@pytest.fixture
def archive(scripted_prometheus: str, scripted_store: str, tmp_path: Path) -> Path:
    out = tmp_path / "archive"
    for argv in (["params", "--period", "2026-11"], ["scorecard", "--period", "2026-11"]):
        code = cli.main([*argv, "--prometheus", scripted_prometheus, "--store", scripted_store,
                         "--out", str(out), "--no-pdf"], now=NOW)
        assert code in (0, 3)
    (out / "params" / "2026-10.pdf").write_bytes(b"%PDF-1.7 scripted")
    (out / "params" / "notes.txt").write_text("not a report")
    (tmp_path / "secret.txt").write_text("outside the archive")
    os.symlink(tmp_path / "secret.txt", out / "params" / "2026-09.html")
    return out


@pytest.fixture
def client(tmp_path: Path, scripted_store: str, scripted_prometheus: str,
           archive: Path) -> Iterator[TestClient]:
    with _app(tmp_path, scripted_store, scripted_prometheus, archive) as found:
        yield found


def test_reports_page_lists_and_serves_the_archive_after_login(client: TestClient, archive: Path):
    anonymous = client.get("/console/reports", follow_redirects=False)
    assert anonymous.status_code == 303 and "/console/login" in anonymous.headers["location"]
    assert client.get("/console/reports/params/2026-11.html", follow_redirects=False).status_code == 303
    login(client)
    page = client.get("/console/reports")
    assert page.status_code == 200
    rows = re.findall(r'<tr class="report" data-kind="(\w+)" data-label="([\w-]+)">(.*?)</tr>', page.text,
                      re.S)
    listed = {(kind, label): re.findall(r'href="([^"]+)"', body) for kind, label, body in rows}
    assert listed == {
        ("scorecard", "2026-11"): ["/console/reports/scorecard/2026-11.html",
                                   "/console/reports/scorecard/2026-11.xlsx"],
        ("params", "2026-11"): ["/console/reports/params/2026-11.html"],
        ("params", "2026-10"): ["/console/reports/params/2026-10.pdf"],
    }
    served = client.get("/console/reports/params/2026-11.html")
    assert served.status_code == 200 and served.headers["content-type"].startswith("text/html")
    assert served.content == (archive / "params" / "2026-11.html").read_bytes()
    assert "script-src" not in served.headers["content-security-policy"]
    xlsx = client.get("/console/reports/scorecard/2026-11.xlsx")
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    assert xlsx.headers["content-disposition"].startswith("attachment")


@pytest.mark.parametrize("path", [
    "/console/reports/params/..%2f..%2fsecret.txt",
    "/console/reports/params/%2e%2e%2fsecret.txt",
    "/console/reports/..%2f/secret.txt",
    "/console/reports/params/notes.txt",
    "/console/reports/params/2026-09.html",  # a symlink pointing out of the archive
    "/console/reports/nosuchkind/2026-11.html",
    "/console/reports/params/2026-12.html",
    "/console/reports/params/.2026-11.html.tmp",
])
def test_nothing_outside_the_archive_can_be_reached(client: TestClient, path: str):
    login(client)
    answer = client.get(path)
    assert answer.status_code == 404, path
    assert "outside the archive" not in answer.text and "not a report" not in answer.text


def test_sla_page_shows_the_scripted_month(client: TestClient):
    assert client.get("/console/sla?month=2026-11", follow_redirects=False).status_code == 303
    login(client)
    page = client.get("/console/sla?month=2026-11")
    assert page.status_code == 200, page.text

    def cell(row: str, key: str) -> str:
        found = re.search(rf'<tr id="{row}">(.*?)</tr>', page.text, re.S)
        assert found, row
        value = re.search(rf'data-k="{key}"[^>]*>(.*?)</td>', found.group(1), re.S)
        assert value, (row, key)
        return re.sub(r"\s+", " ", value.group(1))

    # intake: 32 of 8640 five-minute samples down (9000 s + 600 s); longest 2.5 h; the year's 3600 s
    # of 15 Oct added: 13200 s used of 43200, 30000 s = 8 h 20 min left (69.4 %)
    assert cell("svc-intake", "availability") == "99.630%"
    assert cell("svc-intake", "outage") == "2 小时 40 分"
    assert cell("svc-intake", "longest") == "2 小时 30 分"
    assert cell("svc-intake", "over-limit") == "1 次"
    assert cell("svc-intake", "ytd") == "3 小时 40 分"
    assert cell("svc-intake", "left") == "8 小时 20 分（69.4%）"
    assert cell("svc-pipeline", "availability") == "100.000%"
    # closed in November: tickets 1, 2, 3, 4, 6, 7; locally and never escalated: 3, 6, 7 -> 50 %;
    # resolved in November: 1, 2, 3, 4, 6; 3 recurred (ticket 6) -> 4 of 5 = 80 %
    assert cell("rate-local", "value") == "50.0%"
    assert cell("rate-one-time", "value") == "80.0%"
    assert client.get("/console/sla?month=2026-13").status_code == 400
    assert client.get("/console/sla?month=../x").status_code == 400


def test_sla_page_says_when_prometheus_is_missing_or_down(tmp_path: Path, scripted_store: str):
    from tests.support.procs import free_port

    with _app(tmp_path, scripted_store, None, None) as client:
        login(client)
        page = client.get("/console/sla?month=2026-11")
        assert page.status_code == 503 and "未配置 Prometheus" in page.text
        assert "99.630%" not in page.text and "50.0%" in page.text  # the ticket rates still show
        listing = client.get("/console/reports")
        assert listing.status_code == 200 and 'id="not-configured"' in listing.text
    with _app(tmp_path, scripted_store, f"http://127.0.0.1:{free_port()}", None) as client:
        login(client)
        page = client.get("/console/sla?month=2026-11")
        assert page.status_code == 503 and "数据源不可用：Prometheus" in page.text
