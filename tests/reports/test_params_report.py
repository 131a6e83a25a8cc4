"""《参数配置报告》 on the scripted month: every change, its time, old and new values, the baseline, and
the time in drift, compared with the values written by hand from scripted.write_param_series."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from einvoice_reports import cli
from einvoice_reports.params import build_params
from einvoice_reports.period import parse_period
from einvoice_reports.prom import PrometheusClient

NOW = datetime(2026, 12, 1, 1, 30, tzinfo=UTC)


def cells(row: str) -> dict[str, str]:
    return {k: re.sub(r"<[^>]+>", "", v).strip() for k, v in re.findall(r'data-k="(\w+)"[^>]*>(.*?)</', row)}


def test_month_lists_each_change_with_time_old_new_and_baseline(scripted_prometheus: str, tmp_path: Path):
    code = cli.main(["params", "--period", "2026-11", "--prometheus", scripted_prometheus,
                     "--out", str(tmp_path)], now=NOW)
    assert code == 0
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "params" / "2026-11.pdf"), "-"],
                          capture_output=True, check=True, text=True, timeout=120).stdout
    assert "参数配置报告" in text and "maxmemory-policy" in text and "noeviction" in text
    html = (tmp_path / "params" / "2026-11.html").read_text(encoding="utf-8")
    changes = [cells(row) for row in re.findall(r'<tr class="change">(.*?)</tr>', html, re.S)]
    assert changes == [
        {"at": "2026-11-08 14:00", "param": "maxmemory-policy", "kind": "参数变更", "old": "allkeys-lru",
         "new": "noeviction", "expected": "allkeys-lru", "after": "与基线不一致"},
        {"at": "2026-11-09 10:30", "param": "maxmemory-policy", "kind": "参数变更", "old": "noeviction",
         "new": "allkeys-lru", "expected": "allkeys-lru", "after": "与基线一致"},
        {"at": "2026-11-20 09:00", "param": "http.client_max_body_size", "kind": "参数变更", "old": "20m",
         "new": "50m", "expected": "20m", "after": "与基线不一致"},
        {"at": "2026-11-20 11:00", "param": "http.client_max_body_size", "kind": "基线变更", "old": "50m",
         "new": "50m", "expected": "20m → 50m", "after": "与基线一致"},
    ]
    drifting = [cells(row) for row in re.findall(r'<tr class="drift">(.*?)</tr>', html, re.S)]
    # vm.swappiness drifts the whole month: 30 days
    assert drifting == [{"param": "vm.swappiness", "expected": "1", "value": "60", "drift": "720 小时"}]
    every = {m[0]: cells(m[1]) for m in
             re.findall(r'<tr class="param" data-check="[^"]*" data-param="([^"]+)">(.*?)</tr>', html, re.S)}
    # 8 Nov 14:00 to 9 Nov 10:30 = 20.5 h; 20 Nov 09:00 to 11:00 = 2 h
    assert every["maxmemory-policy"] == {"state": "一致", "drift": "20 小时 30 分", "count": "2"}
    assert every["http.client_max_body_size"] == {"state": "一致", "drift": "2 小时", "count": "2"}
    assert every["maxmemory"] == {"state": "一致", "drift": "0 秒", "count": "0"}
    assert every["vm.swappiness"]["state"] == "不一致"
    summary = cells(re.search(r'<p id="summary">(.*?)</p>', html, re.S).group(1))
    assert summary == {"declared": "4", "drifting": "1", "changes": "4"}


def test_a_day_shows_only_its_own_changes(scripted_prometheus: str):
    report = build_params(parse_period("2026-11-09"), PrometheusClient(scripted_prometheus), NOW)
    assert [(c.at.isoformat(), c.old_value, c.new_value) for c in report.changes] == [
        ("2026-11-09T02:30:00+00:00", "noeviction", "allkeys-lru")]
    policy = next(r for r in report.rows if r.param == "maxmemory-policy")
    assert policy.drift_seconds == pytest.approx(10.5 * 3600)  # 00:00 to 10:30 of that day
    assert report.step == 60


def test_no_param_series_is_an_incomplete_report_not_an_empty_one(scripted_prometheus: str, tmp_path: Path):
    code = cli.main(["params", "--period", "2026-10-01", "--prometheus", scripted_prometheus,
                     "--out", str(tmp_path), "--no-pdf"], now=NOW)
    assert code == 3
    html = (tmp_path / "params" / "2026-10-01.html").read_text(encoding="utf-8")
    assert "数据不完整" in html and "einvoice_param_info" in html
