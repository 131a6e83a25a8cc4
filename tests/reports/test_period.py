"""Report periods: the forms accepted, their bounds in UTC, and what the schedule builds by default."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from einvoice_reports.errors import ReportError
from einvoice_reports.fmt import duration, pct
from einvoice_reports.period import parse_period, previous_period


def test_forms_and_bounds() -> None:
    month = parse_period("2026-11")
    assert (month.kind, month.start, month.end) == (
        "month", datetime(2026, 10, 31, 16, tzinfo=UTC), datetime(2026, 11, 30, 16, tzinfo=UTC))
    assert month.seconds == 30 * 86400 and len(month.days()) == 30
    assert parse_period("2026-11-05").title_zh == "2026 年 11 月 5 日"
    quarter = parse_period("2026-Q4")
    assert (quarter.first.isoformat(), quarter.last.isoformat()) == ("2026-10-01", "2026-12-31")
    assert parse_period("2026").year_start() == datetime(2025, 12, 31, 16, tzinfo=UTC)


@pytest.mark.parametrize("text", ["2026-13", "2026-02-30", "26-11", "2026-Q5", "november", ""])
def test_bad_periods_are_refused_with_the_forms(text: str) -> None:
    with pytest.raises(ReportError, match="周期"):
        parse_period(text)


def test_previous_complete_period() -> None:
    now = datetime(2027, 1, 1, 0, 30, tzinfo=UTC)  # 08:30 on 1 January in Shanghai
    assert previous_period("day", now).label == "2026-12-31"
    assert previous_period("month", now).label == "2026-12"
    assert previous_period("quarter", now).label == "2026-Q4"
    assert previous_period("year", now).label == "2026"
    assert previous_period("day", datetime(2026, 11, 30, 17, tzinfo=UTC)).label == "2026-11-30"


def test_formats() -> None:
    assert duration(0) == "0 秒" and duration(9000) == "2 小时 30 分" and duration(3130) == "52 分 10 秒"
    assert duration(None) == "—" and pct(None) == "—" and pct(8608 / 8640, 3) == "99.630%"
