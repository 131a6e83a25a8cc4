"""The scripted month (November 2026, Asia/Shanghai) the report tests compare against by hand.

Prometheus, one sample every 300 s on 15 October and from 1 November 00:00 to 1 December 00:00 local
(inclusive):
- intake: down on 15 Oct 10:00 for 12 samples (3600 s, last year-to-date), on 3 Nov 10:00 for 30
  samples (9000 s: crosses 30 min and 2 h), on 10 Nov 02:00 for 2 samples (600 s), and at exactly
  1 Dec 00:00 (the next period's first sample: must not count);
- processing: stalled on 5 Nov 09:00 for 8 samples (2400 s, crosses 30 min), never down;
- pipeline: always up.
Checks: item 01 and 06 run every sample, except item 06's check which stops on 20 Nov 00:00 (no new
run on 20..30 Nov: 11 missed days); item 20 has no check at all. Item 06's check fails (timeout) on
12 Nov from 14:50 for 6 samples (30 minutes, until 15:20).

Tickets (times local):
 1 outage  item 05 starts 3 Nov 10:00, ack 10:05, resolved 12:30, closed 13:00, escalated
 2 stall   item 11 starts 5 Nov 09:00, ack 09:08, resolved 09:40, closed 10:00, escalated, local ticked
 3 general item 06 starts 12 Nov 15:00, ack 16:00, resolved 17:00, closed 18:00, local
 4 urgent  item 06 starts 20 Nov 08:00, ack 11:00 (late), resolved 12:00, closed 13:00, escalated
 5 routine item 06 starts 25 Nov 10:00, ack 10:30, open (resolution due 1 Dec 10:00)
 6 general item 06 starts 27 Nov 09:00, ack 09:30, resolved 10:00, closed 11:00, local, recurrence of 3
 7 general item 03 starts 30 Oct 09:00, ack 09:10, resolved 30 Oct 10:00, closed 2 Nov 09:00, local
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from einvoice_notifier.db import make_engine, migrate, tickets, to_db
from sqlalchemy import Engine, insert

from .promfill import OpenMetricsWriter

TZ = ZoneInfo("Asia/Shanghai")
STEP = 300
FIRST = datetime(2026, 10, 1, tzinfo=TZ)
LAST = datetime(2026, 12, 1, tzinfo=TZ)
TAX_ID = "91450100MA5L8XKQ3C"
"""A well-formed 统一社会信用代码 written into a ticket: it must never reach a report."""


def local(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=TZ)


def _times() -> list[float]:
    """15 October (the year's earlier outage) and 1 November to 1 December 00:00 inclusive: October's
    other days are left out, as every 2-hour span with samples costs promtool a block."""
    october = [FIRST.timestamp() + 14 * 86400 + n * STEP for n in range(86400 // STEP)]
    start = datetime(2026, 11, 1, tzinfo=TZ).timestamp()
    count = int(LAST.timestamp() - start) // STEP
    return october + [start + n * STEP for n in range(count + 1)]


def _down_spans() -> list[tuple[float, int]]:
    """(first down sample, number of down samples) of intake."""
    return [(local(10, 15, 10).timestamp(), 12), (local(11, 3, 10).timestamp(), 30),
            (local(11, 10, 2).timestamp(), 2), (LAST.timestamp(), 1)]


def write_series(writer: OpenMetricsWriter) -> None:
    times = _times()
    spans = {"intake": _down_spans(), "processing": [], "pipeline": []}
    stalls = {"processing": [(local(11, 5, 9).timestamp(), 8)]}
    for service in ("intake", "processing", "pipeline"):
        down: dict[float, int] = {}
        for first, count in spans[service]:
            for n in range(count):
                down[first + n * STEP] = n + 1
        stalled: dict[float, int] = {}
        for first, count in stalls.get(service, []):
            for n in range(count):
                stalled[first + n * STEP] = n + 1
        labels = {"service": service}
        writer.series("einvoice:service_up", labels, [(t, 0 if t in down else 1) for t in times])
        writer.series("einvoice:service_stalled", labels, [(t, 1 if t in stalled else 0) for t in times])
        writer.series("einvoice:service_outage_step_seconds", labels,
                      [(t, STEP if t in down else 0) for t in times])
        writer.series("einvoice:service_stall_step_seconds", labels,
                      [(t, STEP if t in stalled else 0) for t in times])
        writer.series("einvoice:service_outage_current_seconds", labels,
                      [(t, down.get(t, 0) * STEP) for t in times])
        over = [t for t in times if down.get(t, 0) * STEP > 7200 >= (down.get(t, 0) - 1) * STEP]
        if over:
            writer.series("einvoice:service_outage_over_limit_event", labels, [(t, 1) for t in over])
        for cls, clock in (("outage", down), ("stall", stalled)):
            late = [t for t in times if clock.get(t, 0) * STEP > 1800 >= (clock.get(t, 0) - 1) * STEP]
            if late:
                writer.series("einvoice:service_restore_late_event", {**labels, "severity_class": cls},
                              [(t, 1) for t in late])
    stop = local(11, 20, 0).timestamp()
    failing = {local(11, 12, 14, 50).timestamp() + n * STEP for n in range(6)}
    for item, check in (("01", "domain"), ("06", "redis_ping")):
        labels = {"item": item, "zone": "extranet", "check": check, "target": "t1"}
        writer.series("einvoice_check_last_run_timestamp_seconds", labels,
                      [(t, min(t, stop - STEP) if item == "06" else t) for t in times])
        fails = failing if item == "06" else set()
        writer.series("einvoice_check_up", labels, [(t, 0 if t in fails else 1) for t in times])
        writer.series("einvoice:item_up", {"item": item, "zone": "extranet"},
                      [(t, 0 if t in fails else 1) for t in times])
        counted = 0
        samples = []
        for t in times:
            counted += t in fails
            samples.append((t, counted))
        writer.series("einvoice_check_failures_total", {**labels, "reason": "timeout"}, samples)
    write_health_series(writer, times)
    write_app_series(writer, times)
    write_param_series(writer, times)
    for item in ("01", "06", "20"):
        writer.series("einvoice_item_info", {"item": item, "name": f"第{item}项", "zone": "extranet"},
                      [(t, 1) for t in times])


APP_STARTED = local(1, 1, 8).timestamp() - 86400 * 200
"""app1 (a JVM scraped by einvoice-apps) has run since about 200 days before 1 January: never stopped."""
WORKER_RESTART = local(11, 20, 3).timestamp()
"""The container cl-worker-1 restarted on 20 November at 03:00 (its earlier start: 1 October)."""


def write_app_series(writer: OpenMetricsWriter, times: list[float]) -> None:
    """应用连续运行: what the continuity rules record (einvoice:app_*), written directly."""
    app = {"job": "einvoice-apps", "instance": "app1:8080"}
    writer.series("process_start_time_seconds", app, [(t, APP_STARTED) for t in times])
    writer.series("einvoice:app_uptime_seconds", app, [(t, t - APP_STARTED) for t in times])
    worker = {"job": "einvoice-exporter", "name": "cl-worker-1", "instance": "container/cl-worker-1"}
    first = FIRST.timestamp()
    starts = [(t, WORKER_RESTART if t >= WORKER_RESTART else first) for t in times]
    writer.series("einvoice:app_start_time_seconds", worker, starts)
    writer.series("einvoice:app_uptime_seconds", worker, [(t, t - start) for t, start in starts])


def write_health_series(writer: OpenMetricsWriter, times: list[float]) -> None:
    """Redis r1 rises from 50 % to 80 % of maxmemory through November, r2 sits at 95 %; Kafka group g1
    lags 900 s for three samples on 20 Nov 10:00; the certificate of item 01 expires 20 Dec 00:00;
    item 05's probe takes 4.5 s once (16 Nov 12:00); item 20's 4 s probes are under its 5 s override."""
    first, last = local(11, 1, 0).timestamp(), LAST.timestamp()

    def share(t: float) -> float:
        return 0.5 + 0.3 * min(max((t - first) / (last - first), 0.0), 1.0)

    writer.series("redis_memory_max_bytes", {"item": "06", "instance": "r1"}, [(t, 1e9) for t in times])
    writer.series("redis_memory_max_bytes", {"item": "06", "instance": "r2"}, [(t, 1e9) for t in times])
    writer.series("redis_memory_used_bytes", {"item": "06", "instance": "r1"},
                  [(t, share(t) * 1e9) for t in times])
    writer.series("redis_memory_used_bytes", {"item": "06", "instance": "r2"}, [(t, 0.95e9) for t in times])
    lagging = {local(11, 20, 10).timestamp() + n * STEP for n in range(3)}
    writer.series("kafka_consumergroup_group_max_lag_seconds", {"item": "14", "consumergroup": "g1"},
                  [(t, 900 if t in lagging else 60) for t in times])
    expiry = local(12, 20, 0).timestamp()
    writer.series("probe_ssl_earliest_cert_expiry", {"item": "01", "target": "https://a.example"},
                  [(t, expiry) for t in times])
    slow = local(11, 16, 12).timestamp()
    writer.series("probe_duration_seconds", {"item": "05", "target": "http://intake"},
                  [(t, 4.5 if t == slow else 0.2) for t in times])
    writer.series("probe_duration_seconds", {"item": "20", "target": "http://partner"},
                  [(t, 4.0) for t in times])
    # intake-01's root disk goes from 30 % free to 8 % through November; its memory stays half free;
    # the MySQL behind item 10 uses 90 % of max_connections all month.
    host = {"item": "05", "instance": "intake-01:9100"}
    writer.series("einvoice:host_filesystem_free:ratio", {**host, "mountpoint": "/"},
                  [(t, 0.3 - 0.22 * min(max((t - first) / (last - first), 0.0), 1.0)) for t in times])
    writer.series("einvoice:host_memory_available:ratio", host, [(t, 0.5) for t in times])
    # Elasticsearch node es-node-1 (item 12): heap at half its maximum but 95 % once (15 Nov 12:00); its
    # data path is 40 % + 1 % per day full (local day d of November: 0.40 + 0.01 d)
    node = {"item": "12", "cluster": "es-prod", "name": "es-node-1"}
    spike = local(11, 15, 12).timestamp()
    writer.series("elasticsearch_jvm_memory_max_bytes", {**node, "area": "heap"}, [(t, 8e9) for t in times])
    writer.series("elasticsearch_jvm_memory_used_bytes", {**node, "area": "heap"},
                  [(t, 7.6e9 if t == spike else 4e9) for t in times])
    disk = {**node, "path": "/data"}
    writer.series("elasticsearch_filesystem_data_size_bytes", disk, [(t, 1e12) for t in times])
    writer.series("elasticsearch_filesystem_data_available_bytes", disk,
                  [(t, (0.60 - 0.01 * es_day(t)) * 1e12) for t in times])
    db = {"item": "10", "check": "mysql-health"}
    writer.series("einvoice_sql_mysql_global_status_threads_connected", db, [(t, 360) for t in times])
    writer.series("einvoice_sql_mysql_global_variables_max_connections", db, [(t, 400) for t in times])


PARAM_REDIS = {"item": "12", "zone": "intranet", "check": "session-redis-params", "target": "10.1.3.1:6379"}
PARAM_NGINX = {"item": "01", "zone": "extranet", "check": "nginx-conf", "target": "/etc/nginx/nginx.conf"}
PARAM_KERNEL = {"item": "01", "zone": "extranet", "check": "kernel-params", "target": "local"}
POLICY_CHANGED, POLICY_RESTORED = local(11, 8, 14), local(11, 9, 10, 30)
BODY_CHANGED, BASELINE_UPDATED = local(11, 20, 9), local(11, 20, 11)


def write_param_series(writer: OpenMetricsWriter, times: list[float]) -> None:
    """What the params kind exports. Redis maxmemory-policy (baseline allkeys-lru) is noeviction from
    8 Nov 14:00 to 9 Nov 10:30 (20.5 h); maxmemory never moves. nginx's http.client_max_body_size goes
    from 20m to 50m on 20 Nov 09:00 and the baseline follows at 11:00 (2 h of drift). The kernel's
    vm.swappiness is 60 against a baseline of 1 all along (drifting at the end, no change)."""
    def timeline(labels: dict[str, str], param: str, states: list[tuple[float, str, str]]) -> None:
        """states: (from, value, expected), ascending; each holds until the next."""
        def state_at(t: float) -> tuple[str, str]:
            current = states[0][1:]
            for since, value, expected in states:
                if t >= since:
                    current = (value, expected)
            return current

        seen = sorted({s[1:] for s in states})
        for value, expected in seen:
            writer.series("einvoice_param_info", {**labels, "param": param, "value": value,
                                                  "expected": expected},
                          [(t, 1) for t in times if state_at(t) == (value, expected)])
        writer.series("einvoice_param_drift", {**labels, "param": param},
                      [(t, 0 if state_at(t)[0] == state_at(t)[1] else 1) for t in times])

    timeline(PARAM_REDIS, "maxmemory-policy", [(0, "allkeys-lru", "allkeys-lru"),
                                                (POLICY_CHANGED.timestamp(), "noeviction", "allkeys-lru"),
                                                (POLICY_RESTORED.timestamp(), "allkeys-lru", "allkeys-lru")])
    timeline(PARAM_REDIS, "maxmemory", [(0, "4294967296", "4294967296")])
    timeline(PARAM_NGINX, "http.client_max_body_size", [(0, "20m", "20m"),
                                                        (BODY_CHANGED.timestamp(), "50m", "20m"),
                                                        (BASELINE_UPDATED.timestamp(), "50m", "50m")])
    timeline(PARAM_KERNEL, "vm.swappiness", [(0, "60", "1")])


def es_day(t: float) -> int:
    """The local day of November of a sample (0 before November, 31 on 1 December)."""
    moment = datetime.fromtimestamp(t, TZ)
    if moment.month == 10:
        return 0
    return 31 if moment.month == 12 else moment.day


def write_openmetrics(path: Path) -> Path:
    writer = OpenMetricsWriter(path)
    write_series(writer)
    writer.close()
    return path


def _ticket(ticket_id: int, cls: str, item: str, starts: datetime, ack: datetime | None,
            resolved: datetime | None, closed: datetime | None, response_after: timedelta,
            resolution_deadline: datetime, *, escalated: bool = False, local_ok: bool | None = None,
            recurrence_of: int | None = None, summary: str = "") -> dict[str, Any]:
    state = "closed" if closed else "resolved" if resolved else "acknowledged" if ack else "open"
    return {
        "id": ticket_id, "fingerprint": f"fp{ticket_id}", "starts_at": to_db(starts), "group_key": "{}",
        "alertname": "EinvoiceCheckFailing", "item": item, "zone": "extranet", "target": "t1",
        "severity_class": cls, "state": state, "summary": summary or f"第{item}项检查失败",
        "description": f"描述 {ticket_id}", "labels": "{}", "created_at": to_db(starts),
        "updated_at": to_db(closed or resolved or ack or starts), "acknowledged_at": to_db(ack),
        "resolved_at": to_db(resolved), "closed_at": to_db(closed),
        "response_deadline": to_db(starts + response_after),
        "resolution_deadline": to_db(resolution_deadline),
        "response_breached": bool(ack and ack > starts + response_after),
        "resolution_breached": bool(resolved and resolved > resolution_deadline), "escalated": escalated,
        "second_line": escalated, "recurrence_of": recurrence_of,
        "cause": f"原因：税号 {TAX_ID} 的请求超时" if closed else None,
        "solution": "重启受理服务" if closed else None, "resolved_locally": local_ok,
        "problem_key": f"item:{item}", "sla_events": "",
    }


def fill_store(url: str) -> Engine:
    engine = make_engine(url)
    migrate(engine)
    m10, h2, h4 = timedelta(minutes=10), timedelta(hours=2), timedelta(hours=4)
    rows = [
        _ticket(7, "general", "03", local(10, 30, 9), local(10, 30, 9, 10), local(10, 30, 10),
                local(11, 2, 9), h4, local(10, 30, 13), local_ok=True),
        _ticket(1, "outage", "05", local(11, 3, 10), local(11, 3, 10, 5), local(11, 3, 12, 30),
                local(11, 3, 13), m10, local(11, 3, 10, 30), escalated=True, local_ok=False,
                summary=f"受理服务宕机，纳税人识别号 {TAX_ID} 开票失败"),
        _ticket(2, "stall", "11", local(11, 5, 9), local(11, 5, 9, 8), local(11, 5, 9, 40), local(11, 5, 10),
                m10, local(11, 5, 9, 30), escalated=True, local_ok=True),
        _ticket(3, "general", "06", local(11, 12, 15), local(11, 12, 16), local(11, 12, 17),
                local(11, 12, 18), h4, local(11, 13, 12), local_ok=True),
        _ticket(4, "urgent", "06", local(11, 20, 8), local(11, 20, 11), local(11, 20, 12), local(11, 20, 13),
                h2, local(11, 20, 14), escalated=True, local_ok=True),
        _ticket(5, "routine", "06", local(11, 25, 10), local(11, 25, 10, 30), None, None,
                h2, local(12, 1, 10)),
        _ticket(6, "general", "06", local(11, 27, 9), local(11, 27, 9, 30), local(11, 27, 10),
                local(11, 27, 11), h4, local(11, 27, 15), local_ok=True, recurrence_of=3),
    ]
    with engine.begin() as conn:
        for row in rows:
            conn.execute(insert(tickets).values(**row))
    return engine


NOW = datetime(2026, 12, 1, 1, 30, tzinfo=UTC)
"""When the scripted reports are generated (09:30 local on 1 December)."""
