"""Alertmanager's routing and the notifier's deadline clock share one calendar of important periods
(重要时期, alert_rules/important_periods.yml) and the same on-site hours."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from einvoice_core.thresholds import load_important_periods, load_thresholds

ROOT = Path(__file__).resolve().parents[2]
NOTIFIER_CALENDAR = ROOT / "deploy" / "notifier" / "calendar.yml"


def test_the_notifier_calendar_reads_the_same_important_periods() -> None:
    """One list of important periods: the notifier's calendar points at the file the routing is
    generated from, and the periods it loads are exactly those days (00:00 to 00:00 after the last)."""
    calendar = yaml.safe_load(NOTIFIER_CALENDAR.read_text(encoding="utf-8")) or {}
    assert "important_periods" not in calendar, "declare important periods only in alert_rules/"
    shared = (NOTIFIER_CALENDAR.parent / calendar["important_periods_file"]).resolve()
    assert shared == (ROOT / "alert_rules" / "important_periods.yml").resolve()
    from einvoice_notifier import calendar as notifier_calendar

    loaded = notifier_calendar.load_calendar_data(NOTIFIER_CALENDAR)
    zone = ZoneInfo(load_thresholds().routing.location)
    ours = {
        (datetime.combine(p.start, time(0), zone), datetime.combine(p.end + timedelta(days=1), time(0), zone))
        for p in load_important_periods(shared).periods
    }
    assert {(p.start, p.end) for p in loaded.important_periods} == ours


def test_onsite_hours_agree_with_the_notifier_calendar() -> None:
    calendar = yaml.safe_load(NOTIFIER_CALENDAR.read_text(encoding="utf-8")) or {}
    ours = [[w.start, w.end] for w in load_thresholds().routing.onsite_hours]
    assert ours == [["07:30", "12:00"], ["14:30", "22:00"]]
    assert [list(span) for span in calendar["onsite_hours"]] == ours
