"""Scorecard line 11 on official working days: the notifier's calendar file (holidays and make-up
workdays, 调休) decides which days count, with the figures worked out by hand for the scripted month."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from einvoice_reports import cli

from .scripted import NOW

CALENDAR = """\
timezone: Asia/Shanghai
holidays:
  - {start: 2026-11-02, end: 2026-11-06, name: 测试长假}
  - {date: 2026-11-07, name: 周末的节日}
makeup_workdays: [2026-11-01, 2026-11-14]
"""


def _line11(html: str) -> tuple[str, str]:
    row = re.search(r'<tr id="line-11"[^>]*>(.*?)</tr>', html, re.S)
    assert row
    score = re.search(r'data-k="score">(.*?)</td>', row.group(1), re.S)
    assert score
    return score.group(1).strip(), row.group(1)


def test_holidays_and_makeup_workdays_change_the_fault_rate(tmp_path: Path, scripted_prometheus: str,
                                                           scripted_store: str) -> None:
    calendar = tmp_path / "calendar.yml"
    calendar.write_text(CALENDAR, encoding="utf-8")
    code = cli.main(["scorecard", "--period", "2026-11", "--prometheus", scripted_prometheus, "--store",
                     scripted_store, "--out", str(tmp_path / "a"), "--no-pdf", "--calendar", str(calendar)],
                    now=NOW)
    assert code == 0
    score, row = _line11((tmp_path / "a" / "scorecard" / "2026-11.html").read_text(encoding="utf-8"))
    # November 2026: 21 weekdays; 2-6 Nov (5 weekdays) are holidays, 7 Nov is a Saturday holiday (no
    # weekday lost); Sunday 1 and Saturday 14 are worked: 21 - 5 + 2 = 18 working days. Intake was down
    # on 3 Nov (a holiday now: not counted) and 10 Nov: 1 fault day. 1/18 = 5.56 %, x 0.5 = 2.78 points
    # off 6: 3.22.
    assert score == "3.22"
    assert "工作日 18 天（周一至周五，扣除节假日 5 天，加调休上班 2 天），故障日 1 天，故障率 5.56%" in row
    assert "11-01 调休上班" in row and "11-03 节假日" in row


def test_without_a_calendar_working_days_are_monday_to_friday(tmp_path: Path, scripted_prometheus: str,
                                                             scripted_store: str) -> None:
    code = cli.main(["scorecard", "--period", "2026-11", "--prometheus", scripted_prometheus, "--store",
                     scripted_store, "--out", str(tmp_path), "--no-pdf"], now=NOW)
    assert code == 0
    score, row = _line11((tmp_path / "scorecard" / "2026-11.html").read_text(encoding="utf-8"))
    assert score == "1.24" and "工作日 21 天（周一至周五），故障日 2 天" in row  # 2/21 = 9.52 %


@pytest.mark.parametrize(("text", "message"), [
    ("makeup_workdays: [2026-11-09]\n", "2026-11-09 is a weekday"),
    ("holidays: [{date: 2026-11-08}]\nmakeup_workdays: [2026-11-08]\n", "also listed as a holiday"),
])
def test_a_wrong_calendar_stops_the_scorecard_with_the_reason(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str) -> None:
    calendar = tmp_path / "calendar.yml"
    calendar.write_text(text, encoding="utf-8")
    code = cli.main(["scorecard", "--period", "2026-11", "--prometheus", "http://127.0.0.1:1",
                     "--out", str(tmp_path), "--no-pdf", "--calendar", str(calendar)], now=NOW)
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "scorecard").exists()
