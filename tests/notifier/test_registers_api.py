"""The registers of issue 19 over real HTTP (uvicorn on a free port, SQLite and MariaDB): tickets carry
their system and the drill mark from the alert; fault ownership, the change register with its linked
tickets, vulnerabilities and complaints need an operator to change and a login to read; bad input
is a 422 with a Chinese reason; free text is stored redacted; /metrics exports the change windows and
the hardening deadlines."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from einvoice_notifier import db
from einvoice_notifier.app import Notifier
from prometheus_client.parser import text_string_to_metric_families

from einvoice_core.contract import WEBHOOK_PATH
from einvoice_core.redaction import MARK_TAX_ID
from tests.notifier.support import RecordingChannel, ServedNotifier, notification
from tests.notifier.support import alert as _alert
from tests.notifier.test_webhook import API_TOKEN, TOKEN, _basic, _settings

OPERATOR = {"Authorization": f"Bearer {API_TOKEN}"}
VIEWER = _basic("victor", "victor-pw")
TAX_ID = "91450100MA5L8XKQ3B"
"""A well-formed 统一社会信用代码 (its check digit holds): the redaction must find it by shape alone."""


def _fp(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:16]


def alert(name: str, starts_at: datetime, **labels: str) -> dict[str, Any]:
    """An alert whose fingerprint is derived from a readable name (fingerprints are hex)."""
    return _alert(_fp(name), starts_at, **labels)


def outage_alert(name: str, starts_at: datetime, service: str = "intake") -> dict[str, Any]:
    """A service outage alert (its ticket is of the outage class: a fault)."""
    return alert(
        name, starts_at, alertname="EinvoiceServiceOutage", item="", service=service, severity_class="outage"
    )


@contextmanager
def served_api(settings: Any, store_url: str) -> Iterator[Api]:
    """A notifier on this store, served over HTTP, and its API."""
    notifier = Notifier(
        settings,
        db.make_engine(store_url),
        channels={"robot": RecordingChannel("robot")},
        webhook_token=TOKEN,
    )
    with ServedNotifier(notifier) as served:
        yield Api(served)
    notifier.engine.dispose()


class Api:
    def __init__(self, served: ServedNotifier) -> None:
        self.served = served
        self.url = f"{served.url}/api/v1"
        self.http = requests.Session()

    def webhook(self, *alerts: dict[str, Any]) -> None:
        answer = self.http.post(
            f"{self.served.url}{WEBHOOK_PATH}",
            json=notification(*alerts),
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> requests.Response:
        return self.http.request(
            method,
            f"{self.url}{path}",
            json=body,
            headers=OPERATOR if headers is None else headers,
            timeout=30,
        )

    def tickets(self, *names: str) -> dict[str, dict[str, Any]]:
        """The tickets of the alerts with these names, by name."""
        found = {t["fingerprint"]: t for t in self.call("GET", "/tickets", headers=VIEWER).json()}
        return {name: found[_fp(name)] for name in names if _fp(name) in found}

    def metrics(self) -> dict[str, Any]:
        text = self.http.get(f"{self.served.url}/metrics", timeout=10).text
        return {family.name: family for family in text_string_to_metric_families(text)}


@pytest.fixture
def api(store_url: str) -> Iterator[Api]:
    with served_api(_settings(), store_url) as served:
        yield served


def test_tickets_get_system_and_drill_from_the_alert(api: Api) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    api.webhook(
        alert("named", now - timedelta(minutes=5), system="ofd_front", item="08"),
        alert("by-item", now - timedelta(minutes=4), item="19"),
        outage_alert("by-service", now - timedelta(minutes=3), service="pipeline"),
        alert("drill", now - timedelta(minutes=2), item="10", drill="true"),
    )
    found = api.tickets("named", "by-item", "by-service", "drill")
    assert {name: (t["system"], t["drill"]) for name, t in found.items()} == {
        "named": ("ofd_front", False),  # the label wins over item 08's first system
        "by-item": ("invoice_mgmt", False),  # item 19 serves 发票管理系统 2.0
        "by-service": ("public_service", False),  # the first system that lists the service
        "drill": ("public_service", True),
    }
    # A closed drill ticket is no ticket for the resolution rates.
    drill_id = found["drill"]["id"]
    for action, body in (
        ("resolve", {}),
        ("close", {"cause": "演练", "solution": "演练恢复", "resolved_locally": True}),
    ):
        assert api.call("POST", f"/tickets/{drill_id}/{action}", body).status_code == 200
    rates = api.call("GET", "/rates", headers=VIEWER).json()
    assert (rates["closed"], rates["resolved"]) == (0, 0)


def test_fault_ownership_needs_an_operator_and_an_outage(api: Api) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    api.webhook(
        outage_alert("outage", now - timedelta(minutes=20)),
        alert("warning", now - timedelta(minutes=20), item="20", severity="warning"),
    )
    found = api.tickets("outage", "warning")
    outage, warning = found["outage"]["id"], found["warning"]["id"]
    body = {
        "owner": "network",
        "evidence": f"第08、20项探测同时失败，电信确认光缆中断；纳税人识别号 {TAX_ID} 的开票请求超时",
    }
    assert api.call("PUT", f"/tickets/{outage}/fault", body, headers={}).status_code == 401
    assert api.call("PUT", f"/tickets/{outage}/fault", body, headers=VIEWER).status_code == 403
    refused = api.call("PUT", f"/tickets/{warning}/fault", body)
    assert (refused.status_code, refused.json()["detail"]) == (
        422,
        "只有宕机工单或已宣布的重大事件需要故障定责",
    )
    assert api.call("PUT", f"/tickets/{outage}/fault", {**body, "owner": "weather"}).status_code == 422
    wrong_system = api.call("PUT", f"/tickets/{outage}/fault", {**body, "system": "mars"})
    assert wrong_system.status_code == 422 and "请选择系统" in wrong_system.json()["detail"]
    assert api.call("GET", f"/tickets/{outage}/fault", headers=VIEWER).status_code == 404

    recorded = api.call("PUT", f"/tickets/{outage}/fault", body)
    assert recorded.status_code == 200, recorded.text
    fault = api.call("GET", f"/tickets/{outage}/fault", headers=VIEWER).json()
    assert (fault["owner"], fault["owner_zh"], fault["vendor"], fault["system"]) == (
        "network",
        "网络",
        False,
        "public_service",
    )
    assert TAX_ID not in fault["evidence"] and MARK_TAX_ID in fault["evidence"]
    changed = api.call("PUT", f"/tickets/{outage}/fault", {**body, "owner": "undetermined"}).json()
    assert (changed["owner"], changed["vendor"]) == ("undetermined", True)  # ★4(3): the vendor's
    timeline = api.call("GET", f"/tickets/{outage}", headers=VIEWER).json()["timeline"]
    owners = [
        (e["before"].get("owner"), e["after"]["owner"]) for e in timeline if e["action"] == "fault_owner"
    ]
    assert owners == [(None, "network"), ("network", "undetermined")]
    assert TAX_ID not in str(timeline)


def test_change_register_links_the_tickets_it_caused_and_is_on_metrics(api: Api) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    start, end = now - timedelta(hours=3), now - timedelta(hours=2)
    change = {
        "kind": "patch",
        "system": "invoice_mgmt",
        "title": "底账库同步补丁 P-2026-11",
        "version_before": "2.0.17",
        "version_after": "2.0.18",
        "parameters": "sync.batch=500",
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "performed_by": "王工",
        "approval_ref": "桂税信〔2026〕88号",
    }
    assert api.call("POST", "/changes", change, headers=VIEWER).status_code == 403
    assert api.call("POST", "/changes", change, headers={}).status_code == 401
    backwards = api.call(
        "POST", "/changes", {**change, "window_end": (start - timedelta(hours=1)).isoformat()}
    )
    assert (backwards.status_code, backwards.json()["detail"]) == (422, "变更窗口的结束时间需晚于开始时间")
    assert api.call("POST", "/changes", {**change, "kind": "hotfix"}).status_code == 422
    assert api.call("POST", "/changes", {**change, "system": "nowhere"}).status_code == 422
    no_version = api.call("POST", "/changes", {**change, "version_after": ""})
    assert no_version.json()["detail"] == "补丁或版本升级需填写升级后的版本"
    created = api.call("POST", "/changes", {**change, "title": f"补丁：修复税号 {TAX_ID} 的同步失败"})
    assert created.status_code == 201, created.text
    made = created.json()
    assert TAX_ID not in made["title"] and made["outcome"] == "pending"
    assert datetime.fromisoformat(made["watch_end"]) == end + timedelta(days=7)  # the default watch

    # Tickets: one of the system during the watch, one before the window, one of another system.
    api.webhook(
        alert("after", now - timedelta(minutes=30), item="19"),
        alert("before", start - timedelta(hours=1), item="16"),
        alert("other", now - timedelta(minutes=20), item="04"),
    )
    tickets = api.tickets("after", "before", "other")
    candidates = api.call("GET", f"/changes/{made['id']}/candidates", headers=VIEWER).json()
    assert [c["id"] for c in candidates] == [tickets["after"]["id"]]
    too_early = api.call("POST", f"/changes/{made['id']}/tickets", {"ticket_id": tickets["before"]["id"]})
    assert too_early.status_code == 422
    linked = api.call("POST", f"/changes/{made['id']}/tickets", {"ticket_id": tickets["after"]["id"]})
    assert linked.status_code == 200 and linked.json()["linked_tickets"] == [tickets["after"]["id"]]
    again = api.call("POST", f"/changes/{made['id']}/tickets", {"ticket_id": tickets["after"]["id"]})
    assert again.status_code == 422
    assert api.call("GET", f"/changes/{made['id']}/candidates", headers=VIEWER).json() == []

    silent = api.call("PATCH", f"/changes/{made['id']}", {"outcome": "new_problem"})
    assert (silent.status_code, silent.json()["detail"]) == (422, "未解决问题或引发新问题时请填写结果说明")
    done = api.call(
        "PATCH",
        f"/changes/{made['id']}",
        {
            "outcome": "new_problem",
            "post_check": "同步正常",
            "post_check_ok": True,
            "outcome_note": "补丁后同步接口超时，已回退",
        },
    ).json()
    assert (done["outcome"], done["outcome_zh"], done["post_check_ok"]) == ("new_problem", "引发新问题", True)
    assert api.call("PATCH", "/changes/424242", {"post_check": "x"}).status_code == 404
    listed = api.call("GET", "/changes", headers=VIEWER, body=None).json()
    assert [c["id"] for c in listed] == [made["id"]]

    metrics = api.metrics()
    labels = {"change": str(made["id"]), "system": "invoice_mgmt", "kind": "patch"}
    for name, moment in (
        ("einvoice_change_window_start_timestamp_seconds", start),
        ("einvoice_change_window_end_timestamp_seconds", end),
        ("einvoice_change_watch_end_timestamp_seconds", end + timedelta(days=7)),
    ):
        samples = [(s.labels, s.value) for s in metrics[name].samples]
        assert samples == [(labels, moment.timestamp())]


def test_the_ticket_list_filters_by_system_and_drill(api: Api) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    api.webhook(alert("sync", now - timedelta(minutes=5), item="19"),
                alert("nginx", now - timedelta(minutes=4), item="04"),
                alert("drilled", now - timedelta(minutes=3), item="04", drill="true"))
    made = api.tickets("sync", "nginx", "drilled")
    assert len(made) == 3

    def listed(query: str) -> set[int]:
        answer = api.call("GET", f"/tickets?{query}", headers=VIEWER)
        assert answer.status_code == 200, answer.text
        return {t["id"] for t in answer.json()}

    assert listed("system=invoice_mgmt") == {made["sync"]["id"]}
    assert listed("system=public_service") == {made["nginx"]["id"], made["drilled"]["id"]}
    assert listed("system=public_service&drill=false") == {made["nginx"]["id"]}
    assert listed("drill=true") == {made["drilled"]["id"]}
    unknown = api.call("GET", "/tickets?system=billing", headers=VIEWER)
    assert unknown.status_code == 422 and "public_service" in unknown.json()["detail"]


def test_vulnerabilities_timer_exemption_and_hardening_record(api: Api) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    today = now.date()
    vuln = {
        "title": "WebLogic T3 反序列化",
        "system": "public_service",
        "severity": "high",
        "found_by": "vendor",
        "found_on": (today - timedelta(days=10)).isoformat(),
        "reported_on": (today - timedelta(days=9)).isoformat(),
        "bureau_scan_on": (today - timedelta(days=5)).isoformat(),
        "deadline": (now - timedelta(days=1)).isoformat(),
    }
    assert api.call("POST", "/vulnerabilities", vuln, headers=VIEWER).status_code == 403
    assert api.call("POST", "/vulnerabilities", {**vuln, "severity": "severe"}).status_code == 422
    early = api.call(
        "POST", "/vulnerabilities", {**vuln, "reported_on": (today - timedelta(days=11)).isoformat()}
    )
    assert (early.status_code, early.json()["detail"]) == (422, "报告税务局日期不能早于发现日期")
    first = api.call("POST", "/vulnerabilities", vuln)
    assert first.status_code == 201, first.text
    reported_first = first.json()
    assert (reported_first["exempt"], reported_first["overdue"]) == (True, True)
    scanned = api.call(
        "POST",
        "/vulnerabilities",
        {
            **vuln,
            "title": "Redis 未授权访问",
            "found_by": "bureau_scan",
            "severity": "medium",
            "reported_on": None,
            "bureau_scan_on": None,
            "system": "invoice_mgmt",
            "deadline": (now + timedelta(days=3)).isoformat(),
        },
    ).json()
    assert (scanned["exempt"], scanned["overdue"], scanned["bureau_scan_on"]) == (
        False,
        False,
        vuln["found_on"],
    )  # found by the scan: scanned that day, never exempt

    metrics = api.metrics()
    deadlines = {
        s.labels["vulnerability"]: (s.labels["system"], s.labels["level"], s.value)
        for s in metrics["einvoice_vulnerability_deadline_timestamp_seconds"].samples
    }
    assert deadlines == {
        str(reported_first["id"]): ("public_service", "high", (now - timedelta(days=1)).timestamp()),
        str(scanned["id"]): ("invoice_mgmt", "medium", (now + timedelta(days=3)).timestamp()),
    }
    overdue = {s.labels["system"]: s.value for s in metrics["einvoice_vulnerabilities_overdue"].samples}
    assert overdue["public_service"] == 1 and overdue["invoice_mgmt"] == 0 and "e_signature" in overdue

    path = f"/vulnerabilities/{reported_first['id']}"
    bare = api.call("PATCH", path, {"hardened_at": now.isoformat()})
    assert (bare.status_code, bare.json()["detail"]) == (422, "已加固的漏洞需要填写加固留档记录")
    backwards = api.call(
        "PATCH",
        path,
        {
            "hardened_at": now.isoformat(),
            "hardening_record": "升级补丁",
            "rollback_watch_end": (now - timedelta(hours=1)).isoformat(),
        },
    )
    assert backwards.json()["detail"] == "回退观察截止时间需在加固之后"
    hardened = api.call(
        "PATCH",
        path,
        {
            "hardened_at": now.isoformat(),
            "hardening_record": "已关闭 T3 协议，变更单附后（联系人 13812345678）",
            "rollback_watch_end": (now + timedelta(days=3)).isoformat(),
        },
    ).json()
    assert hardened["overdue"] is False and "13812345678" not in hardened["hardening_record"]
    metrics = api.metrics()
    assert {
        s.labels["vulnerability"]
        for s in metrics["einvoice_vulnerability_deadline_timestamp_seconds"].samples
    } == {str(scanned["id"])}
    assert {s.labels["system"]: s.value for s in metrics["einvoice_vulnerabilities_overdue"].samples}[
        "public_service"
    ] == 0


def test_complaints_are_verified_and_linked(api: Api) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    api.webhook(alert("slow", now - timedelta(minutes=30), item="05"))
    ticket = api.tickets("slow")["slow"]["id"]
    complaint = {
        "received_on": now.date().isoformat(),
        "system": "public_service",
        "summary": f"纳税人 {TAX_ID} 投诉开票页面长时间无响应",
    }
    assert api.call("POST", "/complaints", complaint, headers={}).status_code == 401
    assert (
        api.call("POST", "/complaints", {**complaint, "ticket_id": 999999}).json()["detail"]
        == "工单 999999 不存在"
    )
    made = api.call("POST", "/complaints", complaint).json()
    assert made["verification"] == "pending" and TAX_ID not in made["summary"]
    assert (
        api.call("POST", f"/complaints/{made['id']}/verify", {"verification": "yes", "note": "x"}).status_code
        == 422
    )
    verified = api.call(
        "POST",
        f"/complaints/{made['id']}/verify",
        {"verification": "substantiated", "note": "受理服务卡顿属实", "ticket_id": ticket},
    ).json()
    assert (verified["verification_zh"], verified["ticket_id"]) == ("属实", ticket)
    assert [c["id"] for c in api.call("GET", "/complaints?system=public_service", headers=VIEWER).json()] == [
        made["id"]
    ]
    assert api.call("GET", "/complaints?system=invoice_mgmt", headers=VIEWER).json() == []
    actions = [e["action"] for e in api.call("GET", f"/tickets/{ticket}", headers=VIEWER).json()["timeline"]]
    assert "complaint_link" in actions


def test_the_register_step_upgrades_a_store_with_tickets(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store of the schema before issue 19 (with a ticket) gets the columns and tables; the step is
    self-contained: run again (as it would be if another step were numbered before it), it changes
    nothing."""
    from sqlalchemy import insert, inspect, select, text

    step = next(number for number, _desc, apply in db.MIGRATIONS if apply is db._registers)
    earlier = tuple(m for m in db.MIGRATIONS if m[0] < step)
    monkeypatch.setattr(db, "MIGRATIONS", earlier)
    engine = db.make_engine(store_url)
    assert db.migrate(engine) == step - 1
    with engine.begin() as conn:
        assert "system" not in {c["name"] for c in inspect(conn).get_columns("tickets")}
        conn.execute(
            text(
                "INSERT INTO tickets (fingerprint, starts_at, group_key, alertname, severity_class, state,"
                " summary, description, labels, created_at, updated_at, response_deadline,"
                " resolution_deadline,"
                " response_breached, resolution_breached, escalated, second_line, sla_events)"
                " VALUES ('ab12', '2026-11-03 02:00:00', '{}', 'X', 'outage', 'open', 's', 'd', '{}',"
                " '2026-11-03 02:00:00', '2026-11-03 02:00:00', '2026-11-03 02:10:00', '2026-11-03 02:30:00',"
                " 0, 0, 0, 0, '')"
            )
        )
    monkeypatch.undo()
    assert db.migrate(engine) == len(db.MIGRATIONS)
    with engine.begin() as conn:
        db._registers(conn)  # again: nothing to add, no error
        row = conn.execute(select(db.tickets.c.system, db.tickets.c.drill)).one()
        assert (row.system, bool(row.drill)) == (None, False)
        conn.execute(
            insert(db.fault_records).values(
                ticket_id=1,
                owner="network",
                system="public_service",
                evidence="e",
                recorded_by="x",
                recorded_at=datetime(2026, 11, 3),
            )
        )
        assert set(inspect(conn).get_table_names()) >= {t.name for t in db.REGISTER_TABLES}
    engine.dispose()
