"""The duty roster (值班表), shift handovers (交接班), the daily inspection (日常巡检) and the
knowledge base (知识库): the people side of the contract's ticket work (SPEC §3, seed §三.(四)).

Who is on duty comes from the roster the operator keeps in the store, not from fixed mobile lists:
messages @-mention whoever is on duty on the line they go to (the configured mobiles only when the
roster has nobody). The shifts to staff are the calendar's on-site hours (07:30–12:00 and
14:30–22:00 every day) for the first line, 7×24 during an important period, and the whole day for
the second line. A shift of an important period with a gap in its cover is counted by
`uncovered_shifts` (the notifier exports it; an alert fires on it).

Everything here reads or writes through a Connection the caller opens, so TicketService keeps one
transaction per action.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import and_, delete, or_, select
from sqlalchemy.engine import Connection

from einvoice_core.catalogue import ITEMS, normalize_item_id
from einvoice_core.contract import Route

from .calendar import WorkingCalendar
from .db import duty_shifts, from_db, handovers, inspections, tickets, to_db

log = logging.getLogger(__name__)

Line = Literal["first_line", "second_line"]
LINES: tuple[Line, ...] = ("first_line", "second_line")
LINE_ROUTES = {"first_line": Route.FIRST_LINE, "second_line": Route.SECOND_LINE}


class RosterError(ValueError):
    """A shift or a roster file a person got wrong; the message is Chinese and shown as is."""


# -- the roster -----------------------------------------------------------------------------------


class ShiftIn(BaseModel):
    """One shift as the operator enters it (console, API, YAML import)."""

    model_config = ConfigDict(extra="forbid")

    line: Line = "first_line"
    person: str = Field(min_length=1, max_length=64)
    mobile: str | None = Field(default=None, pattern=r"^\+?[0-9]{5,20}$")
    start: datetime
    end: datetime

    @field_validator("person")
    @classmethod
    def _strip(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("值班人员姓名不能为空")
        return value.strip()

    def checked(self) -> ShiftIn:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise RosterError("班次的开始与结束时间需要带时区，例如 2026-12-01T07:30:00+08:00")
        if self.end <= self.start:
            raise RosterError("班次的结束时间需要晚于开始时间")
        if self.end - self.start > timedelta(days=2):
            raise RosterError("一个班次最长 48 小时，请拆分")
        return self


class RosterFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shifts: list[ShiftIn]


@dataclass(frozen=True, slots=True)
class Shift:
    id: int
    line: str
    person: str
    mobile: str | None
    starts_at: datetime
    ends_at: datetime
    created_by: str


@dataclass(frozen=True, slots=True)
class RequiredShift:
    """A stretch of time one line must have somebody on: an on-site shift, a night or lunch gap of an
    important period, a second-line day."""

    line: str
    start: datetime
    end: datetime
    important: bool
    covered: bool = False
    people: tuple[str, ...] = field(default=())


def parse_roster_yaml(text: str) -> list[ShiftIn]:
    """A roster file: `shifts: [{line, person, mobile, start, end}, ...]` (times with an offset)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RosterError(f"值班表不是有效的 YAML：{str(exc)[:200]}") from None
    try:
        found = RosterFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise RosterError(f"值班表第 {where} 项有误：{first['msg']}") from None
    return [shift.checked() for shift in found.shifts]


def add_shifts(conn: Connection, shifts: Sequence[ShiftIn], actor: str, now: datetime) -> list[int]:
    rows = [{"line": s.line, "person": s.person, "mobile": s.mobile, "starts_at": to_db(s.start),
             "ends_at": to_db(s.end), "created_by": actor[:128], "created_at": to_db(now)}
            for s in (shift.checked() for shift in shifts)]
    if not rows:
        return []
    ids = conn.execute(duty_shifts.insert().returning(duty_shifts.c.id, sort_by_parameter_order=True),
                       rows).scalars().all()
    return list(ids)


def delete_shift(conn: Connection, shift_id: int) -> bool:
    return bool(conn.execute(delete(duty_shifts).where(duty_shifts.c.id == shift_id)).rowcount)


def _shift(row: Mapping[Any, Any]) -> Shift:
    return Shift(id=row["id"], line=row["line"], person=row["person"], mobile=row["mobile"],
                 starts_at=from_db(row["starts_at"]), ends_at=from_db(row["ends_at"]),  # type: ignore[arg-type]
                 created_by=row["created_by"])


def shifts_between(conn: Connection, start: datetime, end: datetime, line: str | None = None) -> list[Shift]:
    query = select(duty_shifts).where(duty_shifts.c.starts_at < to_db(end),
                                      duty_shifts.c.ends_at > to_db(start))
    if line is not None:
        query = query.where(duty_shifts.c.line == line)
    return [_shift(row) for row in conn.execute(query.order_by(duty_shifts.c.starts_at, duty_shifts.c.id))
            .mappings()]


def on_duty(conn: Connection, at: datetime) -> dict[str, list[Shift]]:
    """Who is on each line at `at` (start inclusive, end exclusive)."""
    found: dict[str, list[Shift]] = {line: [] for line in LINES}
    for shift in shifts_between(conn, at, at + timedelta(microseconds=1)):
        found.setdefault(shift.line, []).append(shift)
    return found


def duty_mobiles(conn: Connection, line: str, at: datetime, fallback: Iterable[str]) -> list[str]:
    """Mobiles to @ on `line` now: the roster's people on duty, else the configured list."""
    people = on_duty(conn, at).get(line, [])
    if people:
        return list(dict.fromkeys(s.mobile for s in people if s.mobile))
    return list(fallback)


def required_shifts(calendar: WorkingCalendar, start: datetime, end: datetime) -> list[RequiredShift]:
    """The stretches to staff that overlap [start, end), per line, in time order.

    First line: each day's on-site shifts; inside an important period also the gaps between them
    (night, lunch), clipped to the period. Second line: each whole local day. `important`: the stretch
    overlaps an important period (only those are alerted on)."""
    tz = calendar.tz
    day = start.astimezone(tz).date() - timedelta(days=1)
    last = end.astimezone(tz).date()
    out: list[RequiredShift] = []
    while day <= last:
        day_start = datetime.combine(day, time(0), tz).astimezone(UTC)
        day_end = datetime.combine(day + timedelta(days=1), time(0), tz).astimezone(UTC)
        periods = calendar.important_spans(day_start, day_end)
        onsite = calendar.onsite_spans(day)
        stretches = list(onsite)
        for p_start, p_end, _name in periods:
            cursor = p_start
            for s_start, s_end in [*onsite, (p_end, p_end)]:
                gap_end = min(s_start, p_end)
                if gap_end > cursor:
                    stretches.append((cursor, gap_end))
                cursor = max(cursor, s_end)
        for s_start, s_end in sorted(stretches):
            important = any(s_start < p_end and p_start < s_end for p_start, p_end, _ in periods)
            out.append(RequiredShift("first_line", s_start, s_end, important))
        important_day = bool(periods)
        out.append(RequiredShift("second_line", day_start, day_end, important_day))
        day += timedelta(days=1)
    return sorted((r for r in out if r.start < end and r.end > start), key=lambda r: (r.start, r.line))


def _covered(stretch: tuple[datetime, datetime], shifts: Sequence[Shift]) -> bool:
    cursor, end = stretch
    for shift in sorted(shifts, key=lambda s: s.starts_at):
        if shift.starts_at > cursor:
            break
        cursor = max(cursor, shift.ends_at)
        if cursor >= end:
            return True
    return cursor >= end


def roster_cover(conn: Connection, calendar: WorkingCalendar, start: datetime,
                 end: datetime) -> list[RequiredShift]:
    """Every stretch of [start, end) with whether the roster covers it entirely, and who is on it."""
    found = []
    shifts = shifts_between(conn, start - timedelta(days=2), end + timedelta(days=2))
    for required in required_shifts(calendar, start, end):
        mine = [s for s in shifts if s.line == required.line and s.starts_at < required.end
                and s.ends_at > required.start]
        found.append(RequiredShift(required.line, required.start, required.end, required.important,
                                   _covered((required.start, required.end), mine),
                                   tuple(dict.fromkeys(s.person for s in mine))))
    return found


def uncovered_shifts(conn: Connection, calendar: WorkingCalendar, now: datetime,
                     horizon: float) -> dict[str, int]:
    """Per line: stretches of an important period, from now to `horizon` seconds ahead, that the
    roster leaves (partly) empty. Only the part still to come counts: a gap already past is history."""
    counts: dict[str, int] = {line: 0 for line in LINES}
    end = now + timedelta(seconds=horizon)
    shifts: dict[str, list[Shift]] = {line: shifts_between(conn, now, end, line) for line in LINES}
    for required in required_shifts(calendar, now, end):
        if not required.important:
            continue
        periods = calendar.important_spans(max(required.start, now), min(required.end, end))
        if any(not _covered((lo, hi), shifts[required.line]) for lo, hi, _ in periods):
            counts[required.line] += 1
    return counts


# -- handovers ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Handover:
    id: int
    at: datetime
    actor: str
    from_person: str
    to_person: str
    open_tickets: tuple[int, ...]
    notes: str


def record_handover(conn: Connection, actor: str, from_person: str, to_person: str, notes: str,
                    now: datetime) -> Handover:
    open_ids = tuple(conn.execute(select(tickets.c.id).where(
        tickets.c.state.in_(("open", "acknowledged", "in_progress"))).order_by(tickets.c.id)).scalars())
    handover_id = conn.execute(handovers.insert().returning(handovers.c.id), {
        "at": to_db(now), "actor": actor[:128], "from_person": from_person[:64], "to_person": to_person[:64],
        "open_tickets": json.dumps(list(open_ids)), "notes": notes}).scalar_one()
    return Handover(handover_id, now, actor, from_person, to_person, open_ids, notes)


def list_handovers(conn: Connection, limit: int = 50) -> list[Handover]:
    rows = conn.execute(select(handovers).order_by(handovers.c.id.desc()).limit(limit)).mappings()
    return [Handover(row["id"], from_db(row["at"]), row["actor"], row["from_person"],  # type: ignore[arg-type]
                     row["to_person"], tuple(json.loads(row["open_tickets"])), row["notes"]) for row in rows]


# -- the daily inspection ---------------------------------------------------------------------------

Seen = Literal["up", "down", "unknown"]


@dataclass(frozen=True, slots=True)
class Prefill:
    """What the checks saw per item. `source`: prometheus, none (no prometheus_url) or error."""

    source: str
    seen: dict[str, Seen]
    error: str = ""


def _query(base: str, expr: str, timeout: float) -> list[dict[str, Any]]:
    """GET /api/v1/query (Prometheus HTTP API): the instant vector's result list."""
    url = f"{base.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - configured http(s) URL
        body = json.loads(response.read().decode("utf-8"))
    if body.get("status") != "success" or body.get("data", {}).get("resultType") != "vector":
        raise ValueError("not an instant vector answer")
    result = body["data"]["result"]
    if not isinstance(result, list):
        raise ValueError("result is not a list")
    return result


def prefill_from_prometheus(prometheus_url: str | None, timeout: float = 5.0) -> Prefill:
    """Each item's state as the checks see it now: `min by (item) (einvoice:item_up)`, or the raw
    `einvoice_check_up` when the recording rule has no data. 1 is up, anything else down; an item
    with no series is unknown."""
    blank: dict[str, Seen] = {item.id: "unknown" for item in ITEMS}
    if not prometheus_url:
        return Prefill("none", blank)
    if not prometheus_url.startswith(("http://", "https://")):
        return Prefill("error", blank, "bad_url")
    try:
        result = _query(prometheus_url, "min by (item) (einvoice:item_up)", timeout)
        if not result:
            result = _query(prometheus_url, "min by (item) (einvoice_check_up)", timeout)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        log.warning("inspection prefill: Prometheus unreachable (%s)", type(exc).__name__)
        return Prefill("error", blank, "unreachable")
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("inspection prefill: unexpected answer from Prometheus (%s)", exc)
        return Prefill("error", blank, "bad_response")
    seen = dict(blank)
    for sample in result:
        try:
            item = normalize_item_id(str(sample["metric"]["item"]))
            value = float(sample["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        if item in seen:
            seen[item] = "up" if value == 1 else "down"
    return Prefill("prometheus", seen)


class InspectionEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item: str
    seen: Seen = "unknown"
    normal: bool
    finding: str = Field(default="", max_length=2000)

    @field_validator("item")
    @classmethod
    def _item(cls, value: str) -> str:
        return normalize_item_id(value)


@dataclass(frozen=True, slots=True)
class Inspection:
    day: str
    signed_by: str
    signed_at: datetime
    source: str
    entries: tuple[dict[str, Any], ...]
    notes: str
    late: bool


def due_at(calendar: WorkingCalendar, day: date, due: str) -> datetime:
    hour, minute = (int(part) for part in due.split(":"))
    return datetime.combine(day, time(hour, minute), calendar.tz).astimezone(UTC)


def sign_inspection(conn: Connection, calendar: WorkingCalendar, due: str, day: date,
                    entries: Sequence[InspectionEntry], notes: str, source: str, actor: str,
                    now: datetime) -> Inspection:
    today = now.astimezone(calendar.tz).date()
    if day > today:
        raise RosterError("不能签署未来日期的巡检")
    items = {entry.item for entry in entries}
    missing = [item.id for item in ITEMS if item.id not in items]
    if missing:
        raise RosterError("巡检需要逐项确认全部 20 项，缺少第 " + "、".join(missing) + " 项")
    abnormal_blank = [entry.item for entry in entries if not entry.normal and not entry.finding.strip()]
    if abnormal_blank:
        raise RosterError("异常项需要填写发现的问题：第 " + "、".join(abnormal_blank) + " 项")
    if conn.execute(select(inspections.c.id).where(inspections.c.day == day.isoformat())).first():
        raise RosterError(f"{day.isoformat()} 的巡检已签署")
    stored = [entry.model_dump() for entry in sorted(entries, key=lambda e: e.item)]
    conn.execute(inspections.insert(), {
        "day": day.isoformat(), "signed_by": actor[:128], "signed_at": to_db(now), "source": source,
        "items": json.dumps(stored, ensure_ascii=False), "notes": notes})
    return Inspection(day.isoformat(), actor, now, source, tuple(stored), notes,
                      now > due_at(calendar, day, due))


def get_inspection(conn: Connection, calendar: WorkingCalendar, due: str, day: date) -> Inspection | None:
    row = conn.execute(select(inspections).where(inspections.c.day == day.isoformat())).mappings().first()
    if row is None:
        return None
    signed = from_db(row["signed_at"])
    assert signed is not None
    return Inspection(row["day"], row["signed_by"], signed, row["source"], tuple(json.loads(row["items"])),
                      row["notes"], signed > due_at(calendar, day, due))


@dataclass(frozen=True, slots=True)
class InspectionDay:
    day: str
    due_at: datetime
    state: Literal["on_time", "late", "missing", "pending"]
    """pending: not signed and not yet due (today before the due time)."""
    signed_by: str | None
    signed_at: datetime | None


@dataclass(frozen=True, slots=True)
class InspectionSummary:
    """Inspections due vs done of the local days [start, end] (scorecard line 5, 检查频次要求)."""

    start: str
    end: str
    due: int
    done: int
    on_time: int
    late: int
    missing: int
    days: tuple[InspectionDay, ...]


def inspection_summary(conn: Connection, calendar: WorkingCalendar, due: str, start: date, end: date,
                       now: datetime) -> InspectionSummary:
    if end < start:
        raise RosterError("统计区间的结束日期不能早于开始日期")
    if (end - start).days > 366:
        raise RosterError("统计区间最长一年")
    rows = {row["day"]: row for row in conn.execute(select(inspections).where(
        and_(inspections.c.day >= start.isoformat(), inspections.c.day <= end.isoformat()))).mappings()}
    days = []
    day = start
    while day <= end:
        deadline = due_at(calendar, day, due)
        row = rows.get(day.isoformat())
        if row is not None:
            signed = from_db(row["signed_at"])
            assert signed is not None
            days.append(InspectionDay(day.isoformat(), deadline, "late" if signed > deadline else "on_time",
                                      row["signed_by"], signed))
        elif now >= deadline:
            days.append(InspectionDay(day.isoformat(), deadline, "missing", None, None))
        else:
            days.append(InspectionDay(day.isoformat(), deadline, "pending", None, None))
        day += timedelta(days=1)
    counted = [d for d in days if d.state != "pending"]
    return InspectionSummary(
        start.isoformat(), end.isoformat(), due=len(counted),
        done=sum(d.state in ("on_time", "late") for d in counted),
        on_time=sum(d.state == "on_time" for d in counted), late=sum(d.state == "late" for d in counted),
        missing=sum(d.state == "missing" for d in counted), days=tuple(days))


# -- the knowledge base ----------------------------------------------------------------------------


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_knowledge(conn: Connection, query: str, typical_only: bool = False,
                     limit: int = 100) -> list[dict[str, Any]]:
    """Closed tickets whose summary, cause or solution contains `query` (all when empty), newest first."""
    found = select(tickets.c.id, tickets.c.summary, tickets.c.item, tickets.c.severity_class,
                   tickets.c.cause, tickets.c.solution, tickets.c.closed_at, tickets.c.typical,
                   tickets.c.source).where(tickets.c.state == "closed")
    words = [word for word in query.split() if word][:5]
    for word in words:
        pattern = _like(word[:100])
        found = found.where(or_(tickets.c.summary.like(pattern, escape="\\"),
                                tickets.c.cause.like(pattern, escape="\\"),
                                tickets.c.solution.like(pattern, escape="\\")))
    if typical_only:
        found = found.where(tickets.c.typical.is_(True))
    rows = conn.execute(found.order_by(tickets.c.closed_at.desc(), tickets.c.id.desc())
                        .limit(max(1, min(limit, 1000)))).mappings()
    return [{**dict(row), "closed_at": from_db(row["closed_at"]), "typical": bool(row["typical"])}
            for row in rows]
