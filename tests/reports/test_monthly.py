"""The monthly report of the scripted month, figure by figure against values computed by hand."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from einvoice_reports import cli, monthly
from einvoice_reports.period import parse_period
from einvoice_reports.prom import PrometheusClient
from einvoice_reports.store import TicketStore

from einvoice_core.thresholds import load_thresholds

from . import scripted
from .scripted import NOW, TAX_ID

pytestmark = pytest.mark.slow


@pytest.fixture
def report(scripted_prometheus: str, scripted_store: str) -> monthly.MonthlyReport:
    return monthly.build_monthly(parse_period("2026-11"), PrometheusClient(scripted_prometheus),
                                 TicketStore(scripted_store), load_thresholds(), NOW)


def test_sla_figures(report: monthly.MonthlyReport) -> None:
    by = {s.service: s for s in report.sla.services}
    intake, processing, pipeline = by["intake"], by["processing"], by["pipeline"]
    # November: 30 days x 288 samples = 8640; intake down 30 + 2 samples (the 1 Dec 00:00 one is December's)
    assert intake.availability == pytest.approx(8608 / 8640)
    assert intake.outage_seconds == 9600
    assert intake.longest_outage_seconds == 9000
    assert intake.outages_over_limit == 1
    assert (intake.restores_late_outage, intake.restores_late_stall) == (1, 0)
    assert intake.ytd_outage_seconds == 3600 + 9600
    assert intake.budget_left_seconds == 43200 - 13200
    assert intake.budget_used_period_ratio == pytest.approx(9600 / 43200)
    assert processing.availability == 1.0
    assert processing.stall_seconds == 2400
    assert processing.outage_seconds == 0
    assert (processing.restores_late_outage, processing.restores_late_stall) == (0, 1)
    assert pipeline.availability == 1.0 and pipeline.outage_seconds == 0 and pipeline.outages_over_limit == 0
    days = dict(intake.daily_availability)
    assert len(days) == 30
    assert days[parse_period("2026-11-03").first] == pytest.approx(1 - 30 / 288)
    assert days[parse_period("2026-11-10").first] == pytest.approx(1 - 2 / 288)
    assert days[parse_period("2026-11-30").first] == 1.0
    assert {d.isoformat(): s for d, s in report.sla.fault_days().items()} == {
        "2026-11-03": 9000, "2026-11-10": 600}
    assert report.gaps == []


def test_application_continuous_running(report: monthly.MonthlyReport) -> None:
    """The last sample before the month's end is 30 Nov 23:55; 6 months = 182 days."""
    last = scripted.LAST.timestamp() - scripted.STEP
    by = {app.instance: app for app in report.sla.apps}
    assert set(by) == {"app1:8080", "container/cl-worker-1"}
    assert by["app1:8080"].uptime_seconds == last - scripted.APP_STARTED
    assert (by["app1:8080"].restarts, by["app1:8080"].meets) == (0, True)
    worker = by["container/cl-worker-1"]
    assert worker.uptime_seconds == last - scripted.WORKER_RESTART  # 10 days 20 h 55 min
    assert (worker.restarts, worker.meets) == (1, False)
    assert worker.required_seconds == 182 * 86400


def test_ticket_figures(report: monthly.MonthlyReport) -> None:
    t = report.tickets
    assert [x.id for x in t.tickets] == [1, 2, 3, 4, 5, 6]
    assert {c.severity_class: c.count for c in t.by_class} == {
        "outage": 1, "stall": 1, "urgent": 1, "general": 2, "routine": 1}
    assert (t.total.response.met, t.total.response.missed, t.total.response.pending) == (5, 1, 0)
    assert (t.total.resolution.met, t.total.resolution.missed, t.total.resolution.pending) == (3, 2, 1)
    assert t.total.mtta_seconds == (300 + 480 + 3600 + 10800 + 1800 + 1800) / 6
    assert t.total.mttr_seconds == (9000 + 2400 + 7200 + 14400 + 3600) / 5
    assert t.by_class_item == {("outage", "05"): 1, ("stall", "11"): 1, ("urgent", "06"): 1,
                               ("general", "06"): 2, ("routine", "06"): 1}
    # closed in November: 1, 2, 3, 4, 6 and October's 7; locally (ticked, not escalated): 3, 6, 7
    assert (t.rates.closed, t.rates.closed_locally) == (6, 3)
    # resolved in November: 1, 2, 3, 4, 6; 3 recurred (ticket 6)
    assert (t.rates.resolved, t.rates.recurred) == (5, 1)
    assert [(m.isoformat(), n) for m, n in t.weekly] == [
        ("2026-10-26", 0), ("2026-11-02", 2), ("2026-11-09", 1), ("2026-11-16", 1), ("2026-11-23", 2),
        ("2026-11-30", 0)]
    assert [x.id for x in t.missed] == [1, 2, 4]


def test_recommendations_follow_the_data(report: monthly.MonthlyReport) -> None:
    text = "\n".join(report.recommendations)
    assert "受理服务本期可用率 99.630%，低于合同年度目标 99.863%" in text
    assert "受理服务本期有 1 次单次宕机超过 2 小时" in text and "最长一次 2 小时 30 分" in text
    assert "受理服务本期有 1 次故障未在 30 分钟内恢复（宕机 1 次、卡顿 0 次）" in text
    assert "处理服务本期有 1 次故障未在 30 分钟内恢复（宕机 0 次、卡顿 1 次）" in text
    assert "处理服务本期卡顿累计 40 分" in text
    assert "本期有 1 张工单未在响应时限内响应" in text
    assert "本期有 2 张工单未在解决时限内解决" in text
    assert "本级解决率 50.0%，低于合同要求的 80%" in text
    assert "有 1 张的问题在 30 天内再次发生" in text
    assert "第06项（外网日志内存数据库运行情况检查）本期工单 4 张" in text
    assert "数据管道" not in text
    assert "年度宕机预算" not in text  # 69 % left, above the 25 % warning


def _cell(html: str, row_id: str, key: str) -> str:
    row = re.search(rf'<tr id="{row_id}">(.*?)</tr>', html, re.S)
    assert row, row_id
    cell = re.search(rf'data-k="{key}">(.*?)</td>', row.group(1), re.S)
    assert cell, (row_id, key)
    return cell.group(1).strip()


def test_command_writes_html_and_pdf(tmp_path: Path, scripted_prometheus: str, scripted_store: str) -> None:
    code = cli.main(["monthly", "--period", "2026-11", "--prometheus", scripted_prometheus,
                     "--store", scripted_store, "--out", str(tmp_path)], now=NOW)
    assert code == 0
    html = (tmp_path / "monthly" / "2026-11.html").read_text(encoding="utf-8")
    assert "月度系统运维报告" in html and "2026 年 11 月" in html and "2026-12-01 09:30:00" in html
    assert _cell(html, "svc-intake", "availability") == "99.630%"
    assert _cell(html, "svc-intake", "outage") == "2 小时 40 分"
    assert _cell(html, "svc-intake", "longest") == "2 小时 30 分"
    assert _cell(html, "svc-intake", "over-limit") == "1"
    assert _cell(html, "svc-intake", "late") == "1 / 0"
    assert _cell(html, "svc-processing", "stall") == "40 分"
    assert _cell(html, "svc-processing", "late") == "0 / 1"
    assert _cell(html, "svc-pipeline", "availability") == "100.000%"
    assert _cell(html, "budget-intake", "used-period") == "2 小时 40 分（22.2%）"
    assert _cell(html, "budget-intake", "ytd") == "3 小时 40 分"
    assert _cell(html, "budget-intake", "left") == "8 小时 20 分"
    assert _cell(html, "budget-intake", "left-ratio") == "69.4%"
    assert _cell(html, "class-total", "count") == "6"
    assert _cell(html, "class-total", "response") == "5 / 1 / 0"
    assert _cell(html, "class-total", "resolution") == "3 / 2 / 1"
    assert _cell(html, "class-total", "mtta") == "52 分 10 秒"
    assert _cell(html, "class-total", "mttr") == "2 小时 2 分"
    assert _cell(html, "class-general", "count") == "2"
    assert _cell(html, "item-06", "total") == "4"
    assert re.search(r'id="local-ratio">50.0%（3 / 6）', html)
    assert re.search(r'id="one-time-ratio">80.0%（4 / 5）', html)
    assert html.count("<svg") == 2
    assert TAX_ID not in html
    pdf = tmp_path / "monthly" / "2026-11.pdf"
    _check_pdf(pdf, "月度系统运维报告", tmp_path)


def _check_pdf(pdf: Path, title: str, tmp: Path) -> None:
    assert pdf.read_bytes().startswith(b"%PDF")
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, check=True,
                          text=True).stdout
    assert title in text.replace(" ", "")
    assert re.search(r"第\s*2\s*页，共\s*\d+\s*页", text)
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, check=True, text=True).stdout
    assert "NotoSansCJK" in fonts.replace("-", "") and " yes yes " in fonts
    subprocess.run(["pdftoppm", "-f", "1", "-l", "1", "-r", "30", "-gray", str(pdf), str(tmp / "page")],
                   check=True, capture_output=True)
    page = next(tmp.glob("page*.pgm")).read_bytes()
    pixels = page.split(b"\n", 3)[3]
    dark = sum(1 for value in pixels if value < 128)
    assert dark > 50, "page 1 is blank"


def test_unreachable_prometheus_fails_with_reason(tmp_path: Path, scripted_store: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support.procs import free_port

    code = cli.main(["monthly", "--period", "2026-11", "--prometheus", f"http://127.0.0.1:{free_port()}",
                     "--store", scripted_store, "--out", str(tmp_path), "--no-pdf"], now=NOW)
    assert code == 2
    assert "数据源不可用：Prometheus" in capsys.readouterr().err
    assert not (tmp_path / "monthly").exists()


def test_empty_prometheus_marks_report_incomplete(tmp_path: Path, scripted_prometheus: str,
                                                  scripted_store: str) -> None:
    code = cli.main(["monthly", "--period", "2025-11", "--prometheus", scripted_prometheus,
                     "--store", scripted_store, "--out", str(tmp_path), "--no-pdf"], now=NOW)
    assert code == 3
    html = (tmp_path / "monthly" / "2025-11.html").read_text(encoding="utf-8")
    assert "数据不完整" in html and "受理服务（intake）：本期没有 einvoice:service_up 数据" in html
