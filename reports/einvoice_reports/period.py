"""Report periods: a day (2026-11-05), a month (2026-11) or a year (2026), in the reports' zone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from .errors import ReportError

REPORT_TZ = ZoneInfo("Asia/Shanghai")
_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_YEAR = re.compile(r"^(\d{4})$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


def week_label(day: date) -> str:
    """The ISO week (Monday to Sunday) of a day: 2026-W48."""
    year, week, _ = day.isocalendar()
    return f"{year:04d}-W{week:02d}"


@dataclass(frozen=True, slots=True)
class Period:
    """[start, end) in UTC of one local calendar day, month or year."""

    kind: str
    """"day", "week" (ISO, Monday to Sunday), "month", "quarter" or "year"."""
    label: str
    """As given: 2026-11-05, 2026-11, 2026 (also the archive file name)."""
    first: date
    last: date
    """The local days the period covers, inclusive."""

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(0), REPORT_TZ).astimezone(UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time(0), REPORT_TZ).astimezone(UTC)

    @property
    def seconds(self) -> int:
        return int((self.end - self.start).total_seconds())

    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]

    @property
    def title_zh(self) -> str:
        if self.kind == "day":
            return f"{self.first.year} 年 {self.first.month} 月 {self.first.day} 日"
        if self.kind == "month":
            return f"{self.first.year} 年 {self.first.month} 月"
        if self.kind == "week":
            return f"{self.label[:4]} 年第 {int(self.label[6:])} 周"
        if self.kind == "quarter":
            return f"{self.first.year} 年第 {(self.first.month - 1) // 3 + 1} 季度"
        return f"{self.first.year} 年"

    def year_start(self) -> datetime:
        """00:00 local on 1 January of the period's year, in UTC (the yearly outage budget's start)."""
        return datetime.combine(date(self.first.year, 1, 1), time(0), REPORT_TZ).astimezone(UTC)


def _month_last(year: int, month: int) -> date:
    following = date(year + month // 12, month % 12 + 1, 1)
    return following - timedelta(days=1)


def parse_period(text: str) -> Period:
    """Parse 2026-11-05, 2026-11 or 2026; anything else is a ReportError naming the forms."""
    try:
        if match := _DAY.match(text):
            day = date(int(match[1]), int(match[2]), int(match[3]))
            return Period("day", text, day, day)
        if match := _MONTH.match(text):
            year, month = int(match[1]), int(match[2])
            return Period("month", text, date(year, month, 1), _month_last(year, month))
        if match := _WEEK.match(text):
            monday = date.fromisocalendar(int(match[1]), int(match[2]), 1)
            return Period("week", text, monday, monday + timedelta(days=6))
        if match := _QUARTER.match(text):
            year, quarter = int(match[1]), int(match[2])
            return Period("quarter", text, date(year, 3 * quarter - 2, 1), _month_last(year, 3 * quarter))
        if match := _YEAR.match(text):
            year = int(match[1])
            return Period("year", text, date(year, 1, 1), date(year, 12, 31))
    except ValueError as exc:
        raise ReportError(f"周期 {text!r} 不是有效日期：{exc}") from exc
    raise ReportError(f"周期 {text!r} 格式不对："
                      "日报用 2026-11-05，周报用 2026-W48，月报用 2026-11，季度用 2026-Q4，年报用 2026")


def previous_period(kind: str, now: datetime) -> Period:
    """The last complete day or month before `now` (what the schedule produces)."""
    local = now.astimezone(REPORT_TZ).date()
    if kind == "day":
        return parse_period((local - timedelta(days=1)).isoformat())
    if kind == "week":
        return parse_period(week_label(local - timedelta(days=local.weekday() + 1)))
    if kind == "month":
        last = local.replace(day=1) - timedelta(days=1)
        return parse_period(f"{last.year:04d}-{last.month:02d}")
    if kind == "quarter":
        last = date(local.year, 3 * ((local.month - 1) // 3) + 1, 1) - timedelta(days=1)
        return parse_period(f"{last.year:04d}-Q{(last.month - 1) // 3 + 1}")
    return parse_period(f"{local.year - 1:04d}")
