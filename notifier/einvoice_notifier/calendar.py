"""Working time on the on-site calendar, for response and resolution deadlines (SPEC §3).

The contract counts "working hours" as the on-site hours: every day 07:30–12:00 and 14:30–22:00
(Asia/Shanghai). During an important period (重要时期) the site is staffed 7×24, so every minute
counts. Both are data the operator edits in a YAML file, not code:

    timezone: Asia/Shanghai
    onsite_hours: [["07:30", "12:00"], ["14:30", "22:00"]]
    holidays:
      - {date: 2026-02-16, name: 除夕, onsite_hours: [["07:30", "12:00"]]}
      - {start: 2026-10-01, end: 2026-10-03, name: 国庆节, onsite_hours: []}
    important_periods:
      - {name: 全国两会, start: "2026-03-04T00:00:00+08:00", end: "2026-03-12T00:00:00+08:00"}
    # whole-day periods shared with Alertmanager's routing (one list for both), relative to this file
    important_periods_file: ../../alert_rules/important_periods.yml

What a holiday means: the contract says on-site hours apply *every day*, holidays included, so a
holiday listed without `onsite_hours` keeps the normal hours (it is only named on reports). The
operator writes `onsite_hours` on a holiday when the bureau agreed other hours for that day; an
empty list means nobody is on site and the working clock stops that day. Important periods always
win over holidays (24 h). Wall-clock deadlines (outages) do not use this module.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from einvoice_core.thresholds import load_important_periods

_MAX_DAYS = 800
"""How far a search for working time may walk before concluding the calendar has none."""


def _parse_hhmm(value: str) -> time:
    try:
        hours, minutes = value.split(":")
        if value == "24:00":
            return time.max
        return time(int(hours), int(minutes))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{value!r} is not a time of day; write it like 07:30") from exc


def _check_span(span: tuple[str, str]) -> tuple[str, str]:
    start, end = _parse_hhmm(span[0]), _parse_hhmm(span[1])
    if end <= start:
        raise ValueError(f"on-site hours {span[0]}–{span[1]} end before they start")
    return span


Span = Annotated[tuple[str, str], AfterValidator(_check_span)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Holiday(_Strict):
    name: str = ""
    date: dt.date | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    """Inclusive last day."""
    onsite_hours: list[Span] | None = None
    """None: the normal on-site hours (the contract's "every day"); []: nobody on site."""

    @model_validator(mode="after")
    def _one_form(self) -> Holiday:
        if self.date is not None and (self.start is not None or self.end is not None):
            raise ValueError("a holiday has either `date` or `start`/`end`, not both")
        if self.date is None and (self.start is None or self.end is None):
            raise ValueError("a holiday needs `date`, or both `start` and `end`")
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError("holiday `end` is before its `start`")
        return self

    def covers(self, day: dt.date) -> bool:
        if self.date is not None:
            return day == self.date
        assert self.start is not None and self.end is not None
        return self.start <= day <= self.end


class ImportantPeriod(_Strict):
    name: str = ""
    start: datetime
    end: datetime

    @model_validator(mode="after")
    def _ordered(self) -> ImportantPeriod:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("important period `start` and `end` need a UTC offset, e.g. +08:00")
        if self.end <= self.start:
            raise ValueError("important period `end` is not after its `start`")
        return self


class CalendarData(_Strict):
    timezone: str = "Asia/Shanghai"
    onsite_hours: list[Span] = Field(default_factory=lambda: [("07:30", "12:00"), ("14:30", "22:00")])
    holidays: list[Holiday] = Field(default_factory=list)
    important_periods: list[ImportantPeriod] = Field(default_factory=list)
    important_periods_file: Path | None = None
    """The important-period calendar Alertmanager's routing is generated from
    (alert_rules/important_periods.yml: whole days, inclusive), so both read one list."""
    makeup_workdays: list[dt.date] = Field(default_factory=list)
    """调休上班日: weekend days that are official working days. With `holidays` they make the
    official working days the reports count (scorecard line 11); the on-site clock ignores them."""

    @model_validator(mode="after")
    def _known_zone(self) -> CalendarData:
        try:
            ZoneInfo(self.timezone)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"timezone {self.timezone!r} is not a known IANA zone") from exc
        for day in self.makeup_workdays:
            if day.weekday() < 5:
                raise ValueError(f"makeup_workdays: {day} is a weekday; a make-up workday is a Saturday"
                                 " or Sunday worked in exchange for a holiday")
            if any(holiday.covers(day) for holiday in self.holidays):
                raise ValueError(f"makeup_workdays: {day} is also listed as a holiday")
        return self

    def is_official_workday(self, day: dt.date) -> bool:
        """工作日 as the scorecard counts them: Monday to Friday unless a listed holiday covers it,
        and the listed make-up workdays (调休)."""
        if day in self.makeup_workdays:
            return True
        return day.weekday() < 5 and not any(holiday.covers(day) for holiday in self.holidays)


def load_calendar_data(path: Path | None) -> CalendarData:
    """The operator's calendar file; the contract's plain on-site hours when there is none."""
    if path is None:
        return CalendarData()
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    data = CalendarData.model_validate(raw)
    if data.important_periods_file is None:
        return data
    shared = path.parent / data.important_periods_file
    tz = ZoneInfo(data.timezone)
    whole_days = [
        ImportantPeriod(name=period.name, start=datetime.combine(period.start, time(0), tz),
                        end=datetime.combine(period.end + timedelta(days=1), time(0), tz))
        for period in load_important_periods(shared).periods
    ]
    return data.model_copy(update={"important_periods": [*data.important_periods, *whole_days]})


@dataclass(frozen=True, slots=True)
class WorkingCalendar:
    """Answers "when does a clock of N working seconds, started at t, run out?"."""

    data: CalendarData
    _spans: dict[dt.date, list[tuple[datetime, datetime]]] = field(
        default_factory=dict, compare=False, repr=False)
    """Per-day working intervals, computed once (every ticket asks for the same few days)."""

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.data.timezone)

    def _day_spans(self, day: date) -> list[tuple[datetime, datetime]]:
        """Working intervals of one local day (UTC, sorted, merged)."""
        cached = self._spans.get(day)
        if cached is None:
            cached = self._spans[day] = self._compute_day_spans(day)
        return cached

    def _compute_day_spans(self, day: date) -> list[tuple[datetime, datetime]]:
        tz = self.tz
        spans_text = self.data.onsite_hours
        for holiday in self.data.holidays:
            if holiday.covers(day) and holiday.onsite_hours is not None:
                spans_text = holiday.onsite_hours
        spans: list[tuple[datetime, datetime]] = []
        for start_text, end_text in spans_text:
            start = datetime.combine(day, _parse_hhmm(start_text), tz)
            end_t = _parse_hhmm(end_text)
            end = (datetime.combine(day + timedelta(days=1), time(0), tz) if end_t == time.max
                   else datetime.combine(day, end_t, tz))
            spans.append((start.astimezone(UTC), end.astimezone(UTC)))
        day_start = datetime.combine(day, time(0), tz).astimezone(UTC)
        day_end = datetime.combine(day + timedelta(days=1), time(0), tz).astimezone(UTC)
        for period in self.data.important_periods:
            start, end = max(period.start, day_start), min(period.end, day_end)
            if start < end:
                spans.append((start.astimezone(UTC), end.astimezone(UTC)))
        spans.sort()
        merged: list[tuple[datetime, datetime]] = []
        for start, end in spans:
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return merged

    def onsite_spans(self, day: date) -> list[tuple[datetime, datetime]]:
        """The on-site shifts of one local day (UTC), holidays' own hours applied, important
        periods not added: what the duty roster must staff every day."""
        tz = self.tz
        spans_text = self.data.onsite_hours
        for holiday in self.data.holidays:
            if holiday.covers(day) and holiday.onsite_hours is not None:
                spans_text = holiday.onsite_hours
        spans = []
        for start_text, end_text in spans_text:
            end_t = _parse_hhmm(end_text)
            end = (datetime.combine(day + timedelta(days=1), time(0), tz) if end_t == time.max
                   else datetime.combine(day, end_t, tz))
            spans.append((datetime.combine(day, _parse_hhmm(start_text), tz).astimezone(UTC),
                          end.astimezone(UTC)))
        return sorted(spans)

    def important_spans(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime, str]]:
        """The important periods overlapping [start, end), clipped to it: (start, end, name)."""
        found = []
        for period in self.data.important_periods:
            lo, hi = max(period.start, _aware(start)), min(period.end, _aware(end))
            if lo < hi:
                found.append((lo.astimezone(UTC), hi.astimezone(UTC), period.name))
        return sorted(found)

    def _spans_from(self, moment: datetime):
        day = moment.astimezone(self.tz).date() - timedelta(days=1)
        for offset in range(_MAX_DAYS):
            for start, end in self._day_spans(day + timedelta(days=offset)):
                if end > moment:
                    yield max(start, moment), end
        raise ValueError(f"the calendar has no working time within {_MAX_DAYS} days")

    def is_working(self, moment: datetime) -> bool:
        moment = _aware(moment)
        return any(start <= moment < end for start, end in self._day_spans(moment.astimezone(self.tz).date()))

    def next_working_instant(self, moment: datetime) -> datetime:
        """When the working clock (re)starts: `moment` itself inside working hours."""
        for start, _end in self._spans_from(_aware(moment)):
            return start
        raise AssertionError("unreachable")

    def add_working_seconds(self, start: datetime, seconds: float) -> datetime:
        """The instant at which `seconds` of working time have elapsed since `start`."""
        remaining = timedelta(seconds=seconds)
        for span_start, span_end in self._spans_from(_aware(start)):
            if span_end - span_start >= remaining:
                return span_start + remaining
            remaining -= span_end - span_start
        raise AssertionError("unreachable")

    def working_seconds_between(self, start: datetime, end: datetime) -> float:
        start, end = _aware(start), _aware(end)
        total = 0.0
        if end <= start:
            return total
        for span_start, span_end in self._spans_from(start):
            if span_start >= end:
                break
            total += (min(span_end, end) - span_start).total_seconds()
        return total


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: the calendar needs an aware one (UTC)")
    return moment.astimezone(UTC)
