"""Memory and disk trends of the health report (charts where people look): per-day peaks of Redis
memory, Elasticsearch heap and disk in the scripted month, compared with the values the scripted
series were written with (scripted.write_health_series), and the charts in the page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from einvoice_reports import cli
from einvoice_reports.health import build_health
from einvoice_reports.period import parse_period
from einvoice_reports.prom import PrometheusClient
from einvoice_reports.store import TicketStore

from einvoice_core.thresholds import load_thresholds

from .scripted import NOW


def test_month_trends_are_daily_peaks(scripted_prometheus: str, scripted_store: str) -> None:
    report = build_health(parse_period("2026-11"), PrometheusClient(scripted_prometheus),
                          TicketStore(scripted_store), load_thresholds(), NOW)
    trends = {t.title: t for t in report.trends}
    assert list(trends) == ["Redis 内存使用率", "Elasticsearch 堆内存使用率", "Elasticsearch 磁盘使用率"]
    disk = trends["Elasticsearch 磁盘使用率"]
    assert disk.labels[0] == "11/1" and disk.labels[-1] == "11/30" and len(disk.labels) == 30
    assert disk.threshold == 0.85
    ((name, values),) = disk.lines
    assert name == "12 · es-prod · es-node-1 · /data"
    assert values == pytest.approx([0.40 + 0.01 * d for d in range(1, 31)])  # day d: 40 % + d %
    ((_, heap),) = trends["Elasticsearch 堆内存使用率"].lines
    assert heap == pytest.approx([0.95 if d == 15 else 0.5 for d in range(1, 31)])  # the spike on 15 Nov
    redis = dict(trends["Redis 内存使用率"].lines)
    assert list(redis) == ["06 · r2", "06 · r1"]  # highest peak first
    assert redis["06 · r2"] == pytest.approx([0.95] * 30)
    # r1 rises linearly 50 % -> 80 % through November; a day's peak is its last sample (23:55)
    month = 30 * 86400
    assert redis["06 · r1"] == pytest.approx([0.5 + 0.3 * (d * 86400 - 300) / month for d in range(1, 31)])
    verdicts = {(m.kind, m.subject): m.verdict for m in report.measures}
    assert verdicts[("Elasticsearch 堆内存使用率", "12 · es-prod · es-node-1")] == "期间曾超过阈值"
    assert verdicts[("Elasticsearch 磁盘使用率", "12 · es-prod · es-node-1 · /data")] == "上升趋势"


def test_day_trends_are_hourly_and_charts_are_in_the_page(tmp_path: Path, scripted_prometheus: str,
                                                          scripted_store: str) -> None:
    report = build_health(parse_period("2026-11-15"), PrometheusClient(scripted_prometheus),
                          TicketStore(scripted_store), load_thresholds(), NOW)
    heap = next(t for t in report.trends if t.title == "Elasticsearch 堆内存使用率")
    assert heap.labels == [f"{h}时" for h in range(24)]
    ((_, values),) = heap.lines
    # hour h holds the samples h:00 to h:55 (each point of the 5-minute subquery takes the sample at
    # or before it): the 12:00 sample is in hour 12
    assert values == pytest.approx([0.95 if h == 12 else 0.5 for h in range(24)])
    code = cli.main(["health", "--period", "2026-11", "--prometheus", scripted_prometheus,
                     "--store", scripted_store, "--out", str(tmp_path)], now=NOW)
    assert code == 0
    html = (tmp_path / "health" / "2026-11.html").read_text(encoding="utf-8")
    charts = re.findall(r'<div class="chart trend" data-title="([^"]+)"><svg', html)
    assert charts == ["Redis 内存使用率", "Elasticsearch 堆内存使用率", "Elasticsearch 磁盘使用率"]
    assert (tmp_path / "health" / "2026-11.pdf").read_bytes().startswith(b"%PDF")
