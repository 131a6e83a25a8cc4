"""Benchmark: render the monthly report and the scorecard over a month of 300 checks at 30 s.

Backfills a real Prometheus (promtool tsdb create-blocks-from openmetrics) with, for the month of
November 2026 at 30 s: the three services' SLA series (up, stalled, outage/stall step and current
seconds, with one outage and one stall) and, for CHECKS checks spread over the 20 items,
einvoice_check_up, einvoice_check_last_run_timestamp_seconds and einvoice:item_up; fills a SQLite
ticket store with a few hundred tickets; then times `einvoice-report monthly` and `scorecard`
(HTML and PDF). Not a test: it prints the times. The samples are written one file per day and
backfilled two files at a time (promtool reads its whole input once per 2-hour block).

Measured 2026-12-06 (quiet 2-core machine, defaults): backfill 117 s, monthly 4.3 s, scorecard 2.9 s,
daily 0.4 s (HTML + PDF each).

    .venv/bin/python -m benchmarks.reports_month [--checks 300] [--days 30] [--tickets 300] [--archive DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from einvoice_notifier.db import make_engine, migrate, tickets, to_db
from einvoice_reports import cli
from einvoice_reports.monthly import build_monthly
from einvoice_reports.period import parse_period
from einvoice_reports.prom import PrometheusClient
from einvoice_reports.store import TicketStore
from sqlalchemy import insert

from einvoice_core.thresholds import load_thresholds
from tests.reports.promfill import OpenMetricsWriter, backfilled_prometheus

TZ = ZoneInfo("Asia/Shanghai")
STEP = 30


class DayFiles:
    """One OpenMetrics file per day (promtool 2.42 reads its whole input once per 2-hour block: a
    month in one file takes it ~90 min here, in daily files a few minutes)."""

    def __init__(self, folder: Path, start: float, days: int) -> None:
        self.start = start
        self.writers = [OpenMetricsWriter(folder / f"day{day:02d}.om") for day in range(days)]

    def series(self, name: str, labels: dict[str, str], samples: Iterable[tuple[float, float]]) -> None:
        per_day: dict[int, list[tuple[float, float]]] = {}
        for sample in samples:
            per_day.setdefault(int((sample[0] - self.start) // 86400), []).append(sample)
        for day, part in per_day.items():
            self.writers[day].series(name, labels, part)

    def close(self) -> list[Path]:
        for writer in self.writers:
            writer.close()
        return [writer.path for writer in self.writers]


def write(folder: Path, checks: int, days: int) -> tuple[int, list[Path]]:
    start = datetime(2026, 11, 1, tzinfo=TZ).timestamp()
    times = [start + n * STEP for n in range(days * 86400 // STEP)]
    writer = DayFiles(folder, start, days)
    outage = set(times[1000:1200])
    stall = set(times[5000:5100])
    for service in ("intake", "processing", "pipeline"):
        labels = {"service": service}
        down = outage if service == "intake" else set()
        slow = stall if service == "processing" else set()
        writer.series("einvoice:service_up", labels, [(t, 0 if t in down else 1) for t in times])
        writer.series("einvoice:service_stalled", labels, [(t, 1 if t in slow else 0) for t in times])
        writer.series("einvoice:service_outage_step_seconds", labels,
                      [(t, STEP if t in down else 0) for t in times])
        writer.series("einvoice:service_stall_step_seconds", labels,
                      [(t, STEP if t in slow else 0) for t in times])
        run = 0
        current = []
        for t in times:
            run = run + STEP if t in down else 0
            current.append((t, run))
        writer.series("einvoice:service_outage_current_seconds", labels, current)
    for n in range(checks):
        item = f"{n % 20 + 1:02d}"
        labels = {"item": item, "zone": "extranet", "check": f"check{n}", "target": f"t{n}"}
        writer.series("einvoice_check_up", labels, [(t, 0 if (n == 7 and t in outage) else 1) for t in times])
        writer.series("einvoice_check_last_run_timestamp_seconds", labels, [(t, t) for t in times])
    for n in range(20):
        item = f"{n + 1:02d}"
        writer.series("einvoice:item_up", {"item": item, "zone": "extranet"}, [(t, 1) for t in times])
        writer.series("einvoice_item_info", {"item": item, "name": item, "zone": "extranet"},
                      [(t, 1) for t in times])
    return len(times), writer.close()


def fill(url: str, count: int) -> None:
    engine = make_engine(url)
    migrate(engine)
    first = datetime(2026, 11, 1, tzinfo=TZ)
    with engine.begin() as conn:
        for n in range(count):
            began = first + timedelta(minutes=137 * n)
            conn.execute(insert(tickets).values(
                fingerprint=f"fp{n}", starts_at=to_db(began), group_key="{}",
                alertname="EinvoiceCheckFailing", item=f"{n % 20 + 1:02d}",
                severity_class=("general", "urgent", "routine", "outage", "stall")[n % 5],
                state="closed", summary=f"第{n % 20 + 1:02d}项检查失败", description="", labels="{}",
                created_at=to_db(began), updated_at=to_db(began),
                acknowledged_at=to_db(began + timedelta(minutes=9)),
                resolved_at=to_db(began + timedelta(minutes=40)), closed_at=to_db(began + timedelta(hours=1)),
                response_deadline=to_db(began + timedelta(minutes=10)),
                resolution_deadline=to_db(began + timedelta(minutes=30)), response_breached=False,
                resolution_breached=True, escalated=n % 3 == 0, second_line=False, resolved_locally=True,
                problem_key=f"p{n % 40}", sla_events=""))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks", type=int, default=300)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--tickets", type=int, default=300)
    parser.add_argument("--archive", type=Path, help="keep the reports here (default: a temporary folder)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="reports-bench-"))
    try:
        began = time.perf_counter()
        samples, files = write(tmp, args.checks, args.days)
        print(f"wrote {args.checks} checks x {samples} samples ("
              f"{sum(f.stat().st_size for f in files) / 1e9:.2f} GB in {len(files)} daily files)"
              f" in {time.perf_counter() - began:.1f} s")
        fill(f"sqlite:///{tmp / 'tickets.db'}", args.tickets)
        began = time.perf_counter()
        with backfilled_prometheus(tmp, files, parallel=2, timeout=3600) as url:
            for f in files:
                f.unlink()
            print(f"backfilled and started Prometheus in {time.perf_counter() - began:.1f} s")
            now = datetime(2026, 12, 1, 2, tzinfo=UTC)
            began = time.perf_counter()
            store = TicketStore(f"sqlite:///{tmp / 'tickets.db'}")
            build_monthly(parse_period("2026-11"), PrometheusClient(url), store, load_thresholds(), now)
            print(f"monthly 2026-11: queries and figures only {time.perf_counter() - began:.1f} s")
            archive = args.archive or tmp / "archive"
            for kind in ("monthly", "scorecard", "daily"):
                period = "2026-11-05" if kind == "daily" else "2026-11"
                began = time.perf_counter()
                code = cli.main([kind, "--period", period, "--prometheus", url, "--store",
                                 f"sqlite:///{tmp / 'tickets.db'}", "--out", str(archive)], now=now)
                print(f"{kind} {period}: exit {code}, {time.perf_counter() - began:.1f} s (HTML + PDF)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
