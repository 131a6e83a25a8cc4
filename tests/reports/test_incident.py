"""突发事件分析报告 of a ticket worked through the notifier's own TicketService (timeline included)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from einvoice_notifier.db import make_engine, migrate
from einvoice_notifier.payload import Notification
from einvoice_notifier.service import TicketService
from einvoice_notifier.settings import Settings
from einvoice_reports import cli

TAX_ID = "91450100MA5L8XKQ3C"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _notification(starts: datetime) -> Notification:
    labels = {"alertname": "EinvoiceCheckFailing", "item": "05", "zone": "extranet", "check": "health",
              "target": "intake-1", "severity": "critical", "severity_class": "urgent"}
    annotations = {"summary": "第05项受理服务健康检查失败", "description": f"税号 {TAX_ID} 的开票请求超时"}
    alert = {"status": "firing", "labels": labels, "annotations": annotations, "startsAt": starts.isoformat(),
             "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "abc123", "generatorURL": ""}
    body = {"version": "4", "groupKey": "{}:{alertname=\"EinvoiceCheckFailing\"}", "status": "firing",
            "receiver": "first_line", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
            "externalURL": "http://am", "truncatedAlerts": 0, "alerts": [alert]}
    return Notification.model_validate(json.loads(json.dumps(body)))


@pytest.fixture
def worked_ticket(tmp_path: Path) -> tuple[str, int]:
    url = f"sqlite:///{tmp_path / 'tickets.db'}"
    engine = make_engine(url)
    migrate(engine)
    starts = datetime(2026, 11, 3, 2, 0, tzinfo=UTC)
    clock = Clock(starts + timedelta(minutes=1))
    service = TicketService(engine, Settings(), clock=clock)
    service.ingest(_notification(starts))
    ticket = service.list_tickets()[0]
    clock.now = starts + timedelta(minutes=20)
    service.acknowledge(ticket.id, "张工")
    clock.now = starts + timedelta(minutes=50)
    service.resolve(ticket.id, "张工", note="联系电话 13812345678，已重启")
    clock.now = starts + timedelta(hours=1)
    service.close(ticket.id, "张工", cause=f"连接池耗尽（税号 {TAX_ID} 批量开票）",
                  solution="扩大连接池并重启受理服务", resolved_locally=True)
    engine.dispose()
    return url, ticket.id


def test_incident_draft_from_ticket(tmp_path: Path, worked_ticket: tuple[str, int]) -> None:
    url, ticket_id = worked_ticket
    now = datetime(2026, 11, 4, tzinfo=UTC)
    args = ["incident", "--ticket", str(ticket_id), "--store", url, "--out", str(tmp_path)]
    assert cli.main(args, now=now) == 0
    html = (tmp_path / "incident" / f"ticket-{ticket_id}.html").read_text(encoding="utf-8")
    assert "突发事件分析报告" in html and f"工单 #{ticket_id}" in html and "草稿" in html
    phenomenon = _section(html, "phenomenon", "div")
    assert "2026-11-03 10:00 起，第05项（外网受理服务运行健康检查）出现异常" in phenomenon
    analysis = _section(html, "analysis", "div")
    assert "2026-11-03 10:20 响应，距问题开始 20 分" in analysis
    assert "解决，历时 50 分" in analysis and "原因：连接池耗尽" in analysis
    assert "处理措施：扩大连接池并重启受理服务" in html
    assert "张工" in html and "解决" in html
    assert TAX_ID not in html and "13812345678" not in html
    assert (tmp_path / "incident" / f"ticket-{ticket_id}.pdf").read_bytes().startswith(b"%PDF")


def test_operator_edits_and_final(tmp_path: Path, worked_ticket: tuple[str, int]) -> None:
    url, ticket_id = worked_ticket
    edits = tmp_path / "edits.yaml"
    edits.write_text(f"advice: |\n  下次变更前评估连接池容量。\n  涉及税号 {TAX_ID} 的记录已另行处理。\n",
                     encoding="utf-8")
    code = cli.main(["incident", "--ticket", str(ticket_id), "--store", url, "--out", str(tmp_path),
                     "--edits", str(edits), "--final", "--no-pdf"], now=datetime(2026, 11, 4, tzinfo=UTC))
    assert code == 0
    html = (tmp_path / "incident" / f"ticket-{ticket_id}.html").read_text(encoding="utf-8")
    advice = _section(html, "advice", "ol")
    assert "下次变更前评估连接池容量。" in advice and TAX_ID not in advice
    assert "定稿" in html and "草稿" not in html
    edits.write_text("advise: typo\n", encoding="utf-8")
    assert cli.main(["incident", "--ticket", str(ticket_id), "--store", url, "--out", str(tmp_path),
                     "--edits", str(edits), "--no-pdf"]) == 2


def test_missing_ticket_fails(tmp_path: Path, worked_ticket: tuple[str, int],
                              capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = worked_ticket
    assert cli.main(["incident", "--ticket", "999", "--store", url, "--out", str(tmp_path)]) == 2
    assert "工单 #999 不存在" in capsys.readouterr().err


def _section(html: str, section: str, tag: str) -> str:
    found = re.search(rf'id="{section}">(.*?)</{tag}>', html, re.S)
    assert found, section
    return found.group(1)


def test_handbook_groups_closed_tickets(tmp_path: Path) -> None:
    """Closed tickets of the scripted store, grouped by item and cause, redacted; the quarter's are new."""
    from .scripted import fill_store

    url = f"sqlite:///{tmp_path / 'tickets.db'}"
    fill_store(url).dispose()
    now = datetime(2027, 1, 1, 2, tzinfo=UTC)
    assert cli.main(["handbook", "--period", "2026-Q4", "--store", url, "--out", str(tmp_path)], now=now) == 0
    html = (tmp_path / "handbook" / "2026-Q4.html").read_text(encoding="utf-8")
    assert "常见问题处理手册" in html and "2026 年第 4 季度" in html
    assert TAX_ID not in html
    # closed: 7 (item 03), 1 (05), 2 (11), 3, 4, 6 (06): item 06's three share one cause
    assert re.findall(r'<h2 id="item-(\d\d)">', html) == ["03", "05", "06", "11"]
    counts = re.findall(r'data-k="count">(\d+)（工单 ([^）]*)）', html)
    assert ("3", "#3、#4、#6") in counts and counts.count(("1", "#7")) == 1
    assert html.count("（本期新增）") == 4
    assert (tmp_path / "handbook" / "2026-Q4.pdf").read_bytes().startswith(b"%PDF")
    assert cli.main(["handbook", "--period", "2026-11", "--store", url, "--out", str(tmp_path)], now=now) == 2


def test_missing_sqlite_store_is_not_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere.db"
    code = cli.main(["handbook", "--period", "2026-Q4", "--store", f"sqlite:///{missing}",
                     "--out", str(tmp_path)])
    assert code == 2
    assert f"数据源不可用：工单库（SQLite 文件不存在：{missing}）" in capsys.readouterr().err
    assert not missing.exists()
