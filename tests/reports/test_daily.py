"""《系统运行监控报告》 of 12 November in the scripted month."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from einvoice_reports import cli

from .scripted import NOW

pytestmark = pytest.mark.slow


def test_daily_report(tmp_path: Path, scripted_prometheus: str, scripted_store: str) -> None:
    code = cli.main(["daily", "--period", "2026-11-12", "--prometheus", scripted_prometheus,
                     "--store", scripted_store, "--out", str(tmp_path)], now=NOW)
    # only items 01 and 06 have data in the scripted month: the others are named as gaps
    assert code == 3
    html = (tmp_path / "daily" / "2026-11-12.html").read_text(encoding="utf-8")
    assert "系统运行监控报告" in html and "2026 年 11 月 12 日" in html
    assert "数据不完整" in html and "状态未知：02、03、04、05" in html
    statuses = dict(re.findall(r'<tr id="item-(\d\d)">.*?data-k="status"[^>]*>(.*?)</td>', html, re.S))
    assert len(statuses) == 20
    assert statuses["01"] == "正常" and statuses["06"] == "正常" and statuses["20"] == "无数据"
    rows = re.findall(r'<tr class="failure">(.*?)</tr>', html, re.S)
    assert len(rows) == 1
    row = rows[0]
    # failing samples 14:50 .. 15:15 at 300 s, still visible until the 15:20 sample: 14:50 to 15:20
    assert "第06项" in row and "redis_ping" in row and "14:50:00" in row and "15:20:00" in row
    assert re.search(r'data-k="duration">30 分</td>', row)
    assert re.search(r'data-k="reason">超时</td>', row)
    assert re.search(r'data-k="tickets">#3</td>', row)
    assert "本日检查失败 1 次，累计 30 分。" in html
    assert (tmp_path / "daily" / "2026-11-12.pdf").read_bytes().startswith(b"%PDF")


def test_quiet_day(tmp_path: Path, scripted_prometheus: str, scripted_store: str) -> None:
    code = cli.main(["daily", "--period", "2026-11-13", "--prometheus", scripted_prometheus,
                     "--store", scripted_store, "--out", str(tmp_path), "--no-pdf"], now=NOW)
    assert code == 3
    html = (tmp_path / "daily" / "2026-11-13.html").read_text(encoding="utf-8")
    assert "本日无检查失败" in html and "本日无新工单" in html


def test_wrong_period_kind_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["daily", "--period", "2026-11", "--store", "sqlite://", "--out", str(tmp_path)], now=NOW)
    assert code == 2
    assert "系统运行监控报告的周期应为日（如 2026-11-05），收到 2026-11" in capsys.readouterr().err


def test_yearly_report(tmp_path: Path, scripted_prometheus: str, scripted_store: str) -> None:
    """2026 in the scripted data: only October and November have SLA series; the year runs to
    1 January 2027, so intake's down sample at exactly 1 Dec 00:00 counts in the year."""
    now = datetime(2027, 1, 1, 2, tzinfo=UTC)
    code = cli.main(["yearly", "--period", "2026", "--prometheus", scripted_prometheus,
                     "--store", scripted_store, "--out", str(tmp_path), "--no-pdf"], now=now)
    assert code == 3  # January to September have no data: named as gaps
    html = (tmp_path / "yearly" / "2026.html").read_text(encoding="utf-8")
    assert "年度服务报告总结" in html
    assert "1 月：受理服务（intake）：本期没有 einvoice:service_up 数据" in html
    assert "10 月：" not in html and "11 月：" not in html
    row = re.search(r'<tr id="year-intake">(.*?)</tr>', html, re.S).group(1)  # type: ignore[union-attr]
    assert 'data-k="outage">3 小时 45 分</td>' in row          # 3600 + 9600 + 300 s
    assert 'data-k="left">8 小时 15 分</td>' in row
    assert 'data-k="longest">2 小时 30 分</td>' in row
    assert 'data-k="late">2 / 0</td>' in row                   # October's and November's outage
    assert re.search(r'<tr id="month-11">.*?data-k="tickets">6</td>', html, re.S)
    assert re.search(r'<tr id="month-10">.*?data-k="tickets">1</td>', html, re.S)
    assert re.search(r'id="year-tickets">7</td>', html)


def test_health_report_month(tmp_path: Path, scripted_prometheus: str, scripted_store: str) -> None:
    code = cli.main(["health", "--period", "2026-11", "--prometheus", scripted_prometheus,
                     "--store", scripted_store, "--out", str(tmp_path), "--no-pdf"], now=NOW)
    assert code == 0
    html = (tmp_path / "health" / "2026-11.html").read_text(encoding="utf-8")
    assert "专项健康检查报告" in html
    checks = re.findall(r'<tr class="check"><td>第(\d\d)项.*?<td>([a-z_]+)</td>.*?data-k="runs">(\d+)</td>'
                        r'<td class="num" data-k="failures">(\d+)</td>', html, re.S)
    # November: 8640 samples; 06's last run stops changing after 19 Nov 23:55 (5472 samples)
    assert checks == [("01", "domain", "8639", "0"), ("06", "redis_ping", "5471", "6")]
    measures = {(kind, subject): (cells, verdict) for kind, subject, cells, verdict in re.findall(
        r'<tr class="measure"><td>(.*?)</td><td>(.*?)</td>(.*?)data-k="verdict"[^>]*>(.*?)</td>', html, re.S)}
    verdicts = {key: verdict for key, (_, verdict) in measures.items()}
    assert verdicts == {
        ("Redis 内存使用率", "06 · r1"): "上升趋势",
        ("Redis 内存使用率", "06 · r2"): "超过阈值",
        ("Kafka 消费延迟", "14 · g1"): "期间曾超过阈值",
        ("证书剩余有效期", "01 · https://a.example"): "低于阈值",
        ("探测响应时间", "05 · http://intake"): "期间曾超过阈值",
        ("探测响应时间", "20 · http://partner"): "正常",
        ("主机磁盘可用比例", "05 · intake-01:9100 · /"): "低于阈值",
        ("主机内存可用比例", "05 · intake-01:9100"): "正常",
        ("数据库连接使用率", "10 · mysql-health"): "超过阈值",
        ("Elasticsearch 堆内存使用率", "12 · es-prod · es-node-1"): "期间曾超过阈值",
        ("Elasticsearch 磁盘使用率", "12 · es-prod · es-node-1 · /data"): "上升趋势",
    }
    r1 = measures[("Redis 内存使用率", "06 · r1")][0]
    assert re.findall(r">([\d.]+%)</td>", r1) == ["50.0%", "80.0%", "80.0%", "90.0%"]
    cert = measures[("证书剩余有效期", "01 · https://a.example")][0]
    assert "19.0 天" in cert and "30.0 天" in cert
    assert ("未采集（本期没有数据，不能判断为正常）：Elasticsearch 绿色状态占比、主机负载（15 分钟，每核）、"
            "数据库复制延迟") in html
    assert html.count("<li>") >= 5 and "#1" in html


def test_health_report_takes_day_or_month(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["health", "--period", "2026", "--store", "sqlite://", "--out", str(tmp_path)], now=NOW)
    assert code == 2
    err = capsys.readouterr().err
    assert "专项健康检查报告的周期应为日（如 2026-11-05）或月（如 2026-11），收到 2026" in err
