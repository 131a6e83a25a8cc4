"""Working-hour deadlines on the on-site calendar, with times given, never read from the machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from einvoice_notifier.calendar import CalendarData, WorkingCalendar, load_calendar_data
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.notifier.support import shanghai

DEFAULT = WorkingCalendar(CalendarData())


def test_alert_in_the_lunch_break_starts_its_clock_at_1430() -> None:
    at = shanghai(2026, 11, 27, 12, 30)
    assert DEFAULT.next_working_instant(at) == shanghai(2026, 11, 27, 14, 30)
    assert DEFAULT.add_working_seconds(at, 2 * 3600) == shanghai(2026, 11, 27, 16, 30)


def test_clock_inside_hours_starts_at_once_and_spans_the_break() -> None:
    at = shanghai(2026, 11, 27, 11, 0)
    assert DEFAULT.next_working_instant(at) == at
    # 1 h before noon, the break, then 1 h after 14:30.
    assert DEFAULT.add_working_seconds(at, 2 * 3600) == shanghai(2026, 11, 27, 15, 30)


def test_night_alert_waits_for_the_morning_shift() -> None:
    at = shanghai(2026, 11, 27, 23, 10)
    assert not DEFAULT.is_working(at)
    assert DEFAULT.add_working_seconds(at, 4 * 3600) == shanghai(2026, 11, 28, 11, 30)
    late_evening = shanghai(2026, 11, 27, 21, 0)
    # 1 h until 22:00, then 3 h from 07:30 the next day.
    assert DEFAULT.add_working_seconds(late_evening, 4 * 3600) == shanghai(2026, 11, 28, 10, 30)


def test_working_seconds_between_counts_only_onsite_hours() -> None:
    start, end = shanghai(2026, 11, 27, 11, 0), shanghai(2026, 11, 27, 15, 0)
    assert DEFAULT.working_seconds_between(start, end) == 3600 + 1800
    whole_day = DEFAULT.working_seconds_between(shanghai(2026, 11, 27, 0, 0), shanghai(2026, 11, 28, 0, 0))
    assert whole_day == (4.5 + 7.5) * 3600


def test_important_period_counts_every_hour() -> None:
    data = CalendarData.model_validate({"important_periods": [
        {"name": "全国两会", "start": "2026-03-04T00:00:00+08:00", "end": "2026-03-06T00:00:00+08:00"}]})
    calendar = WorkingCalendar(data)
    night = shanghai(2026, 3, 4, 23, 0)
    assert calendar.is_working(night)
    assert calendar.add_working_seconds(night, 2 * 3600) == shanghai(2026, 3, 5, 1, 0)
    # The period ends at midnight on the 6th: 1 h left then, the rest from 07:30.
    assert calendar.add_working_seconds(shanghai(2026, 3, 5, 23, 0), 2 * 3600) == shanghai(2026, 3, 6, 8, 30)


def test_holiday_keeps_hours_unless_the_operator_says_otherwise(tmp_path: Path) -> None:
    path = tmp_path / "calendar.yml"
    path.write_text("""
holidays:
  - {date: 2026-10-01, name: 国庆节}
  - {date: 2026-02-16, name: 除夕, onsite_hours: [["07:30", "12:00"]]}
  - {start: 2026-02-17, end: 2026-02-18, name: 春节, onsite_hours: []}
""", encoding="utf-8")
    calendar = WorkingCalendar(load_calendar_data(path))
    assert calendar.is_working(shanghai(2026, 10, 1, 9, 0))  # contract: on site every day
    assert not calendar.is_working(shanghai(2026, 2, 16, 15, 0))  # short day
    # 11:00 on the eve: 1 h that day, nobody on site the 17th and 18th, then 07:30 on the 19th.
    eve = shanghai(2026, 2, 16, 11, 0)
    assert calendar.add_working_seconds(eve, 2 * 3600) == shanghai(2026, 2, 19, 8, 30)


def test_calendar_without_any_working_time_is_an_error_not_a_hang() -> None:
    calendar = WorkingCalendar(CalendarData(onsite_hours=[]))
    with pytest.raises(ValueError, match="no working time"):
        calendar.add_working_seconds(datetime(2026, 1, 1, tzinfo=UTC), 60)


@pytest.mark.parametrize("bad, key", [
    ({"onsite_hours": [["12:00", "07:30"]]}, "onsite_hours"),
    ({"onsite_hours": [["7h", "12:00"]]}, "onsite_hours"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"holidays": [{"name": "x"}]}, "holidays"),
    ({"important_periods": [{"start": "2026-03-04T00:00:00", "end": "2026-03-05T00:00:00"}]},
     "important_periods"),
    ({"holiday": []}, "holiday"),
])
def test_bad_calendar_names_the_key(bad: dict, key: str) -> None:
    with pytest.raises(ValidationError) as info:
        CalendarData.model_validate(bad)
    assert key in str(info.value)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        DEFAULT.is_working(datetime(2026, 1, 1, 9, 0))


def test_add_then_measure_round_trips() -> None:
    start = shanghai(2026, 11, 27, 6, 0)
    for hours in (0.5, 2, 4, 13, 40):
        end = DEFAULT.add_working_seconds(start, hours * 3600)
        assert DEFAULT.working_seconds_between(start, end) == pytest.approx(hours * 3600)
        assert end - start >= timedelta(hours=hours)


PERIODS = WorkingCalendar(CalendarData.model_validate({
    "holidays": [{"start": "2026-02-17", "end": "2026-02-18", "onsite_hours": []}],
    "important_periods": [{"start": "2026-03-04T09:00:00+08:00", "end": "2026-03-06T13:15:00+08:00"}]}))


@settings(max_examples=200, deadline=None)
@given(start=st.datetimes(min_value=datetime(2026, 2, 10), max_value=datetime(2026, 3, 10),
                          timezones=st.just(UTC)),
       seconds=st.floats(min_value=0, max_value=5 * 86400))
def test_deadline_is_exactly_the_working_time_asked(start: datetime, seconds: float) -> None:
    end = PERIODS.add_working_seconds(start, seconds)
    assert end >= start
    assert PERIODS.working_seconds_between(start, end) == pytest.approx(seconds, abs=1e-3)
    # Nothing earlier would do: one second less of wall time is less working time.
    if seconds >= 1:
        assert PERIODS.working_seconds_between(start, end - timedelta(seconds=1)) < seconds


def test_important_periods_from_the_shared_routing_calendar_count_24_hours(tmp_path):
    """The notifier reads the whole-day periods of alert_rules/important_periods.yml (the file the
    Alertmanager routing is generated from): inside one, every hour is working time."""
    (tmp_path / "routing").mkdir()
    (tmp_path / "routing" / "important_periods.yml").write_text(
        "periods:\n  - {name: 征期, start: 2026-03-04, end: 2026-03-05}\n", encoding="utf-8")
    (tmp_path / "calendar.yml").write_text(
        "important_periods_file: routing/important_periods.yml\n", encoding="utf-8")
    calendar = WorkingCalendar(load_calendar_data(tmp_path / "calendar.yml"))
    night = shanghai(2026, 3, 5, 1, 0)  # 01:00 on the period's last day
    assert calendar.add_working_seconds(night, 3600) == night + timedelta(hours=1)
    after = shanghai(2026, 3, 6, 1, 0)  # the day after: back to on-site hours
    assert calendar.add_working_seconds(after, 3600) == shanghai(2026, 3, 6, 8, 30)
