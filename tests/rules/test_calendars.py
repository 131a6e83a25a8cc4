"""The two calendars that declare important periods (重要时期) agree: Alertmanager's routing reads
alert_rules/important_periods.yml, the notifier's deadline clock reads deploy/notifier/calendar.yml."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from einvoice_core.thresholds import load_important_periods, load_thresholds

ROOT = Path(__file__).resolve().parents[2]
NOTIFIER_CALENDAR = ROOT / "deploy" / "notifier" / "calendar.yml"


def test_important_periods_agree_with_the_notifier_calendar() -> None:
    if not NOTIFIER_CALENDAR.is_file():
        pytest.skip("deploy/notifier/calendar.yml is not in this checkout")
    zone = ZoneInfo(load_thresholds().routing.location)
    ours = {
        (datetime.combine(p.start, time(0), zone), datetime.combine(p.end + timedelta(days=1), time(0), zone))
        for p in load_important_periods(ROOT / "alert_rules" / "important_periods.yml").periods
    }
    calendar = yaml.safe_load(NOTIFIER_CALENDAR.read_text(encoding="utf-8")) or {}
    assert calendar.get("timezone", "Asia/Shanghai") == "Asia/Shanghai"

    def instant(value: object) -> datetime:
        parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)

    theirs = {(instant(p["start"]), instant(p["end"])) for p in calendar.get("important_periods") or []}
    assert ours == theirs, (
        "declare the same important periods in alert_rules/important_periods.yml and "
        "deploy/notifier/calendar.yml (then run make generate)")


def test_onsite_hours_agree_with_the_notifier_calendar() -> None:
    if not NOTIFIER_CALENDAR.is_file():
        pytest.skip("deploy/notifier/calendar.yml is not in this checkout")
    calendar = yaml.safe_load(NOTIFIER_CALENDAR.read_text(encoding="utf-8")) or {}
    ours = [[w.start, w.end] for w in load_thresholds().routing.onsite_hours]
    assert ours == [["07:30", "12:00"], ["14:30", "22:00"]]
    assert [list(span) for span in calendar["onsite_hours"]] == ours
