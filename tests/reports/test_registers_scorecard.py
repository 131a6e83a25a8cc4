"""The scorecard per system (issue 19) on the scripted month plus the registers: two systems, faults
owned by different parties, changes followed by a linked ticket, vulnerabilities reported before and
after the bureau's scan, substantiated complaints, a drill. Every expected score is computed by hand
below; the records are written through the notifier's own Registers (the code the API calls).

The scripted month (scripted.py) gives the SLA series: intake down on Tue 3 Nov (10:00-12:30) and
Tue 10 Nov (02:00, 10 min); pipeline always up. November 2026 has 21 working days (Mon-Fri).

Systems: 公共服务平台 (public_service: intake, processing, pipeline; tickets 1-7 of scripted.py by their
items) and 发票管理系统 2.0 (invoice_mgmt: pipeline only). Added tickets (Beijing time):
 11 outage invoice_mgmt Thu 12 Nov 14:00-15:00   owner this_system   -> vendor
 12 outage invoice_mgmt Thu 19 Nov 10:00-10:40   owner third_party   -> not the vendor's
 13 general invoice_mgmt Tue 24 Nov 10:00-11:00  major incident, owner undetermined -> vendor (★4(3))
 14 outage invoice_mgmt Thu 26 Nov 09:00-09:30   drill               -> not a fault
 15 outage invoice_mgmt Sat 21 Nov 09:00-10:00   owner this_system   -> not a working day
 ticket 1 (outage public_service Tue 3 Nov) is owned by the network.

Line 11 (0.5 per percentage point of fault days / 21):
- public_service: SLA days {3, 10} - owned by others {3} = {10}; 1 day = 4.7619 % -> 6 - 2.38 = 3.62
- invoice_mgmt: vendor's faults on working days {12, 24}; 2 days = 9.5238 % -> 6 - 4.76 = 1.24
- platform: {10} ∪ {12, 24} (21 Nov is a Saturday) = 3 days = 14.2857 % -> 6 - 7.14 < 0 -> 0.0
Changes (window in November unless said):
 A patch invoice_mgmt 10 Nov, not fixed            -> line 6 invoice_mgmt, platform
 B version invoice_mgmt 11 Nov, fixed, caused ticket 11 (linked) -> line 7 invoice_mgmt, platform
 C patch public_service 20 Nov, new problem        -> line 7 public_service, platform
 D parameter public_service 21 Nov, not fixed      -> not a version or patch: no line
 E patch invoice_mgmt 28 Oct, not fixed            -> October: no line
 line 6: public_service 6.0, invoice_mgmt 5.5, platform 5.5; line 7: 5.5, 5.5, 5.0.
Vulnerabilities (line 12, 0.4 each):
 V1 public_service vendor 5 Nov, reported 6 Nov, scan 12 Nov   -> exempt (hardened 10 Nov)
 V2 public_service vendor 8 Nov, reported 14 Nov, scan 13 Nov  -> counts (scan came first)
 V3 invoice_mgmt bureau scan 16 Nov                            -> counts
 V4 invoice_mgmt vendor 18 Nov, never reported                 -> counts
 V5 invoice_mgmt bureau scan 20 Oct                            -> October: no
 line 12: public_service 3.6, invoice_mgmt 3.2, platform 2.8.
Complaints (line 19, 0.2 each substantiated): public_service 9 Nov yes, 16 Nov no; invoice_mgmt
20 Nov yes (ticket 12), 20 Nov yes, 25 Nov pending -> 1.8, 1.6, platform 1.4.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from einvoice_notifier.db import make_engine, tickets
from einvoice_notifier.registers import Registers
from einvoice_notifier.systems import system_of
from einvoice_reports import cli
from openpyxl import load_workbook
from sqlalchemy import insert, select, update

from .scripted import NOW, TAX_ID, _ticket, fill_store, local

pytestmark = pytest.mark.slow
ACTOR = "ops-lead"


def _fill_registers(url: str) -> None:
    engine = fill_store(url)
    m10, h4 = timedelta(minutes=10), timedelta(hours=4)
    with engine.begin() as conn:
        for ticket_id, item in conn.execute(select(tickets.c.id, tickets.c.item)).all():
            conn.execute(update(tickets).where(tickets.c.id == ticket_id), {"system": system_of({}, item)})
        added = [
            (
                _ticket(
                    11,
                    "outage",
                    "19",
                    local(11, 12, 14),
                    local(11, 12, 14, 5),
                    local(11, 12, 15),
                    local(11, 12, 16),
                    m10,
                    local(11, 12, 14, 30),
                ),
                {},
            ),
            (
                _ticket(
                    12,
                    "outage",
                    "19",
                    local(11, 19, 10),
                    local(11, 19, 10, 5),
                    local(11, 19, 10, 40),
                    local(11, 19, 11),
                    m10,
                    local(11, 19, 10, 30),
                ),
                {},
            ),
            (
                _ticket(
                    13,
                    "general",
                    "14",
                    local(11, 24, 10),
                    local(11, 24, 10, 5),
                    local(11, 24, 11),
                    local(11, 24, 12),
                    h4,
                    local(11, 24, 14),
                ),
                {"major_incident_at": local(11, 24, 10, 20)},
            ),
            (
                _ticket(
                    14,
                    "outage",
                    "19",
                    local(11, 26, 9),
                    local(11, 26, 9, 5),
                    local(11, 26, 9, 30),
                    local(11, 26, 10),
                    m10,
                    local(11, 26, 9, 30),
                ),
                {"drill": True},
            ),
            (
                _ticket(
                    15,
                    "outage",
                    "19",
                    local(11, 21, 9),
                    local(11, 21, 9, 5),
                    local(11, 21, 10),
                    local(11, 21, 11),
                    m10,
                    local(11, 21, 9, 30),
                ),
                {},
            ),
        ]
        for row, extra in added:
            values = {**row, "system": "invoice_mgmt", "drill": False, **extra}
            conn.execute(insert(tickets).values(**_naive(values)))
    engine.dispose()
    registers = Registers(make_engine(url), clock=lambda: NOW)
    evidence = "第08、19、20项探测与 DNS 检查同时失败"
    registers.record_fault(
        1, ACTOR, "network", None, f"{evidence}；电信确认光缆中断（纳税人识别号 {TAX_ID}）"
    )
    registers.record_fault(11, ACTOR, "this_system", None, "同步服务内存溢出")
    registers.record_fault(12, ACTOR, "third_party", None, "第三方接口返回 503")
    registers.record_fault(13, ACTOR, "undetermined", None, "根因未能判定")
    registers.record_fault(15, ACTOR, "this_system", None, "周末批处理失败")

    def change(kind: str, system: str, start: datetime, outcome: str, note: str = "") -> int:
        made = registers.add_change(
            ACTOR,
            kind=kind,
            system=system,
            title=f"{kind} {system}",
            window_start=start,
            window_end=start + timedelta(hours=1),
            performed_by="王工",
            version_before="1.0",
            version_after="1.1",
        )
        if outcome != "pending":
            registers.update_change(
                made.id,
                ACTOR,
                outcome=outcome,
                outcome_note=note or outcome,
                post_check="检查通过",
                post_check_ok=True,
            )
        return made.id

    change("patch", "invoice_mgmt", local(11, 10, 22), "not_fixed", "补丁未解决同步积压")
    caused = change("version", "invoice_mgmt", local(11, 11, 22), "fixed")
    registers.link_ticket(caused, 11, ACTOR)
    change("patch", "public_service", local(11, 20, 22), "new_problem", "补丁后受理超时")
    change("parameter", "public_service", local(11, 21, 22), "not_fixed", "参数无效")
    change("patch", "invoice_mgmt", local(10, 28, 22), "not_fixed", "十月补丁")

    def vulnerability(
        title: str, system: str, severity: str, found_by: str, found_on: date, **more: Any
    ) -> int:
        return registers.add_vulnerability(
            ACTOR, title=title, system=system, severity=severity, found_by=found_by, found_on=found_on, **more
        ).id

    v1 = vulnerability(
        "WebLogic T3 反序列化",
        "public_service",
        "high",
        "vendor",
        date(2026, 11, 5),
        reported_on=date(2026, 11, 6),
        bureau_scan_on=date(2026, 11, 12),
        deadline=local(11, 20, 18),
    )
    registers.update_vulnerability(v1, ACTOR, hardened_at=local(11, 10, 23), hardening_record="关闭 T3 协议")
    vulnerability(
        "nginx 版本泄露",
        "public_service",
        "low",
        "vendor",
        date(2026, 11, 8),
        reported_on=date(2026, 11, 14),
        bureau_scan_on=date(2026, 11, 13),
    )
    vulnerability("Redis 未授权访问", "invoice_mgmt", "high", "bureau_scan", date(2026, 11, 16))
    vulnerability("弱口令", "invoice_mgmt", "medium", "vendor", date(2026, 11, 18))
    vulnerability("旧漏洞", "invoice_mgmt", "low", "bureau_scan", date(2026, 10, 20))

    def complaint(day: date, system: str, verdict: str | None, ticket: int | None = None) -> None:
        made = registers.add_complaint(ACTOR, received_on=day, system=system, summary=f"投诉 {day}")
        if verdict:
            registers.verify_complaint(made.id, ACTOR, verdict, "核实", ticket)

    complaint(date(2026, 11, 9), "public_service", "substantiated")
    complaint(date(2026, 11, 16), "public_service", "unsubstantiated")
    complaint(date(2026, 11, 20), "invoice_mgmt", "substantiated", 12)
    complaint(date(2026, 11, 20), "invoice_mgmt", "substantiated")
    complaint(date(2026, 11, 25), "invoice_mgmt", None)
    registers.engine.dispose()


def _naive(values: dict[str, object]) -> dict[str, object]:
    from einvoice_notifier.db import to_db

    return {k: to_db(v) if isinstance(v, datetime) else v for k, v in values.items()}


@pytest.fixture
def register_store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'tickets.db'}"
    _fill_registers(url)
    return url


def _score(html: str, line: int) -> str:
    row = re.search(rf'<tr id="line-{line}"[^>]*>(.*?)</tr>', html, re.S)
    assert row
    cell = re.search(r'data-k="score">(.*?)</td>', row.group(1), re.S)
    assert cell
    return cell.group(1).strip()


EXPECTED = {
    None: {4: "4.5", 5: "5.0", 6: "5.5", 7: "5.0", 9: "1.5", 11: "0.0", 12: "2.8", 19: "1.4"},
    "public_service": {4: "4.5", 5: "5.0", 6: "6.0", 7: "5.5", 9: "1.5", 11: "3.62", 12: "3.6", 19: "1.8"},
    "invoice_mgmt": {4: "6.0", 5: "6.0", 6: "5.5", 7: "5.5", 9: "6.0", 11: "1.24", 12: "3.2", 19: "1.6"},
}
"""Line 4: ticket 4 (urgent, item 06, public_service) answered late. Line 5: the scripted month declares
items 01, 06 and 20; 06 (stopped 20 Nov) and 20 (no check) missed days, both public_service items;
invoice_mgmt's items (14, 16-19) are not declared, so nothing is due. Line 9: intake late and over
2 h, processing's stall late: three levels; invoice_mgmt's pipeline never failed."""


def test_per_system_scorecard_lines(tmp_path: Path, scripted_prometheus: str, register_store: str) -> None:
    common = [
        "--period",
        "2026-11",
        "--prometheus",
        scripted_prometheus,
        "--store",
        register_store,
        "--out",
        str(tmp_path),
        "--no-pdf",
    ]
    pages = {}
    for system in EXPECTED:
        args = ["scorecard", *common, *(["--system", system] if system else [])]
        assert cli.main(args, now=NOW) == 0
        label = "2026-11" + (f"-{system}" if system else "")
        pages[system] = (tmp_path / "scorecard" / f"{label}.html").read_text(encoding="utf-8")
    for system, lines in EXPECTED.items():
        assert {line: _score(pages[system], line) for line in lines} == lines, system

    platform, public, invoice = pages[None], pages["public_service"], pages["invoice_mgmt"]
    assert "广西税务 增值税发票管理系统2.0 2026 年 11 月运维厂商考核评级表" in invoice
    assert "工作日 21 天（周一至周五），故障日 1 天，故障率 4.76%" in public
    assert "工单 #1（11-03）故障主体：网络，不计入" in public
    assert "经定责不属运维厂商的故障日（不计入）：11-03" in public
    assert "工单 #13（11-24）故障主体：无法判定（由中标人承担），计入" in invoice
    assert "工单 #12（11-19）故障主体：第三方，不计入" in invoice
    assert "#14" not in re.search(r'<tr id="line-11".*?</tr>', invoice, re.S).group(0)  # the drill
    assert "工作日 21 天（周一至周五），故障日 3 天，故障率 14.29%" in platform
    assert "引起工单 #11" in invoice
    assert "本月检出漏洞 2 项，扣分 1 项，在局方扫描发现前已主动报告（免扣）1 项" in public
    assert "本月检出漏洞 4 项，扣分 3 项，在局方扫描发现前已主动报告（免扣）1 项" in platform
    assert "本月收到投诉 4 次，经核实属实 2 次" not in invoice  # per system: invoice_mgmt has 3
    assert "本月收到投诉 3 次，经核实属实 2 次" in invoice
    assert TAX_ID not in platform + public + invoice

    book = load_workbook(tmp_path / "scorecard" / "2026-11-invoice_mgmt.xlsx")
    assert book["评分表"]["A1"].value == "广西税务 增值税发票管理系统2.0 2026 年 11 月运维厂商考核评级表"

    outside = ["scorecard", *common, "--system", "e_signature"]
    assert cli.main(outside, now=NOW) == 0
    signature = (tmp_path / "scorecard" / "2026-11-e_signature.html").read_text(encoding="utf-8")
    assert _score(signature, 11) == "6.0" and "不在运维厂商运维范围内" in signature
    assert cli.main(["scorecard", *common, "--system", "mars"], now=NOW) == 2


def test_weekly_report_and_line_10(tmp_path: Path, scripted_prometheus: str, register_store: str) -> None:
    common = ["--prometheus", scripted_prometheus, "--store", register_store, "--out", str(tmp_path)]
    assert cli.main(["weekly", "--period", "2026-W46", *common], now=NOW) == 0
    html = (tmp_path / "weekly" / "2026-W46.html").read_text(encoding="utf-8")
    assert (tmp_path / "weekly" / "2026-W46.pdf").read_bytes().startswith(b"%PDF")
    # 9-15 Nov: tickets 3 (12 Nov, general) and 11 (12 Nov, outage); intake down 2 samples of 2016
    assert re.search(r'id="tickets-total">2<', html)
    assert re.search(r'<tr id="svc-intake">.*?data-k="availability">99.901%<', html, re.S)
    assert re.search(r'<tr id="svc-pipeline">.*?data-k="availability">100.000%<', html, re.S)
    owners = re.search(r'<table id="fault-owners">(.*?)</table>', html, re.S).group(1)
    assert re.findall(r'<td>(.*?)</td><td class="num">(\d+)</td>', owners) == [("本系统", "1")]  # ticket 11
    changes = re.search(r'<table id="changes">(.*?)</table>', html, re.S).group(1)
    assert changes.count("<tr><td") == 2 and "未解决问题" in changes and "引起工单 #11" in changes
    assert re.search(r'id="vulns-open">2<', html)  # V2 (8 Nov) and V5 (20 Oct); V1 hardened
    complaints = re.search(r'<table id="complaints">(.*?)</table>', html, re.S).group(1)
    assert "2026-11-09" in complaints and "2026-11-16" not in complaints

    # 23-29 Nov: tickets 5 (25 Nov), 6 (27 Nov), 13 (24 Nov, the major incident) count; the drill
    # ticket 14 (26 Nov) is counted apart; fault owners: 13 undetermined, 15 (21 Nov, Saturday) is W47
    assert cli.main(["weekly", "--period", "2026-W48", *common, "--no-pdf"], now=NOW) == 0
    html = (tmp_path / "weekly" / "2026-W48.html").read_text(encoding="utf-8")
    assert re.search(r'id="tickets-total">3<', html) and re.search(r'id="drill-tickets">1<', html)
    owners = re.search(r'<table id="fault-owners">(.*?)</table>', html, re.S).group(1)
    found = re.findall(r'<td>(.*?)</td><td class="num">(\d+)</td>', owners)
    assert found == [("无法判定（由中标人承担）", "1")]

    card = ["scorecard", "--period", "2026-11", *common, "--no-pdf"]
    assert cli.main(card, now=NOW) == 0
    page = (tmp_path / "scorecard" / "2026-11.html").read_text(encoding="utf-8")
    # due: 30 daily, 5 weekly (W44-W48 end in November), 1 monthly; W46 and W48 are in the archive
    assert "应提交 36 份，归档中已有 2 份" in page
    assert "缺少《运维周报》2026-W44" in page and "缺少《运维周报》2026-W46" not in page
