"""What the console says about a deadline besides its absolute time: how long is left, and why that
is more than the wall clock suggests (the working clock stops at the lunch break, at night and on
days nobody is on site), computed on the calendar the ticket service holds."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

OPEN_FOR = {"response": ("open",), "resolution": ("open", "acknowledged", "in_progress")}
"""States in which each deadline still runs."""


class Calendar(Protocol):
    def is_working(self, moment: datetime) -> bool: ...

    def next_working_instant(self, moment: datetime) -> datetime: ...

    def working_seconds_between(self, start: datetime, end: datetime) -> float: ...

    @property
    def tz(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class DeadlineNote:
    left: str
    """"还剩 1 小时 5 分钟" or "已超时 25 分钟"."""
    why: str
    """Why the working clock gives more time than the wall clock, or ""."""
    late: bool


def duration_zh(seconds: float) -> str:
    minutes = max(0, round(seconds / 60))
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} 天" if days else "", f"{hours} 小时" if hours else "",
             f"{minutes} 分钟" if minutes or not (days or hours) else ""]
    return " ".join(part for part in parts if part)


def _pause_name(now_local: datetime, resume_local: datetime) -> str:
    if resume_local.date() == now_local.date() and 11 <= now_local.hour < 15:
        return "午休"
    if (resume_local.date() - now_local.date()).days <= 1 and (now_local.hour >= 21 or now_local.hour < 8):
        return "夜间非值守时间"
    return "非值守日"


def deadline_note(kind: str, state: str, deadline: datetime | None, now: datetime,
                  calendar: Calendar | None, working_clock: bool) -> DeadlineNote | None:
    """None when the deadline no longer runs (the ticket was answered or resolved)."""
    if deadline is None or state not in OPEN_FOR.get(kind, ()):
        return None
    wall = (deadline - now).total_seconds()
    if wall <= 0:
        return DeadlineNote(f"已超时 {duration_zh(-wall)}", "", True)
    if not working_clock or calendar is None:
        return DeadlineNote(f"还剩 {duration_zh(wall)}", "全天计时（故障类工单不因午休、夜间暂停）"
                            if not working_clock else "", False)
    working = calendar.working_seconds_between(now, deadline)
    paused = wall - working
    why = ""
    if not calendar.is_working(now):
        resume = calendar.next_working_instant(now)
        now_local, resume_local = now.astimezone(calendar.tz), resume.astimezone(calendar.tz)
        day = "" if resume_local.date() == now_local.date() else f"{resume_local:%m-%d} "
        why = (f"现在是{_pause_name(now_local, resume_local)}，按值守时间计时已暂停，"
               f"{day}{resume_local:%H:%M} 恢复计时；剩余值守时间 {duration_zh(working)}")
    elif paused >= 60:
        why = f"期间含 {duration_zh(paused)} 午休或非值守时间不计时；剩余值守时间 {duration_zh(working)}"
    return DeadlineNote(f"还剩 {duration_zh(wall)}", why, False)


def deadline_notes(ticket: Any, now: datetime, calendar: Calendar | None,
                   working_clock: bool) -> dict[str, DeadlineNote | None]:
    """`working_clock` is the resolution's clock; the response is always counted around the clock
    (SPEC §3 #8: hours, not working hours)."""
    notes = {kind: deadline_note(kind, ticket.state, getattr(ticket, f"{kind}_deadline", None), now,
                                 calendar, working_clock and kind == "resolution")
             for kind in ("response", "resolution")}
    response = notes["response"]
    if working_clock and response is not None and response.why:
        notes["response"] = replace(response, why="全天计时（响应时限按自然小时计，不因午休、夜间暂停）")
    return notes


def uses_working_clock(settings: Any, severity_class: str) -> bool:
    policy = getattr(settings, "sla", {}).get(severity_class)
    return getattr(policy, "clock", "wall") == "working"


__all__ = ["DeadlineNote", "deadline_note", "deadline_notes", "duration_zh", "uses_working_clock"]
