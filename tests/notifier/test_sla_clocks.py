"""The ticket clocks of SPEC §3, hand-computed: substantive response (#8) in hours around the clock,
resolution (#9) in working hours (on-site 07:30–12:00 and 14:30–22:00 Asia/Shanghai, 24 h in an
important period), stalls and outages restored within 30 minutes around the clock and answered
within 10 minutes (#5). Every expected time below was worked out by hand; the comment says how."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from einvoice_notifier.service import TicketService

from einvoice_core.contract import TicketClass
from tests.notifier.support import FakeClock, alert, shanghai
from tests.notifier.test_tickets import World

CALENDAR = """\
timezone: Asia/Shanghai
important_periods:
  # ends mid-clock: 10:00-13:00 covers the lunch break of 27 November
  - {name: 测试时期甲, start: "2026-11-27T10:00:00+08:00", end: "2026-11-27T13:00:00+08:00"}
  # starts mid-clock: from 23:00 on 27 November until 03:00 the next day
  - {name: 测试时期乙, start: "2026-11-27T23:00:00+08:00", end: "2026-11-28T03:00:00+08:00"}
"""


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    calendar = tmp_path / "calendar.yml"
    calendar.write_text(CALENDAR, encoding="utf-8")
    found = World(f"sqlite:///{tmp_path / 'notifier.db'}", FakeClock(shanghai(2026, 11, 25, 8)),
                  calendar_file=str(calendar))
    yield found
    found.notifier.engine.dispose()


def S(day: int, hour: int, minute: int = 0) -> datetime:  # noqa: N802 - reads like a time
    return shanghai(2026, 11, day, hour, minute)


# (class, began, response deadline, resolution deadline)
CASES = [
    # 25 November: an ordinary Wednesday, no important period.
    # urgent at 11:50: respond by 13:50 (2 h wall); resolve: 10 min to 12:00, lunch, 110 min from 14:30.
    (TicketClass.URGENT, S(25, 11, 50), S(25, 13, 50), S(25, 16, 20)),
    # general at 11:50: respond by 15:50 (4 h wall); resolve: 10 min, then 230 min from 14:30 = 18:20.
    (TicketClass.GENERAL, S(25, 11, 50), S(25, 15, 50), S(25, 18, 20)),
    # routine at 11:50: respond by 13:50 (2 h wall); resolution as general (the contract sets none).
    (TicketClass.ROUTINE, S(25, 11, 50), S(25, 13, 50), S(25, 18, 20)),
    # urgent at 21:00, across the night: respond by 23:00; resolve: 60 min to 22:00, 60 min from 07:30.
    (TicketClass.URGENT, S(25, 21), S(25, 23), S(26, 8, 30)),
    # general at 21:00: respond by 01:00; resolve: 60 min to 22:00, then 180 min from 07:30 = 10:30.
    (TicketClass.GENERAL, S(25, 21), S(26, 1), S(26, 10, 30)),
    # urgent at 03:00 (night): respond by 05:00; resolve: 2 h from 07:30 = 09:30.
    (TicketClass.URGENT, S(25, 3), S(25, 5), S(25, 9, 30)),
    # urgent during the lunch break at 12:30: respond by 14:30; resolve 2 h from 14:30 = 16:30.
    (TicketClass.URGENT, S(25, 12, 30), S(25, 14, 30), S(25, 16, 30)),
    # outage at 21:50: phone response by 22:00, restored by 22:20, on-site hours do not matter.
    (TicketClass.OUTAGE, S(25, 21, 50), S(25, 22), S(25, 22, 20)),
    # stall in the lunch break at 12:10: response by 12:20, restored by 12:40.
    (TicketClass.STALL, S(25, 12, 10), S(25, 12, 20), S(25, 12, 40)),
    # 27 November, important period 10:00-13:00 ends mid-clock.
    # urgent at 12:30: 30 min counted to 13:00 (24 h period), lunch until 14:30, then 90 min = 16:00.
    (TicketClass.URGENT, S(27, 12, 30), S(27, 14, 30), S(27, 16)),
    # general at 12:30: 30 min to 13:00, then 210 min from 14:30 = 18:00; response 4 h wall = 16:30.
    (TicketClass.GENERAL, S(27, 12, 30), S(27, 16, 30), S(27, 18)),
    # important period from 23:00 starts mid-clock: urgent at 21:30: 30 min to 22:00, nothing until
    # 23:00, then 90 min = 00:30 on the 28th. The response is 2 h wall: 23:30.
    (TicketClass.URGENT, S(27, 21, 30), S(27, 23, 30), S(28, 0, 30)),
    # general at 21:30: 30 min, then 23:00-03:00 (240 min) is more than the 210 min left: 02:30.
    (TicketClass.GENERAL, S(27, 21, 30), S(28, 1, 30), S(28, 2, 30)),
    # general at 02:00 on the 28th: 60 min of the period, nothing 03:00-07:30, 180 min from 07:30.
    (TicketClass.GENERAL, S(28, 2), S(28, 6), S(28, 10, 30)),
]


@pytest.mark.parametrize(("ticket_class", "began", "response", "resolution"), CASES,
                         ids=[f"{c[0]}-{c[1]:%d%H%M}Z" for c in CASES])
def test_hand_computed_deadlines(world: World, ticket_class: TicketClass, began: datetime,
                                 response: datetime, resolution: datetime) -> None:
    service: TicketService = world.service
    assert service.deadlines(ticket_class, began) == (response, resolution)


def test_stored_ticket_has_both_clocks_and_they_differ(world: World) -> None:
    """The issue's example: an urgent ticket at 11:50 must be responded to by 13:50 and resolved by
    16:20; before the change both read 16:20."""
    world.clock.now = S(25, 11, 50)
    world.ingest(alert("c101", S(25, 11, 50)))
    (ticket,) = world.service.list_tickets()
    assert (ticket.severity_class, ticket.response_deadline, ticket.resolution_deadline) == (
        "urgent", S(25, 13, 50), S(25, 16, 20))
    # At 13:51 the response is late (escalated), the resolution is not.
    world.clock.now = S(25, 13, 51)
    assert world.service.check_deadlines() == [ticket.id]
    late = world.service.get_ticket(ticket.id)
    assert late is not None and late.response_breached and not late.resolution_breached
    world.clock.now = S(25, 16, 21)
    assert world.service.check_deadlines() == [ticket.id]
    late = world.service.get_ticket(ticket.id)
    assert late is not None and late.resolution_breached
    escalations = [row["dedupe_key"] for row in world.outbox_rows()
                   if row["event"] == "escalation" and row["format"] == "markdown"]
    assert escalations == [f"escalation|{ticket.id}|response|oncall|0",
                           f"escalation|{ticket.id}|resolution|oncall|0"]


def test_routine_class_from_its_label(world: World) -> None:
    world.clock.now = S(25, 9)
    world.ingest(alert("c102", S(25, 9), severity="warning", severity_class="routine"))
    (ticket,) = world.service.list_tickets()
    # respond by 11:00 (2 h wall); resolve in 4 working hours: 09:00-12:00 (3 h), then 14:30-15:30.
    assert (ticket.severity_class, ticket.severity_zh) == ("routine", "日常")
    assert (ticket.response_deadline, ticket.resolution_deadline) == (S(25, 11), S(25, 15, 30))


def test_breached_together_one_message_with_both_facts(world: World) -> None:
    """An urgent ticket at 21:00 is due 23:00 (response) and 08:30 (resolution); if the scheduler
    only runs at 09:00 (the notifier was down overnight), both are breached in one pass: one
    escalation, whose card says both."""
    world.clock.now = S(25, 21)
    world.ingest(alert("c103", S(25, 21)))
    world.clock.now = S(26, 9)
    (ticket_id,) = world.service.check_deadlines()
    escalations = [row for row in world.outbox_rows() if row["event"] == "escalation"]
    assert [(row["channel"], row["format"]) for row in escalations] == [("oncall", "markdown")]
    assert "已超过响应、解决时限" in escalations[0]["content"]
    ticket = world.service.get_ticket(ticket_id)
    assert ticket is not None and ticket.response_breached and ticket.resolution_breached
    assert world.service.timeline(ticket_id)[-1].note == "超过响应时限、解决时限"
    assert world.service.check_deadlines() == []


def test_outage_clock_runs_from_when_the_outage_began(world: World) -> None:
    """A service-level alert fires after its `for:`; its `started_at` annotation says when the
    outage began, and the 30-minute restore counts from there."""
    began = S(25, 3, 0)
    fired = began + timedelta(minutes=3)
    world.clock.now = fired
    outage = alert("c104", fired, alertname="EinvoiceServiceOutage", severity_class="outage",
                   service="intake")
    outage["annotations"]["started_at"] = str(int(began.timestamp()))
    world.ingest(outage)
    (ticket,) = world.service.list_tickets()
    assert ticket.starts_at == fired
    assert (ticket.response_deadline, ticket.resolution_deadline) == (S(25, 3, 10), S(25, 3, 30))
    # An annotation that is not a time, or lies after startsAt, is ignored.
    bogus = alert("c105", fired, alertname="EinvoiceServiceStall", severity_class="stall", service="pipeline")
    bogus["annotations"]["started_at"] = str(int((fired + timedelta(hours=1)).timestamp()))
    world.ingest(bogus)
    stall = world.service.list_tickets(severity_class="stall")[0]
    assert (stall.severity_zh, stall.resolution_deadline) == ("卡顿", fired + timedelta(minutes=30))


def test_console_time_left_counts_the_response_around_the_clock(world: World) -> None:
    """The console's "time left": at 12:30 (lunch) an urgent ticket has 2 wall-clock hours to be
    answered, while its resolution clock is paused until 14:30."""
    from einvoice_notifier.console.deadlines import deadline_notes, uses_working_clock

    world.clock.now = S(25, 12, 30)
    world.ingest(alert("c106", S(25, 12, 30)))
    (ticket,) = world.service.list_tickets()
    notes = deadline_notes(ticket, S(25, 12, 30), world.service.calendar,
                           uses_working_clock(world.service.settings, ticket.severity_class))
    response, resolution = notes["response"], notes["resolution"]
    assert response is not None and response.left == "还剩 2 小时" and "自然小时" in response.why
    assert resolution is not None and resolution.left == "还剩 4 小时" and "14:30 恢复计时" in resolution.why
