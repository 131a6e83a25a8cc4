"""The drill report, the per-system table of the monthly report and the yearly drill count (issue 19),
on a backfilled Prometheus holding a scripted drill night, figure by figure against hand computations.

The night (Asia/Shanghai), one sample every 30 s from 14 Nov 2026 21:00 (n = 0) to 15 Nov 03:00
(n = 720); the drill window is 22:00 (n = 120) to 00:00 (n = 360):
- check proc_http (item 10, system public_service) fails at n = 140..189 (22:10:00..22:34:30);
  check partner (item 20) fails all night: it was failing before the drill, so it is not the fault;
- processing is down (einvoice:service_up 0) at n = 141..190 (22:10:30..22:35:00), up at 22:35:30:
  50 steps of 30 s = 1500 s, all inside the window (drill outage);
- pipeline is down at n = 500..519 (01:10:00..01:19:30), after the window: 600 s against the budget;
- ALERTS: EinvoiceCheckFailing{item="10"} pending at n = 140, 141, firing from n = 142 (22:11:00) with
  drill="true"; EinvoiceServiceOutage{service="processing"} firing from n = 143 (22:11:30), drill;
  EinvoiceCheckFailing{item="20"} firing all night (drill="true" only inside the window: its identity
  changes at the edges, it is still the same alert); EinvoiceServiceOutage{service="pipeline"} firing
  at n = 502..520, after the window.
Hand figures: fault start 22:10:00 (proc_http); first alert 22:11:00 -> detection 60 s; recovery
22:35:30 -> 1530 s (25 min 30 s, under 30 min); drill outage processing 1500 s, public_service 1500 s,
invoice_mgmt 0 s.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from einvoice_notifier.db import make_engine, migrate
from einvoice_reports import cli, drill, monthly, yearly
from einvoice_reports.period import parse_period
from einvoice_reports.prom import PrometheusClient
from einvoice_reports.store import TicketStore

from einvoice_core.thresholds import load_drill_windows, load_thresholds

from .promfill import OpenMetricsWriter, backfilled_prometheus

pytestmark = pytest.mark.slow

TZ = ZoneInfo("Asia/Shanghai")
STEP = 30
T0 = datetime(2026, 11, 14, 21, 0, tzinfo=TZ).timestamp()
N = 721
NOW = datetime(2026, 12, 1, 1, 30, tzinfo=UTC)
DRILL = "2026 年下半年容灾演练"
WINDOWS = f"""windows:
  - {{name: {DRILL}, start: "2026-11-14T22:00:00", end: "2026-11-15T00:00:00"}}
  - {{name: 2026 年末补充演练, start: "2026-12-20T22:00:00", end: "2026-12-21T01:00:00"}}
  - {{name: 2027 年上半年容灾演练, start: "2027-04-17T22:00:00", end: "2027-04-18T02:00:00"}}
"""


def _t(n: int) -> float:
    return T0 + n * STEP


def _write(path: Path) -> Path:
    w = OpenMetricsWriter(path)
    every = range(N)
    in_drill = set(range(120, 360))
    check = {"item": "10", "zone": "intranet", "check": "proc_http", "target": "http://proc:8080/health",
             "system": "public_service"}
    partner = {"item": "20", "zone": "extranet", "check": "partner", "target": "https://partner.example",
               "system": "public_service"}
    w.series("einvoice_check_up", check, [(_t(n), 0 if 140 <= n < 190 else 1) for n in every])
    w.series("einvoice_check_up", partner, [(_t(n), 0) for n in every])
    down = {"intake": set(), "processing": set(range(141, 191)), "pipeline": set(range(500, 520))}
    for service, gone in down.items():
        labels = {"service": service}
        w.series("einvoice:service_up", labels, [(_t(n), 0 if n in gone else 1) for n in every])
        w.series("einvoice:service_sla_up", labels,
                 [(_t(n), 0 if n in gone - in_drill else 1) for n in every])
        w.series("einvoice:service_outage_step_seconds", labels,
                 [(_t(n), STEP if n in gone and n > 0 else 0) for n in every])
        w.series("einvoice:service_drill_outage_step_seconds", labels,
                 [(_t(n), STEP if n in gone & in_drill else 0) for n in every])
    systems = {"public_service": down["processing"] | down["pipeline"], "invoice_mgmt": down["pipeline"]}
    for system, gone in systems.items():
        labels = {"system": system}
        w.series("einvoice:system_up", labels, [(_t(n), 0 if n in gone else 1) for n in every])
        w.series("einvoice:system_sla_up", labels, [(_t(n), 0 if n in gone - in_drill else 1) for n in every])
        w.series("einvoice:system_outage_step_seconds", labels,
                 [(_t(n), STEP if n in gone else 0) for n in every])
        w.series("einvoice:system_drill_outage_step_seconds", labels,
                 [(_t(n), STEP if n in gone & in_drill else 0) for n in every])
    alerts = [
        ({"alertname": "EinvoiceCheckFailing", "alertstate": "pending", "item": "10", "check": "proc_http",
          "severity": "critical", "drill": "true"}, range(140, 142)),
        ({"alertname": "EinvoiceCheckFailing", "alertstate": "firing", "item": "10", "check": "proc_http",
          "severity": "critical", "drill": "true"}, range(142, 191)),
        ({"alertname": "EinvoiceServiceOutage", "alertstate": "firing", "service": "processing",
          "severity": "critical", "drill": "true"}, range(143, 192)),
        ({"alertname": "EinvoiceCheckFailing", "alertstate": "firing", "item": "20", "check": "partner",
          "severity": "warning"}, [n for n in every if n not in in_drill]),
        ({"alertname": "EinvoiceCheckFailing", "alertstate": "firing", "item": "20", "check": "partner",
          "severity": "warning", "drill": "true"}, sorted(in_drill)),
        ({"alertname": "EinvoiceServiceOutage", "alertstate": "firing", "service": "pipeline",
          "severity": "critical"}, range(502, 521)),
    ]
    for labels, span in alerts:
        w.series("ALERTS", labels, [(_t(n), 1) for n in span])
    w.close()
    return path


@pytest.fixture(scope="module")
def prom_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("drillprom")
    with backfilled_prometheus(tmp, _write(tmp / "drill.om")) as url:
        yield url


@pytest.fixture
def windows_file(tmp_path: Path) -> Path:
    path = tmp_path / "drill_windows.yml"
    path.write_text(WINDOWS, encoding="utf-8")
    return path


@pytest.fixture
def empty_store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'tickets.db'}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    return url


def _local(ts: datetime) -> str:
    return ts.astimezone(TZ).strftime("%H:%M:%S")


def test_drill_figures(prom_url: str, windows_file: Path) -> None:
    th = load_thresholds()
    window = drill.find_window(load_drill_windows(windows_file), DRILL)
    report = drill.build_drill(window, PrometheusClient(prom_url), th, NOW)
    assert _local(report.fault_start) == "22:10:00"
    assert report.fault_from_check == "10 · proc_http · http://proc:8080/health"
    assert report.first_alert is not None
    assert (report.first_alert.alertname, _local(report.first_alert.first_firing)) == (
        "EinvoiceCheckFailing", "22:11:00")
    assert report.detection_seconds == 60
    assert report.services_down == ["processing"]
    assert report.recovered_at is not None and _local(report.recovered_at) == "22:35:30"
    assert report.recovery_seconds == 1530
    assert report.service_outage == {"intake": 0, "processing": 1500, "pipeline": 0}
    assert report.system_outage == {"public_service": 1500, "invoice_mgmt": 0}
    seen = [(a.alertname, a.labels.get("item") or a.labels.get("service"), _local(a.first_firing),
             a.marked_drill, a.before_window) for a in report.alerts]
    # the pipeline outage began after the window: not an alert of the drill
    # item 20 was firing before the window: seen from the start of the 5-minute look back
    assert seen == [("EinvoiceCheckFailing", "20", "21:55:00", True, True),
                    ("EinvoiceCheckFailing", "10", "22:11:00", True, False),
                    ("EinvoiceServiceOutage", "processing", "22:11:30", True, False)]
    assert report.gaps == []
    assert report.label == "drill-20261114T2200"


def _cell(html: str, row_id: str, key: str) -> str:
    row = re.search(rf'<tr id="{row_id}">(.*?)</tr>', html, re.S)
    assert row, row_id
    cell = re.search(rf'data-k="{key}"[^>]*>(.*?)</td>', row.group(1), re.S)
    assert cell, (row_id, key)
    return cell.group(1).strip()


def _by_id(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}">(.*?)</', html, re.S)
    assert found, element_id
    return found.group(1).strip()


def test_drill_command_writes_html_and_pdf(tmp_path: Path, prom_url: str, windows_file: Path) -> None:
    code = cli.main(["drill", "--window", DRILL, "--drill-windows", str(windows_file),
                     "--prometheus", prom_url, "--out", str(tmp_path)], now=NOW)
    assert code == 0
    html = (tmp_path / "drill" / "drill-20261114T2200.html").read_text(encoding="utf-8")
    assert "容灾演练报告" in html and DRILL in html
    assert _by_id(html, "window") == "2026-11-14 22:00 至 2026-11-15 00:00"
    assert _by_id(html, "fault-start").startswith("2026-11-14 22:10:00（10 · proc_http")
    assert _by_id(html, "detection") == "1 分"
    assert _by_id(html, "recovered") == "2026-11-14 22:35:30"
    assert _by_id(html, "recovery") == "25 分 30 秒"
    assert _by_id(html, "services-down") == "处理服务"
    assert _cell(html, "svc-processing", "outage") == "25 分"
    assert _cell(html, "sys-public_service", "outage") == "25 分"
    assert _cell(html, "sys-e_signature", "outage") == "无监控数据"
    assert _cell(html, "alert-1", "drill") == "演练前已触发"
    assert _cell(html, "alert-2", "drill") == 'drill="true"'
    pdf = (tmp_path / "drill" / "drill-20261114T2200.pdf")
    assert pdf.read_bytes().startswith(b"%PDF")
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, check=True,
                          text=True).stdout.replace(" ", "")
    assert "容灾演练报告" in text and "25分30秒" in text


def test_drill_command_refuses_unknown_and_unfinished_windows(
        tmp_path: Path, prom_url: str, windows_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--drill-windows", str(windows_file), "--prometheus", prom_url, "--out", str(tmp_path)]
    assert cli.main(["drill", "--window", "不存在", *base], now=NOW) == 2
    err = capsys.readouterr().err
    assert "没有名为“不存在”的演练窗口" in err and DRILL in err
    assert cli.main(["drill", "--window", "2026 年末补充演练", *base], now=NOW) == 2
    assert "尚未结束" in capsys.readouterr().err
    assert not (tmp_path / "drill").exists()


def test_monthly_report_gives_each_system_and_keeps_drill_outage_apart(
        tmp_path: Path, prom_url: str, empty_store: str) -> None:
    report = monthly.build_monthly(parse_period("2026-11"), PrometheusClient(prom_url),
                                   TicketStore(empty_store), load_thresholds(), NOW)
    services = {s.service: s for s in report.sla.services}
    # processing was down 50 samples, all in the drill: full SLA availability, no budget used
    assert services["processing"].availability == 1.0
    assert (services["processing"].outage_seconds, services["processing"].drill_outage_seconds) == (0, 1500)
    assert services["processing"].ytd_outage_seconds == 0
    assert services["pipeline"].availability == pytest.approx(701 / 721)
    assert (services["pipeline"].outage_seconds, services["pipeline"].drill_outage_seconds) == (600, 0)
    assert report.sla.fault_days() == {parse_period("2026-11-15").first: 600}
    systems = {y.system: y for y in report.sla.systems}
    assert list(systems) == list(load_thresholds().systems)
    public, invoice = systems["public_service"], systems["invoice_mgmt"]
    assert public.availability == pytest.approx(701 / 721)
    assert (public.outage_seconds, public.drill_outage_seconds, public.ytd_outage_seconds) == (600, 1500, 600)
    assert invoice.availability == pytest.approx(701 / 721)
    assert (invoice.outage_seconds, invoice.drill_outage_seconds) == (600, 0)
    assert systems["ofd_front"].availability is None and systems["e_signature"].availability is None
    assert not systems["e_signature"].vendor_scope
    text = "\n".join(report.recommendations)
    assert "增值税电子发票公共服务平台本期可用率 97.226%" in text
    assert "增值税发票管理系统2.0本期可用率 97.226%" in text

    code = cli.main(["monthly", "--period", "2026-11", "--prometheus", prom_url, "--store", empty_store,
                     "--out", str(tmp_path), "--no-pdf"], now=NOW)
    assert code in (0, 3)
    html = (tmp_path / "monthly" / "2026-11.html").read_text(encoding="utf-8")
    assert _cell(html, "sys-public_service", "availability") == "97.226%"
    assert _cell(html, "sys-public_service", "outage") == "10 分"
    assert _cell(html, "sys-public_service", "drill") == "25 分"
    assert _cell(html, "sys-e_signature", "availability") == "无监控数据"
    assert _cell(html, "sys-e_signature", "scope") == "技术支持"
    assert _cell(html, "svc-processing", "drill") == "25 分"
    assert _cell(html, "svc-processing", "outage") == "0 秒"


def test_yearly_report_counts_the_drills(tmp_path: Path, prom_url: str, empty_store: str,
                                         windows_file: Path) -> None:
    th = load_thresholds()
    figures = drill.drill_year(load_drill_windows(windows_file), 2026, th, NOW)
    assert [w.name for w, _, _ in figures.declared] == [DRILL, "2026 年末补充演练"]
    assert (figures.held, figures.required, figures.met) == (1, 2, False)
    code = cli.main(["yearly", "--period", "2026", "--prometheus", prom_url, "--store", empty_store,
                     "--drill-windows", str(windows_file), "--out", str(tmp_path), "--no-pdf"], now=NOW)
    assert code in (0, 3)
    html = (tmp_path / "yearly" / "2026.html").read_text(encoding="utf-8")
    count = re.search(r'<p id="drill-count"[^>]*>(.*?)</p>', html, re.S)
    assert count and count.group(1).startswith("本年度已进行 1 次，登记 2 次，要求 2 次：未满足")
    assert "处理服务 25 分" in count.group(1)
    assert _cell(html, "drill-1", "state") == "已进行" and _cell(html, "drill-2", "state") == "未进行"
    assert "2027 年上半年容灾演练" not in html
    assert _cell(html, "year-sys-public_service", "availability") == "97.226%"
    assert _cell(html, "year-sys-public_service", "drill") == "25 分"
    assert _cell(html, "year-sys-ofd_front", "availability") == "无监控数据"
    report = yearly.build_yearly(parse_period("2026"), PrometheusClient(prom_url), TicketStore(empty_store),
                                 th, NOW)
    assert report.drills is not None and report.drills.declared == []


def test_drill_without_a_failing_check_is_measured_from_the_window_start(prom_url: str,
                                                                         tmp_path: Path) -> None:
    """Window 01:05-01:15 on 15 Nov: pipeline is down 01:10:00-01:19:30 (n = 500..519) with no check
    series of its own, so the fault is taken from the window's start; its outage alert fires at
    01:11:00 (n = 502); it is up again at 01:20:00 (n = 520), after the window; 10 of its 20 down
    steps lie inside the window. A quiet window (02:00-02:30) has no fault, no new alert."""
    path = tmp_path / "w.yml"
    path.write_text('windows:\n'
                    '  - {name: 管道切换演练, start: "2026-11-15T01:05:00", end: "2026-11-15T01:15:00"}\n'
                    '  - {name: 无事演练, start: "2026-11-15T02:00:00", end: "2026-11-15T02:30:00"}\n',
                    encoding="utf-8")
    th = load_thresholds()
    windows = load_drill_windows(path)
    prom = PrometheusClient(prom_url)
    report = drill.build_drill(drill.find_window(windows, "管道切换演练"), prom, th, NOW)
    assert (_local(report.fault_start), report.fault_from_check) == ("01:05:00", None)
    assert report.first_alert is not None and report.first_alert.labels["service"] == "pipeline"
    assert report.detection_seconds == 360
    assert report.services_down == ["pipeline"]
    assert report.recovered_at is not None and _local(report.recovered_at) == "01:20:00"
    assert report.recovery_seconds == 900
    assert report.service_outage["pipeline"] == 300 and report.system_outage["invoice_mgmt"] == 300
    quiet = drill.build_drill(drill.find_window(windows, "无事演练"), PrometheusClient(prom_url), th, NOW)
    assert quiet.first_alert is None and quiet.detection_seconds is None
    assert quiet.services_down == [] and quiet.recovered_at is None and quiet.recovery_seconds is None
    assert [(a.alertname, a.before_window) for a in quiet.alerts] == [("EinvoiceCheckFailing", True)]
    assert quiet.service_outage == {"intake": 0, "processing": 0, "pipeline": 0} and quiet.gaps == []
    code = cli.main(["drill", "--window", "无事演练", "--drill-windows", str(path), "--prometheus", prom_url,
                     "--out", str(tmp_path / "out"), "--no-pdf"], now=NOW)
    assert code == 0
    html = (tmp_path / "out" / "drill" / "drill-20261115T0200.html").read_text(encoding="utf-8")
    assert _by_id(html, "recovered") == "服务未中断" and _by_id(html, "detection") == "—"
    assert "演练期间没有新的告警触发" in html
