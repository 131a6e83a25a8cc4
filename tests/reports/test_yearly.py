"""《年度服务报告总结》 on the scripted year: the year's figures and each month's row, written by hand
from scripted.py (samples every 300 s on 15 October and from 1 November 00:00 to 1 December 00:00
inclusive: 288 + 8641 = 8929 samples; intake down 12 + 30 + 2 + 1 = 45 of them)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from einvoice_reports import cli

NOW = datetime(2027, 1, 1, 2, tzinfo=UTC)  # 1 January 2027 10:00 local: the whole year is over


@pytest.fixture
def html(tmp_path: Path, scripted_prometheus: str, scripted_store: str) -> str:
    code = cli.main(["yearly", "--period", "2026", "--prometheus", scripted_prometheus,
                     "--store", scripted_store, "--out", str(tmp_path), "--no-pdf"], now=NOW)
    assert code == 3  # January to September have no SLA series: named as gaps, not shown as 100 %
    return (tmp_path / "yearly" / "2026.html").read_text(encoding="utf-8")


def _cells(html: str, row_id: str) -> list[str]:
    row = re.search(rf'<tr id="{row_id}">(.*?)</tr>', html, re.S)
    assert row, row_id
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in cells]


def test_year_figures(html: str) -> None:
    intake = _cells(html, "year-intake")
    # 8884 / 8929 = 99.496 %; 45 x 300 s = 3 h 45 min of the 12 h budget: 8 h 15 min left; the longest
    # 30 samples (3 Nov) = 2 h 30 min, the one over 2 h; late restores: 15 Oct (1 h) and 3 Nov
    assert intake == ["受理服务", "99.496%", "3 小时 45 分", "8 小时 15 分", "2 小时 30 分", "1", "2 / 0",
                      "0 秒"]
    processing = _cells(html, "year-processing")
    # never down; stalled 8 samples on 5 Nov (40 min), restored after 30 min once
    assert processing == ["处理服务", "100.000%", "0 秒", "12 小时", "0 秒", "0", "0 / 1", "40 分"]
    assert re.search(r'id="year-tickets">7</td>', html)  # tickets 1-7 all began in 2026
    # closed in 2026: 1, 2, 3, 4, 6, 7; locally and never escalated: 3, 6, 7 -> 50 %
    # resolved in 2026: the same six; ticket 3 recurred (6) -> 5 of 6 = 83.3 %
    assert re.search(r'id="year-local">50.0%</td>', html)
    assert re.search(r'id="year-one-time">83.3%</td>', html)


def test_month_rows(html: str) -> None:
    # October: 288 samples, 12 down -> 276/288 = 95.833 %, 1 h; ticket 7 began 30 Oct and was resolved
    # that day, closed 2 Nov: none closed in October (—), one resolved and not recurred (100 %)
    assert _cells(html, "month-10") == ["10 月", "95.833%", "1 小时", "100.000%", "0 秒", "100.000%", "0 秒",
                                        "1", "—", "100.0%"]
    # November: 8640 samples, 32 down -> 99.630 %, 2 h 40 min; tickets 1-6; 本级 3 of 6 closed (3, 6, 7)
    # = 50 %; resolved 1, 2, 3, 4, 6 with 3 recurred -> 80 %
    assert _cells(html, "month-11") == ["11 月", "99.630%", "2 小时 40 分", "100.000%", "0 秒", "100.000%",
                                        "0 秒", "6", "50.0%", "80.0%"]
    # December: only the 1 Dec 00:00 sample, intake down in it: 0 %, 5 min
    assert _cells(html, "month-12") == ["12 月", "0.000%", "5 分", "100.000%", "0 秒", "100.000%", "0 秒",
                                        "0", "—", "—"]
    assert _cells(html, "month-1")[1:3] == ["—", "0 秒"]
    assert "1 月：受理服务（intake）：本期没有 einvoice:service_up 数据" in html
    assert "10 月：" not in html and "12 月：" not in html
    assert html.count('<svg xmlns="http://www.w3.org/2000/svg"') == 2  # availability and tickets by month
