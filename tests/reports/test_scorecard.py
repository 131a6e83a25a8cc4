"""附件1 of the scripted month: the pre-filled lines against values computed by hand, the xlsx read back."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from einvoice_reports import cli, scorecard
from einvoice_reports.period import parse_period
from openpyxl import load_workbook

from .scripted import NOW

pytestmark = pytest.mark.slow


def test_lines_and_maxima_match_the_contract() -> None:
    assert [line for _, line, _, _, _ in scorecard.lines()] == list(range(1, 26))
    assert sum(top for _, _, _, top, _ in scorecard.lines()) == 100
    maxima = {line: top for _, line, _, top, _ in scorecard.lines()}
    assert [maxima[n] for n in (1, 4, 11, 12, 17, 18, 25)] == [4, 6, 6, 4, 4, 2, 2]
    tiers = [scorecard.payment_tier(v) for v in (100, 90, 89.99, 80, 79.9)]
    assert tiers == ["100%", "100%", "95%", "95%", "90%"]


def _run(args: list[str]) -> int:
    return cli.main(args, now=NOW)


def test_scorecard_prefilled_from_data(tmp_path: Path, scripted_prometheus: str, scripted_store: str) -> None:
    common = ["--period", "2026-11", "--prometheus", scripted_prometheus, "--store", scripted_store,
              "--out", str(tmp_path)]
    # an earlier month fully scored by the bureau: its total joins the yearly sheet
    earlier = scorecard.Scorecard(parse_period("2026-10"), {}, {}, [], [])
    path = tmp_path / "scorecard" / "2026-10.xlsx"
    path.parent.mkdir(parents=True)
    path.write_bytes(scorecard.to_xlsx(earlier))
    book = load_workbook(path)
    for row in range(scorecard.FIRST_ROW, scorecard.FIRST_ROW + 25):
        sheet = book["评分表"]
        sheet.cell(row=row, column=scorecard.SCORE_COL, value=sheet.cell(row=row, column=4).value)
    book["评分表"].cell(row=scorecard.FIRST_ROW, column=scorecard.SCORE_COL, value=3)  # line 1: 4 -> 3
    book.save(path)

    # the daily reports of November in the archive, but for 5 and 6 November; the weekly reports of
    # the five ISO weeks ending in November (W44: 26 Oct - 1 Nov ... W48: 23 - 29 Nov)
    for day in range(1, 31):
        if day not in (5, 6):
            daily = tmp_path / "daily" / f"2026-11-{day:02d}.html"
            daily.parent.mkdir(exist_ok=True)
            daily.write_text("<html></html>", encoding="utf-8")
    for week in range(44, 49):
        weekly = tmp_path / "weekly" / f"2026-W{week}.html"
        weekly.parent.mkdir(exist_ok=True)
        weekly.write_text("<html></html>", encoding="utf-8")
    assert _run(["scorecard", *common, "--no-pdf"]) == 0
    card_html = (tmp_path / "scorecard" / "2026-11.html").read_text(encoding="utf-8")
    # line 10 before the monthly report exists: 36 due (30 daily, 5 weekly, 1 monthly), 33 produced
    assert _score(card_html, 10) == "4.5"
    assert "应提交 36 份，归档中已有 33 份" in card_html and "缺少《系统运行监控报告》2026-11-05" in card_html

    assert _run(["monthly", *common, "--no-pdf"]) == 0
    assert _run(["scorecard", *common]) == 0
    html = (tmp_path / "scorecard" / "2026-11.html").read_text(encoding="utf-8")
    assert _score(html, 4) == "4.5"     # ticket 4 answered 1 h late: one level
    assert _score(html, 5) == "5.0"     # item 06 missed 20-30 Nov, item 20 never ran: two items
    assert _score(html, 9) == "1.5"     # intake late + over 2 h, processing stall late: three levels
    assert _score(html, 10) == "5.0"     # two daily reports missing
    assert _score(html, 11) == "1.24"   # 2 fault days (3 and 10 Nov) of 21 working days: 9.52 points x 0.5
    assert _score(html, 1) == "待评"
    assert "第06项：11 天有检查未运行（首日 11-20，末日 11-30）" in html
    assert "第20项：本月没有检查运行记录（30 天）" in html
    assert "工单 #4（11-20 08:00）响应超时" in html
    assert "工作日 21 天（周一至周五），故障日 2 天，故障率 9.52%" in html
    # lines 6, 7, 12 and 19 from empty registers: nothing to deduct (tests/reports/test_registers_*)
    assert re.search(r'id="prefilled-total">35.24</strong> / 48', html)
    assert "本年此前已评完月份平均分 99.0 分" in html

    book = load_workbook(tmp_path / "scorecard" / "2026-11.xlsx")
    sheet = book["评分表"]
    rows = {sheet.cell(row=r, column=2).value: r
            for r in range(scorecard.FIRST_ROW, scorecard.FIRST_ROW + 25)}
    scores = {line: sheet.cell(row=r, column=scorecard.SCORE_COL).value for line, r in rows.items()}
    filled = {line: v for line, v in scores.items() if v is not None}
    assert filled == {4: 4.5, 5: 5.0, 6: 6.0, 7: 6.0, 9: 1.5, 10: 5.0, 11: 1.24, 12: 4.0, 19: 2.0}
    assert sum(sheet.cell(row=r, column=4).value for r in rows.values()) == 100
    total_row = scorecard.FIRST_ROW + 25
    assert sheet.cell(row=total_row, column=4).value == "=SUM(D4:D28)"
    assert sheet.cell(row=total_row, column=6).value == '=IF(COUNT(F4:F28)=25,SUM(F4:F28),"未评完")'
    assert "故障率 9.52%" in sheet.cell(row=rows[11], column=7).value
    year = book["年度汇总"]
    assert year["B12"].value == 99            # October, from the archived and completed scorecard
    assert year["B13"].value == "=IF(ISNUMBER(评分表!F29),评分表!F29,\"\")"
    assert year["B16"].value == "=IF(COUNT(B3:B14)=0,\"\",AVERAGE(B3:B14))"
    assert "B16>=90" in year["B17"].value and "B16>=80" in year["B17"].value
    assert (tmp_path / "scorecard" / "2026-11.pdf").read_bytes().startswith(b"%PDF")


def _score(html: str, line: int) -> str:
    row = re.search(rf'<tr id="line-{line}"[^>]*>(.*?)</tr>', html, re.S)
    assert row
    cell = re.search(r'data-k="score">(.*?)</td>', row.group(1), re.S)
    assert cell
    return cell.group(1).strip()
