"""The JSON API of issue 18 over real HTTP (uvicorn on a free port): operators report, escalate,
edit the roster, hand over, sign the inspection, search the knowledge base; viewers only read;
bad input is a 422 with a Chinese reason; the roster gap is on /metrics."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from einvoice_notifier import db
from einvoice_notifier.app import Notifier

from einvoice_core.catalogue import ITEMS
from tests.notifier.support import RecordingChannel, ServedNotifier
from tests.notifier.test_reported_problems import FakePrometheus
from tests.notifier.test_webhook import API_TOKEN, TOKEN, _basic, _settings

OPERATOR = {"Authorization": f"Bearer {API_TOKEN}"}
VIEWER = _basic("victor", "victor-pw")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServedNotifier, FakePrometheus]]:
    with FakePrometheus({"min by (item) (einvoice:item_up)": [("01", "1"), ("13", "0")]}) as prom:
        notifier = Notifier(
            _settings(prometheus_url=prom.url),
            db.make_engine(f"sqlite:///{tmp_path / 'n.db'}"),
            channels={"robot": RecordingChannel("robot")},
            webhook_token=TOKEN,
        )
        with ServedNotifier(notifier) as found:
            yield found, prom
        notifier.engine.dispose()


def test_report_escalate_and_search_over_http(served: tuple[ServedNotifier, FakePrometheus]) -> None:
    server, _prom = served
    url = f"{server.url}/api/v1"
    body = {
        "channel": "phone",
        "reporter": "柳州市局 李工 13812345678",
        "summary": "发票查验超时",
        "severity_class": "urgent",
        "item": "5",
    }
    answer = requests.post(f"{url}/tickets/report", json=body, headers=OPERATOR, timeout=10)
    assert answer.status_code == 201, answer.text
    ticket = answer.json()
    assert (ticket["source"], ticket["report_channel"], ticket["report_channel_zh"], ticket["item"]) == (
        "report",
        "phone",
        "电话",
        "05",
    )
    created = datetime.fromisoformat(ticket["starts_at"])
    assert datetime.fromisoformat(ticket["response_deadline"]) - created == timedelta(minutes=10)
    assert datetime.fromisoformat(ticket["substantive_deadline"]) - created == timedelta(hours=2)
    # A viewer reads, never writes.
    assert requests.post(f"{url}/tickets/report", json=body, headers=VIEWER, timeout=10).status_code == 403
    bad = requests.post(
        f"{url}/tickets/report", json={**body, "channel": "fax"}, headers=OPERATOR, timeout=10
    )
    assert bad.status_code == 422
    wrong_item = requests.post(
        f"{url}/tickets/report", json={**body, "item": "42"}, headers=OPERATOR, timeout=10
    )
    assert (wrong_item.status_code, wrong_item.json()["detail"]) == (422, "检查项 42 不存在")

    tid = ticket["id"]
    escalated = requests.post(
        f"{url}/tickets/{tid}/escalate",
        json={"target": "bureau", "note": "需核实权限"},
        headers=OPERATOR,
        timeout=10,
    )
    assert escalated.status_code == 200 and escalated.json()["escalated_to"] == "bureau"
    again = requests.post(
        f"{url}/tickets/{tid}/escalate", json={"target": "bureau", "note": "x"}, headers=OPERATOR, timeout=10
    )
    assert (again.status_code, again.json()["detail"]) == (422, "工单已提交税务局系统管理员")
    assert (
        requests.post(
            f"{url}/tickets/999999/major", json={"note": "x"}, headers=OPERATOR, timeout=10
        ).status_code
        == 404
    )
    typical_open = requests.post(f"{url}/tickets/{tid}/typical", json={}, headers=OPERATOR, timeout=10)
    assert typical_open.status_code == 409
    for action, payload in (
        ("resolve", {}),
        ("close", {"cause": "权限配置错误", "solution": "税务局已调整权限", "resolved_locally": True}),
    ):
        assert (
            requests.post(
                f"{url}/tickets/{tid}/{action}", json=payload, headers=OPERATOR, timeout=10
            ).status_code
            == 200
        )
    assert requests.post(f"{url}/tickets/{tid}/typical", json={}, headers=OPERATOR, timeout=10).json()[
        "typical"
    ]
    found = requests.get(
        f"{url}/knowledge", params={"q": "权限", "typical": "true"}, headers=VIEWER, timeout=10
    )
    assert [(row["id"], row["cause"]) for row in found.json()] == [(tid, "权限配置错误")]
    rates = requests.get(f"{url}/rates", headers=VIEWER, timeout=10).json()
    assert (rates["closed"], rates["closed_locally"]) == (1, 0)  # forwarded to the bureau: not local


def test_roster_handover_and_inspection_over_http(served: tuple[ServedNotifier, FakePrometheus]) -> None:
    server, prom = served
    url = f"{server.url}/api/v1"
    now = datetime.now(UTC)
    shift = {
        "line": "first_line",
        "person": "张三",
        "mobile": "13811110001",
        "start": (now - timedelta(hours=1)).isoformat(),
        "end": (now + timedelta(hours=3)).isoformat(),
    }
    added = requests.post(f"{url}/roster", json={"shifts": [shift]}, headers=OPERATOR, timeout=10)
    assert added.status_code == 201, added.text
    on_duty = requests.get(f"{url}/roster/on-duty", headers=VIEWER, timeout=10).json()
    assert [s["person"] for s in on_duty["first_line"]] == ["张三"] and on_duty["second_line"] == []
    backwards = {**shift, "end": shift["start"], "start": shift["end"]}
    refused = requests.post(f"{url}/roster", json={"shifts": [backwards]}, headers=OPERATOR, timeout=10)
    assert (refused.status_code, refused.json()["detail"]) == (422, "班次的结束时间需要晚于开始时间")
    assert requests.delete(f"{url}/roster/{added.json()[0]}", headers=VIEWER, timeout=10).status_code == 403

    handover = requests.post(
        f"{url}/handovers",
        json={"from_person": "张三", "to_person": "李四", "notes": "无"},
        headers=OPERATOR,
        timeout=10,
    )
    assert handover.status_code == 201 and handover.json()["open_tickets"] == []

    prefill = requests.get(f"{url}/inspections/prefill", headers=VIEWER, timeout=10).json()
    assert prefill["source"] == "prometheus" and prefill["seen"]["13"] == "down"
    assert prom.queries == ["min by (item) (einvoice:item_up)"]
    entries = [
        {
            "item": item.id,
            "seen": prefill["seen"][item.id],
            "normal": item.id != "13",
            "finding": "消费组落后" if item.id == "13" else "",
        }
        for item in ITEMS
    ]
    signed = requests.post(
        f"{url}/inspections", json={"entries": entries, "source": "prometheus"}, headers=OPERATOR, timeout=10
    )
    assert signed.status_code == 201, signed.text
    day = signed.json()["day"]
    summary = requests.get(
        f"{url}/inspections/summary", params={"start": day, "end": day}, headers=VIEWER, timeout=10
    ).json()
    assert (summary["done"], summary["missing"]) == (1, 0)
    assert summary["days"][0]["state"] in ("on_time", "late")
    assert (
        requests.get(f"{url}/inspections/{day}", headers=VIEWER, timeout=10).json()["entries"][12]["finding"]
        == "消费组落后"
    )
    metrics = requests.get(f"{server.url}/metrics", timeout=10).text
    assert 'einvoice_notifier_roster_uncovered_shifts{line="first_line"} 0.0' in metrics
