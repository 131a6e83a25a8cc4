"""Problems people report, escalation, major incidents, the duty roster, handovers, the daily
inspection and the knowledge base (issue 18), on the real store. Every clock below was worked out by
hand: on-site hours 07:30–12:00 and 14:30–22:00 Asia/Shanghai, 24 h inside an important period."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from einvoice_notifier import db, duty
from einvoice_notifier.app import Notifier
from einvoice_notifier.duty import InspectionEntry, ShiftIn, parse_roster_yaml, prefill_from_prometheus
from einvoice_notifier.service import InvalidInputError, InvalidTransitionError
from einvoice_notifier.settings import parse_settings
from sqlalchemy import inspect, select, text

from einvoice_core.catalogue import ITEMS
from einvoice_core.contract import ReportChannel, TicketClass
from tests.notifier.support import FakeClock, RecordingChannel, shanghai
from tests.support.procs import free_port

CALENDAR = """\
timezone: Asia/Shanghai
important_periods:
  - {name: 测试时期甲, start: "2026-11-27T10:00:00+08:00", end: "2026-11-27T13:00:00+08:00"}
  - {name: 测试时期乙, start: "2026-11-27T23:00:00+08:00", end: "2026-11-28T03:00:00+08:00"}
"""
DUTY_FALLBACK = "13800000001"
SECOND_FALLBACK = "13900000002"
BUREAU_MOBILE = "13700000003"


def S(day: int, hour: int, minute: int = 0) -> datetime:  # noqa: N802 - reads like a time
    return shanghai(2026, 11, day, hour, minute)


class Desk:
    """A notifier with three recording channels: the on-site robot, the second line, the bureau."""

    def __init__(self, url: str, tmp: Path, **extra: Any) -> None:
        calendar = tmp / "calendar.yml"
        calendar.write_text(CALENDAR, encoding="utf-8")
        self.clock = FakeClock(S(25, 8))
        self.channels = {name: RecordingChannel(name) for name in ("robot", "oncall", "bureau")}
        settings = parse_settings(
            {
                "calendar_file": str(calendar),
                "channels": [{"type": "console", "name": name, "stdout": False} for name in self.channels],
                "routing": {
                    "first_line": ["robot"],
                    "second_line": ["oncall"],
                    "bureau_admins": ["bureau"],
                    "duty_mobiles": [DUTY_FALLBACK],
                    "second_line_mobiles": [SECOND_FALLBACK],
                    "bureau_admin_mobiles": [BUREAU_MOBILE],
                },
                **extra,
            }
        )
        self.notifier = Notifier(settings, db.make_engine(url), self.clock, self.channels, webhook_token="t")
        db.migrate(self.notifier.engine)
        self.service = self.notifier.service

    def outbox(self, channel: str | None = None) -> list[dict[str, Any]]:
        with self.notifier.engine.connect() as conn:
            rows = [dict(row) for row in conn.execute(select(db.outbox).order_by(db.outbox.c.id)).mappings()]
        return [row for row in rows if channel is None or row["channel"] == channel]

    def report(
        self,
        channel: str = "phone",
        cls: str = "urgent",
        at: datetime | None = None,
        reporter: str = "南宁市局 张科长",
        summary: str = "开票软件无法登录",
    ) -> Any:
        return self.service.report("oper", channel, reporter, summary, cls, reported_at=at)


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    found = Desk(f"sqlite:///{tmp_path / 'notifier.db'}", tmp_path)
    yield found
    found.notifier.engine.dispose()


@pytest.fixture
def store_desk(store_url: str, tmp_path: Path) -> Iterator[Desk]:
    found = Desk(store_url, tmp_path)
    yield found
    found.notifier.engine.dispose()


# (channel, class, reported, first response #5, substantive response #8, resolution #9)
CLOCKS = [
    # phone 10 min; urgent: 2 h wall; resolve 10 min to 12:00, lunch, 110 min from 14:30 = 16:20.
    (ReportChannel.PHONE, TicketClass.URGENT, S(25, 11, 50), S(25, 12), S(25, 13, 50), S(25, 16, 20)),
    # website 1 h; general: 4 h wall = 15:50; resolve 10 min, then 230 min from 14:30 = 18:20.
    (ReportChannel.WEBSITE, TicketClass.GENERAL, S(25, 11, 50), S(25, 12, 50), S(25, 15, 50), S(25, 18, 20)),
    # on-site 30 min; routine: 2 h wall = 23:00; resolve 60 min to 22:00, 180 min from 07:30 = 10:30.
    (ReportChannel.ON_SITE, TicketClass.ROUTINE, S(25, 21), S(25, 21, 30), S(25, 23), S(26, 10, 30)),
    # remote 2 h equals urgent's 2 h: both 05:00; resolve 2 h from 07:30 = 09:30.
    (ReportChannel.REMOTE, TicketClass.URGENT, S(25, 3), S(25, 5), S(25, 5), S(25, 9, 30)),
    # remote 2 h in the lunch break; general 4 h = 16:30; resolve 4 working hours from 14:30 = 18:30.
    (ReportChannel.REMOTE, TicketClass.GENERAL, S(25, 12, 30), S(25, 14, 30), S(25, 16, 30), S(25, 18, 30)),
    # phone 10 min = the outage's own 10 min; restored within 30 min around the clock: 22:20.
    (ReportChannel.PHONE, TicketClass.OUTAGE, S(25, 21, 50), S(25, 22), S(25, 22), S(25, 22, 20)),
    # WeChat group 1 h, capped by the stall's 10-minute response: 12:20; restore 12:40.
    (ReportChannel.WECHAT_QQ, TicketClass.STALL, S(25, 12, 10), S(25, 12, 20), S(25, 12, 20), S(25, 12, 40)),
    # 12366 like a phone call, 10 min; important period 10:00-13:00: general resolve 30 min to 13:00,
    # lunch until 14:30, 210 min = 18:00; substantive 4 h wall = 16:30.
    (
        ReportChannel.HOTLINE_12366,
        TicketClass.GENERAL,
        S(27, 12, 30),
        S(27, 12, 40),
        S(27, 16, 30),
        S(27, 18),
    ),
]


@pytest.mark.parametrize(
    ("channel", "cls", "reported", "first", "substantive", "resolution"),
    CLOCKS,
    ids=[f"{c[0].value}-{c[1].value}-{c[2]:%d%H%M}Z" for c in CLOCKS],
)
def test_hand_computed_report_clocks(
    desk: Desk,
    channel: ReportChannel,
    cls: TicketClass,
    reported: datetime,
    first: datetime,
    substantive: datetime,
    resolution: datetime,
) -> None:
    desk.clock.now = reported + timedelta(minutes=3)  # typed in three minutes after the call
    ticket = desk.report(channel.value, cls.value, reported)
    assert (ticket.source, ticket.report_channel, ticket.severity_class) == (
        "report",
        channel.value,
        cls.value,
    )
    assert ticket.starts_at == reported
    assert (ticket.response_deadline, ticket.substantive_deadline, ticket.resolution_deadline) == (
        first,
        substantive,
        resolution,
    )


def test_first_and_substantive_response_are_met_separately(desk: Desk) -> None:
    """Phone, general, 09:00: acknowledge by 09:10 (#5), start work by 13:00 (#8)."""
    desk.clock.now = S(25, 9)
    ticket = desk.report("phone", "general", S(25, 9))
    desk.clock.now = S(25, 9, 5)
    desk.service.acknowledge(ticket.id, "oper")
    desk.clock.now = S(25, 13, 1)
    assert desk.service.check_deadlines() == [ticket.id]
    late = desk.service.get_ticket(ticket.id)
    assert late is not None
    assert (late.response_breached, late.substantive_breached, late.escalated) == (False, True, True)
    assert desk.service.timeline(ticket.id)[-1].note == "超过实质响应时限"
    assert desk.service.check_deadlines() == []
    # Another, started in time: neither breached.
    desk.clock.now = S(25, 14)
    other = desk.report("website", "general", S(25, 14))
    desk.clock.now = S(25, 14, 50)
    desk.service.start_progress(other.id, "oper")
    desk.clock.now = S(25, 15, 20)  # the first ticket's resolution (3 h + 1 h after lunch) is 15:30
    assert desk.service.check_deadlines() == []
    done = desk.service.get_ticket(other.id)
    assert done is not None and not done.response_breached and not done.substantive_breached


def test_report_messages_redact_the_reporter_and_mention_the_fallback(desk: Desk) -> None:
    desk.clock.now = S(25, 9)
    ticket = desk.report(reporter="王女士 13812345678 广西某某贸易有限公司")
    robot = desk.outbox("robot")
    assert [row["event"] for row in robot] == ["reported", "reported"]
    card = robot[0]["content"]
    assert "【报告问题】" in card and "电话" in card and f"#{ticket.id}" in card
    assert "13812345678" not in card and "贸易有限公司" not in card and "王女士" in card
    assert json.loads(robot[1]["mentioned_mobiles"]) == [DUTY_FALLBACK]
    assert desk.service.timeline(ticket.id)[0].action == "report"


def test_bad_reports_are_refused_with_every_reason(desk: Desk) -> None:
    desk.clock.now = S(25, 9)
    with pytest.raises(InvalidInputError) as caught:
        desk.service.report("oper", "fax", "", "", "severe", item="99", reported_at=S(26, 9))
    assert str(caught.value).split("；") == [
        "请选择报告渠道", "请选择问题级别", "请填写问题摘要", "请填写报告人", "检查项 99 不存在",
        "报告时间不能晚于当前时间"]
    with pytest.raises(InvalidInputError, match="24 小时"):
        desk.report(at=S(24, 8))


def test_escalations_and_duplicates_in_the_rates(store_desk: Desk) -> None:
    """Five problems closed in the month: one escalated to second line, one forwarded to the bureau,
    one declared a major incident, two solved here. A sixth is the same problem as the first (a
    person reported what an alert already said): counted once. 本级解决率 = 2/5."""
    desk = store_desk
    desk.clock.now = S(25, 9)
    tickets = [desk.report(summary=f"问题{i}") for i in range(6)]
    second = desk.service.escalate(tickets[0].id, "oper", "second_line", "数据库锁等待，需二线分析")
    assert (second.escalated, second.escalated_to, second.second_line) == (True, "second_line", True)
    bureau = desk.service.escalate(tickets[1].id, "oper", "bureau", "需税务局确认接口权限")
    assert (bureau.escalated, bureau.escalated_to) == (True, "bureau")
    major = desk.service.declare_major_incident(tickets[2].id, "oper", "全区开票中断")
    assert major.major_incident_at == S(25, 9) and major.escalated
    linked = desk.service.link_same_problem(tickets[5].id, tickets[0].id, "oper")
    assert linked.duplicate_of == tickets[0].id
    with pytest.raises(InvalidInputError, match="已转二线"):
        desk.service.escalate(tickets[0].id, "oper", "second_line", "again")
    with pytest.raises(InvalidInputError, match="已宣布为重大事件"):
        desk.service.declare_major_incident(tickets[2].id, "oper", "again")

    # The right people got the right message, each once, @-ing the right mobiles.
    oncall = [row for row in desk.outbox("oncall")]
    assert [row["event"] for row in oncall] == ["escalate_second_line"] * 2 + ["major_incident"] * 2
    assert "【转二线】" in oncall[0]["content"] and "数据库锁等待" in oncall[0]["content"]
    assert "专家会诊" in oncall[2]["content"]
    assert json.loads(oncall[1]["mentioned_mobiles"]) == [SECOND_FALLBACK]
    bureau_rows = desk.outbox("bureau")
    assert [row["event"] for row in bureau_rows] == ["forward_bureau"] * 2
    assert "提交税务局系统管理员核实处理" in bureau_rows[0]["content"]
    assert json.loads(bureau_rows[1]["mentioned_mobiles"]) == [BUREAU_MOBILE]

    desk.clock.now = S(25, 10)
    for ticket in tickets:
        desk.service.resolve(ticket.id, "oper")
        desk.service.close(ticket.id, "oper", "原因", "方案", resolved_locally=True)
    rates = desk.service.rates(S(1, 0), shanghai(2026, 12, 1, 0))
    assert (rates.closed, rates.closed_locally, rates.local_ratio) == (5, 2, 0.4)
    assert (rates.resolved, rates.recurred) == (5, 0)
    assert desk.service.timeline(tickets[1].id)[-1].note == "工单已提交税务局系统管理员，不计入本级解决"
    assert desk.service.timeline(tickets[0].id)[-1].note == "工单已升级二线，不计入本级解决"
    assert [t.id for t in desk.service.major_incidents(S(1, 0), shanghai(2026, 12, 1, 0))] == [tickets[2].id]


def test_agreed_fix_date_replaces_the_resolution_deadline(desk: Desk) -> None:
    desk.clock.now = S(25, 9)
    ticket = desk.report(cls="general")
    assert ticket.resolution_deadline == S(25, 15, 30)  # 09:00-12:00, then 14:30-15:30
    agreed = desk.service.set_agreed_fix(ticket.id, "oper", shanghai(2026, 12, 10, 18), "桂税函〔2026〕88号")
    assert (agreed.resolution_deadline, agreed.agreed_fix_ref) == (
        shanghai(2026, 12, 10, 18),
        "桂税函〔2026〕88号",
    )
    entry = desk.service.timeline(ticket.id)[-1]
    assert (entry.action, entry.note) == ("agreed_fix", "税务局批准：桂税函〔2026〕88号")
    assert entry.before["resolution_deadline"].startswith("2026-11-25T07:30")
    desk.clock.now = S(26, 9)
    desk.service.start_progress(ticket.id, "oper")
    assert desk.service.check_deadlines() == []
    with pytest.raises(InvalidInputError, match="批准文号"):
        desk.service.set_agreed_fix(ticket.id, "oper", shanghai(2026, 12, 11, 18), " ")


def test_roster_across_an_important_period(desk: Desk) -> None:
    """From 08:00 on 27 November, 24 hours ahead: the first line must cover 10:00-12:00 (morning
    shift in the period), 12:00-13:00 (lunch in the period), 23:00-24:00 and 00:00-03:00 (nights in
    the period); the second line both days of the periods. An empty roster leaves 4 + 2 uncovered."""
    desk.clock.now = S(27, 8)
    assert desk.service.uncovered_shifts() == {"first_line": 4, "second_line": 2}
    assert (
        desk.notifier.registry.get_sample_value(
            "einvoice_notifier_roster_uncovered_shifts", {"line": "first_line"}
        )
        == 4
    )
    roster = parse_roster_yaml("""
shifts:
  - {line: first_line, person: 张三, mobile: "13811110001",
     start: "2026-11-27T07:30:00+08:00", end: "2026-11-27T12:00:00+08:00"}
  - {line: first_line, person: 李四, mobile: "13811110002",
     start: "2026-11-27T12:00:00+08:00", end: "2026-11-27T14:30:00+08:00"}
  - {line: first_line, person: 王五, start: "2026-11-27T22:00:00+08:00", end: "2026-11-28T07:30:00+08:00"}
  - {line: second_line, person: 赵六, mobile: "13922220001",
     start: "2026-11-27T00:00:00+08:00", end: "2026-11-29T00:00:00+08:00"}
""")
    ids = desk.service.add_shifts("oper", roster)
    assert len(ids) == 4
    assert desk.service.uncovered_shifts() == {"first_line": 0, "second_line": 0}
    # The lunch shift removed: the period's 12:00-13:00 is uncovered again (14:30 onwards is not in a period).
    desk.service.delete_shift(ids[1], "oper")
    assert desk.service.uncovered_shifts() == {"first_line": 1, "second_line": 0}
    cover = {(r.line, r.start): r for r in desk.service.roster_cover(S(27, 8), S(28, 8))}
    assert cover[("first_line", S(27, 12))].important and not cover[("first_line", S(27, 12))].covered
    assert (
        cover[("first_line", S(27, 14, 30))].covered is False
        and not cover[("first_line", S(27, 14, 30))].important
    )
    assert cover[("first_line", S(27, 23))].people == ("王五",)
    # Past the periods nothing is counted; the ordinary day has no alert.
    desk.clock.now = S(28, 3)
    assert desk.service.uncovered_shifts() == {"first_line": 0, "second_line": 0}

    # Whoever is on duty is @-ed: 11:00 on the 27th, 张三 on the first line, 赵六 on the second.
    desk.clock.now = S(27, 11)
    on_duty = desk.service.on_duty()
    assert [s.person for s in on_duty["first_line"]] == ["张三"]
    ticket = desk.report()
    desk.service.escalate(ticket.id, "oper", "second_line", "请二线协助")
    mentions = {
        row["channel"]: json.loads(row["mentioned_mobiles"])
        for row in desk.outbox()
        if row["format"] == "text"
    }
    assert mentions == {"robot": ["13811110001"], "oncall": ["13922220001"]}
    # 王五 has no mobile: at 23:30 the roster names him, so nobody's number is @-ed (not the fallback).
    desk.clock.now = S(27, 23, 30)
    desk.report(summary="夜间问题")
    assert json.loads(desk.outbox("robot")[-1]["mentioned_mobiles"]) == []


def test_bad_shifts_are_refused() -> None:
    with pytest.raises(duty.RosterError, match="结束时间需要晚于开始时间"):
        ShiftIn(person="张三", start=S(27, 12), end=S(27, 8)).checked()
    with pytest.raises(duty.RosterError, match="时区"):
        ShiftIn(person="张三", start=datetime(2026, 11, 27, 8), end=datetime(2026, 11, 27, 12)).checked()
    with pytest.raises(duty.RosterError, match=r"shifts\.0\.line"):
        parse_roster_yaml(
            "shifts: [{line: third, person: x, start: '2026-11-27T08:00:00+08:00', "
            "end: '2026-11-27T09:00:00+08:00'}]"
        )
    with pytest.raises(duty.RosterError, match="YAML"):
        parse_roster_yaml("shifts: [")


def test_handover_records_open_tickets_and_notes(desk: Desk) -> None:
    desk.clock.now = S(25, 11, 55)
    first, second, done = (desk.report(summary=f"问题{i}") for i in range(3))
    desk.service.resolve(done.id, "oper")
    desk.service.close(done.id, "oper", "原因", "方案", True)
    desk.clock.now = S(25, 12)
    found = desk.service.handover("oper", "张三", "李四", "3 号机磁盘 85%，请关注")
    assert (found.open_tickets, found.notes, found.at) == (
        (first.id, second.id),
        "3 号机磁盘 85%，请关注",
        S(25, 12),
    )
    (listed,) = desk.service.handovers()
    assert listed == found
    card = desk.outbox("robot")[-2]["content"]
    assert "【交接班】张三 → 李四" in card and f"#{first.id}、#{second.id}" in card
    with pytest.raises(InvalidInputError, match="请填写交班人；请填写接班人"):
        desk.service.handover("oper", " ", "", "")


def _entries(abnormal: dict[str, str] | None = None) -> list[InspectionEntry]:
    abnormal = abnormal or {}
    return [
        InspectionEntry(item=item.id, normal=item.id not in abnormal, finding=abnormal.get(item.id, ""))
        for item in ITEMS
    ]


def test_inspection_signed_late_and_missing_days(store_desk: Desk) -> None:
    """Due at 12:00 each day. From the 23rd to the 25th at 13:00: the 23rd and 24th were never
    signed (missing), the 25th is signed at 13:00 (late). On the 26th it is signed at 09:00 (on time)."""
    desk = store_desk
    desk.clock.now = S(25, 13)
    signed = desk.service.sign_inspection(
        "oper", date(2026, 11, 25), _entries({"05": "受理服务响应慢"}), "", "none"
    )
    assert signed.late and signed.signed_at == S(25, 13)
    summary = desk.service.inspection_summary(date(2026, 11, 23), date(2026, 11, 26))
    assert (summary.due, summary.done, summary.on_time, summary.late, summary.missing) == (3, 1, 0, 1, 2)
    assert [d.state for d in summary.days] == ["missing", "missing", "late", "pending"]
    with pytest.raises(InvalidInputError, match="已签署"):
        desk.service.sign_inspection("oper", date(2026, 11, 25), _entries(), "", "none")
    desk.clock.now = S(26, 9)
    assert not desk.service.sign_inspection("oper", date(2026, 11, 26), _entries(), "", "none").late
    summary = desk.service.inspection_summary(date(2026, 11, 23), date(2026, 11, 26))
    assert (summary.due, summary.done, summary.on_time, summary.late, summary.missing) == (4, 2, 1, 1, 2)
    stored = desk.service.inspection(date(2026, 11, 25))
    assert stored is not None and stored.entries[4] == {
        "item": "05",
        "seen": "unknown",
        "normal": False,
        "finding": "受理服务响应慢",
    }
    with pytest.raises(InvalidInputError, match="缺少第 20 项"):
        desk.service.sign_inspection("oper", date(2026, 11, 24), _entries()[:19], "", "none")
    with pytest.raises(InvalidInputError, match="异常项需要填写发现的问题：第 07 项"):
        desk.service.sign_inspection("oper", date(2026, 11, 24), _entries({"07": " "}), "", "none")
    with pytest.raises(InvalidInputError, match="未来"):
        desk.service.sign_inspection("oper", date(2026, 11, 27), _entries(), "", "none")


class FakePrometheus:
    """Answers GET /api/v1/query as Prometheus' HTTP API documents it
    (https://prometheus.io/docs/prometheus/latest/querying/api/#instant-queries):
    {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {...},
    "value": [<unix time>, "<value as string>"]}]}}. `answers` maps a PromQL expression to its samples."""

    def __init__(self, answers: dict[str, list[tuple[str, str]]]) -> None:
        self.answers = answers
        self.queries: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != "/api/v1/query":
                    self.send_error(404)
                    return
                query = parse_qs(parts.query)["query"][0]
                owner.queries.append(query)
                result = [
                    {"metric": {"item": item}, "value": [1764000000.0, value]}
                    for item, value in owner.answers.get(query, [])
                ]
                body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakePrometheus:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_inspection_prefilled_from_prometheus() -> None:
    with FakePrometheus({"min by (item) (einvoice:item_up)": [("05", "1"), ("10", "0"), ("7", "1")]}) as prom:
        found = prefill_from_prometheus(prom.url)
    assert found.source == "prometheus"
    assert (found.seen["05"], found.seen["10"], found.seen["07"], found.seen["20"]) == (
        "up",
        "down",
        "up",
        "unknown",
    )
    assert prom.queries == ["min by (item) (einvoice:item_up)"]
    # No recording rule data yet: the raw checks.
    with FakePrometheus({"min by (item) (einvoice_check_up)": [("12", "0")]}) as prom:
        found = prefill_from_prometheus(prom.url)
    assert prom.queries == ["min by (item) (einvoice:item_up)", "min by (item) (einvoice_check_up)"]
    assert found.seen["12"] == "down" and found.seen["05"] == "unknown"
    assert prefill_from_prometheus(None).source == "none"
    unreachable = prefill_from_prometheus(f"http://127.0.0.1:{free_port()}", timeout=2)
    assert (unreachable.source, unreachable.error) == ("error", "unreachable")
    assert set(unreachable.seen.values()) == {"unknown"}


def test_knowledge_base_search_and_typical_problems(desk: Desk) -> None:
    desk.clock.now = S(25, 9)
    kafka, disk, open_one = (desk.report(summary=s) for s in ("Kafka 消费积压", "磁盘满", "证书过期"))
    for ticket, cause, solution in (
        (kafka, "消费者组重平衡频繁 100%", "调大 session.timeout.ms"),
        (disk, "归档日志未清理，联系 13812345678", "清理归档并加监控"),
    ):
        desk.service.resolve(ticket.id, "oper")
        desk.service.close(ticket.id, "oper", cause, solution, True)
    assert [row["id"] for row in desk.service.knowledge("重平衡")] == [kafka.id]
    assert [row["id"] for row in desk.service.knowledge("归档 监控")] == [disk.id]
    assert {row["id"] for row in desk.service.knowledge("")} == {kafka.id, disk.id}
    assert [row["id"] for row in desk.service.knowledge("100%")] == [kafka.id]
    assert desk.service.knowledge("_") == []  # a literal underscore, not a wildcard
    (row,) = desk.service.knowledge("归档")
    assert "13812345678" not in row["cause"]
    with pytest.raises(InvalidTransitionError):
        desk.service.mark_typical(open_one.id, "oper")
    assert desk.service.mark_typical(disk.id, "oper").typical
    assert [row["id"] for row in desk.service.knowledge("", typical_only=True)] == [disk.id]
    assert desk.service.timeline(disk.id)[-1].note == "列为典型问题"


def test_a_schema_2_store_upgrades_to_3(
    store_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A store of the previous release with an alert ticket in it: the new columns arrive with their
    defaults, the new tables are created, and the old ticket then works with the new actions."""
    engine = db.make_engine(store_url)
    with monkeypatch.context() as patch:
        patch.setattr(db, "MIGRATIONS", db.MIGRATIONS[:2])
        assert db.migrate(engine) == 2
    with engine.begin() as conn:
        assert not inspect(conn).has_table("duty_shifts")
        moment = datetime(2026, 11, 25, 1, 0)
        conn.execute(
            text(
                "INSERT INTO tickets (fingerprint, starts_at, group_key, alertname, severity_class, state,"
                " summary, description, labels, created_at, updated_at, response_deadline,"
                " resolution_deadline, response_breached, resolution_breached, escalated, second_line,"
                " problem_key, sla_events)"
                " VALUES ('f1', :at, '{}', 'X', 'urgent', 'open', '', '', '{}', :at, :at, :at, :at,"
                " 0, 0, 0, 0, 'item=05', '')"
            ),
            {"at": moment},
        )
    assert db.migrate(engine) == len(db.MIGRATIONS) >= 3
    assert db.migrate(engine) == len(db.MIGRATIONS)  # twice: nothing left to do
    with engine.connect() as conn:
        assert {"duty_shifts", "handovers", "inspections"} <= set(inspect(conn).get_table_names())
    engine.dispose()
    desk = Desk(store_url, tmp_path)
    try:
        (old,) = desk.service.list_tickets()
        assert (old.source, old.typical, old.escalated_to, old.duplicate_of) == ("alert", False, None, None)
        assert desk.service.escalate(old.id, "oper", "bureau", "提交核实").escalated_to == "bureau"
    finally:
        desk.notifier.engine.dispose()


@pytest.mark.parametrize(("raw", "message"), [
    ({"inspection_due": "25:00"}, "inspection_due: Value error, '25:00' is not a time of day"),
    ({"report_response": {"fax": "10m"}}, "report_response.fax.[key]: Input should be"),
    ({"routing": {"bureau_admins": ["nowhere"]}}, "routing names channels that are not configured: nowhere"),
])
def test_bad_settings_of_issue_18_name_the_key(raw: dict[str, Any], message: str) -> None:
    from einvoice_notifier.settings import ConfigError

    with pytest.raises(ConfigError) as caught:
        parse_settings(raw)
    assert message in str(caught.value)


def test_a_long_notice_is_split_within_the_channel_limit_and_keeps_the_link() -> None:
    from einvoice_notifier.notices import render_notice

    note = "\n".join(f"第{i}行：磁盘 /data 使用率 9{i % 10}%，请关注 13812345678" for i in range(120))
    parts = render_notice("handover", None, "http://notifier/console/handovers", 1024, ("13800000001",),
                          subject="张三 → 李四", note=note)
    markdown = [m for m in parts if m.format == "markdown"]
    assert 2 <= len(markdown) <= 3
    assert all(len(m.content.encode()) <= 1024 for m in parts)
    assert all(m.content.endswith("[查看工单](http://notifier/console/handovers)") for m in markdown)
    assert all("13812345678" not in m.content for m in parts)
    (text_message,) = [m for m in parts if m.format == "text"]
    assert text_message.mentioned_mobiles == ("13800000001",)
    assert text_message.content.startswith("【交接班】张三 → 李四")
    with pytest.raises(ValueError, match="notice kind"):
        render_notice("firing", None, "http://x", 1024)  # type: ignore[arg-type]
