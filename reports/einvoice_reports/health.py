"""《专项健康检查报告》 (daily or monthly): per item what was checked and how it went, the measured
quantities against their thresholds (thresholds.yaml), what is drifting, the risks found and what
was done about them (the period's tickets).

Quantities and their series (the names the rules already use):
- Redis memory: redis_memory_used_bytes / redis_memory_max_bytes, per instance;
- Kafka lag: kafka_consumergroup_group_max_lag_seconds, per consumer group;
- certificates: probe_ssl_earliest_cert_expiry − time, in days, per target;
- probe latency: probe_duration_seconds, per item and target (the item's alert threshold);
- Elasticsearch: the share of the period the cluster was green (elasticsearch_cluster_health_status),
  JVM heap used / max and data-path disk used / size, per node (elasticsearch_exporter's names).
Each is read at the period's start and end and its maximum over the period (a 5-minute subquery);
"drifting" means it rose by more than DRIFT of its threshold over the period without crossing it.
A quantity with no series is listed as not collected, never as healthy.

Trend charts (TRENDS: Redis memory, Elasticsearch heap and disk) plot the peak of each day (a month)
or hour (a day): `max_over_time((expr)[step:300s])` at the end of each step, the threshold dashed."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from einvoice_core.catalogue import ITEMS
from einvoice_core.thresholds import Thresholds, shipped

from . import charts
from .period import REPORT_TZ, Period
from .prom import PrometheusClient
from .sla import EDGE
from .store import TicketRecord, TicketStore

DRIFT = 0.1
"""A rise over the period of more than this share of the threshold counts as drifting."""
ITEM_NAMES = {item.id: item.name_zh for item in ITEMS}


@dataclass(slots=True)
class CheckRow:
    item: str
    check: str
    target: str
    up_at_end: float | None
    runs: int
    failures: int


@dataclass(slots=True)
class Measure:
    kind: str
    subject: str
    start: float | None
    end: float | None
    peak: float | None
    threshold: float
    unit: str
    higher_is_worse: bool = True

    @property
    def verdict(self) -> str:
        if self.end is None:
            return "无数据"
        worst = self.peak if self.peak is not None else self.end
        if self.higher_is_worse:
            if self.end >= self.threshold:
                return "超过阈值"
            if worst >= self.threshold:
                return "期间曾超过阈值"
            if self.start is not None and self.end - self.start > DRIFT * self.threshold:
                return "上升趋势"
            return "正常"
        if self.end <= self.threshold:
            return "低于阈值"
        return "正常"


@dataclass(slots=True)
class Trend:
    """Per-step peaks of one quantity, one line per subject (at most MAX_LINES, the highest peaks)."""

    title: str
    labels: list[str]
    lines: list[tuple[str, list[float | None]]]
    threshold: float


@dataclass(slots=True)
class HealthReport:
    period: Period
    generated_at: datetime
    checks: list[CheckRow]
    measures: list[Measure]
    not_collected: list[str]
    tickets: list[TicketRecord]
    sources: list[str]
    gaps: list[str] = field(default_factory=list)
    trends: list[Trend] = field(default_factory=list)

    @property
    def risks(self) -> list[Measure]:
        return [m for m in self.measures if m.verdict not in ("正常", "无数据")]


Key = tuple[str, ...]
Threshold = float | dict[str, float]
"""One threshold, or one per item (the key's first label is then the item)."""


def _values(prom: PrometheusClient, expr: str, at: float, names: Key) -> dict[Key, float]:
    return {tuple(s.labels.get(n, "") for n in names): s.value
            for s in prom.query(expr, at) if not math.isnan(s.value)}


def _subject(key: Key) -> str:
    return " · ".join(part for part in key if part)


def _measures(prom: PrometheusClient, period: Period, kind: str, expr: str, names: Key, threshold: Threshold,
              unit: str, higher_is_worse: bool = True) -> list[Measure]:
    start, end = period.start.timestamp() + EDGE, period.end.timestamp() - EDGE
    at_end = _values(prom, expr, end, names)
    at_start = _values(prom, expr, start, names)
    agg = "max_over_time" if higher_is_worse else "min_over_time"
    peak = _values(prom, f"{agg}(({expr})[{period.seconds}s:300s])", end, names)
    out = []
    for key in sorted(set(at_end) | set(peak)):
        limit = threshold if isinstance(threshold, float) else threshold.get(key[0], math.inf)
        out.append(Measure(kind, _subject(key), at_start.get(key), at_end.get(key), peak.get(key), limit,
                           unit, higher_is_worse))
    return out


REDIS_MEMORY = "redis_memory_used_bytes / (redis_memory_max_bytes > 0)"
ES_HEAP = ('elasticsearch_jvm_memory_used_bytes{area="heap"}'
           ' / (elasticsearch_jvm_memory_max_bytes{area="heap"} > 0)')
ES_DISK = "1 - elasticsearch_filesystem_data_available_bytes / (elasticsearch_filesystem_data_size_bytes > 0)"
SECTIONS: tuple[tuple[str, str, Key, str, bool], ...] = (
    ("Redis 内存使用率", REDIS_MEMORY, ("item", "instance"), "ratio", True),
    ("Kafka 消费延迟", "kafka_consumergroup_group_max_lag_seconds", ("item", "consumergroup"),
     "seconds", True),
    ("证书剩余有效期", "(probe_ssl_earliest_cert_expiry - time()) / 86400", ("item", "target"),
     "days", False),
    ("探测响应时间", "probe_duration_seconds", ("item", "target"), "seconds", True),
    ("Elasticsearch 绿色状态占比", 'elasticsearch_cluster_health_status{color="green"}', ("item", "cluster"),
     "ratio", False),
    ("Elasticsearch 堆内存使用率", ES_HEAP, ("item", "cluster", "name"), "ratio", True),
    ("Elasticsearch 磁盘使用率", ES_DISK, ("item", "cluster", "name", "path"), "ratio", True),
    # Hosts (node_exporter, the host recording rules; item = the item the host serves)
    ("主机磁盘可用比例", "einvoice:host_filesystem_free:ratio", ("item", "instance", "mountpoint"),
     "ratio", False),
    ("主机内存可用比例", "einvoice:host_memory_available:ratio", ("item", "instance"), "ratio", False),
    ("主机负载（15 分钟，每核）", "einvoice:host_load15_per_core", ("item", "instance"), "number", True),
    # Databases (the database-health templates of the sql kind)
    ("数据库连接使用率",
     "einvoice_sql_mysql_global_status_threads_connected"
     " / einvoice_sql_mysql_global_variables_max_connections",
     ("item", "check"), "ratio", True),
    ("数据库复制延迟",
     "einvoice_sql_mysql_heartbeat_now_timestamp_seconds"
     " - einvoice_sql_mysql_heartbeat_stored_timestamp_seconds",
     ("item", "check"), "seconds", True),
)
"""(what, PromQL, identifying labels, unit, whether higher is worse)."""
"""Below this share of green time in a period the cluster is reported (no thresholds.yaml key yet)."""


def _thresholds(thresholds: Thresholds) -> dict[str, Threshold]:
    return {
        "Redis 内存使用率": thresholds.redis.memory_ratio_warning,
        "Kafka 消费延迟": float(thresholds.kafka.lag_seconds_warning),
        "证书剩余有效期": float(thresholds.certificates.warning_days),
        "探测响应时间": {item: thresholds.latency.for_item(item).alert_seconds for item in ITEM_NAMES},
        "Elasticsearch 绿色状态占比": shipped().elasticsearch.green_ratio_min,
        "Elasticsearch 堆内存使用率": thresholds.elasticsearch.heap_ratio_max,
        "Elasticsearch 磁盘使用率": thresholds.elasticsearch.disk_ratio_max,
        "主机磁盘可用比例": thresholds.hosts.filesystem_free_warning,
        "主机内存可用比例": thresholds.hosts.memory_available_warning,
        "主机负载（15 分钟，每核）": float(thresholds.hosts.load_per_core_warning),
        "数据库连接使用率": thresholds.dbhealth.connections_ratio_warning,
        "数据库复制延迟": float(thresholds.dbhealth.replication_lag_seconds),
    }


TRENDS: tuple[tuple[str, str, Key], ...] = (
    ("Redis 内存使用率", REDIS_MEMORY, ("item", "instance")),
    ("Elasticsearch 堆内存使用率", ES_HEAP, ("item", "cluster", "name")),
    ("Elasticsearch 磁盘使用率", ES_DISK, ("item", "cluster", "name", "path")),
)
MAX_LINES = 5


def trends(prom: PrometheusClient, period: Period, limits: dict[str, Threshold]) -> list[Trend]:
    """Peak per day (a month or longer) or per hour (a day) of each TRENDS quantity with data."""
    step = 3600 if period.kind == "day" else 86400
    first, last = period.start.timestamp() + step - EDGE, period.end.timestamp() - EDGE
    count = round((last - first) / step) + 1
    if period.kind == "day":
        labels = [f"{n}时" for n in range(count)]
    else:
        labels = [f"{day.month}/{day.day}" for day in period.days()][:count]
    out = []
    for title, expr, names in TRENDS:
        found = prom.query_range(f"max_over_time(({expr})[{step}s:300s])", first, last, step)
        lines: list[tuple[str, list[float | None]]] = []
        for series in found:
            by_step = {round((t - first) / step): v for t, v in series.points if not math.isnan(v)}
            values: list[float | None] = [by_step.get(n) for n in range(count)]
            if any(v is not None for v in values):
                lines.append((_subject(tuple(series.labels.get(n, "") for n in names)), values))
        if not lines:
            continue
        lines.sort(key=lambda line: (-max(v for v in line[1] if v is not None), line[0]))
        limit = limits[title]
        out.append(Trend(title, labels, lines[:MAX_LINES], limit if isinstance(limit, float) else 1.0))
    return out


def build_health(period: Period, prom: PrometheusClient, store: TicketStore, thresholds: Thresholds,
                 now: datetime) -> HealthReport:
    end = period.end.timestamp() - EDGE
    window = f"[{period.seconds}s]"
    ident = ("item", "check", "target")
    up = _values(prom, "einvoice_check_up", end, ident)
    runs = _values(prom, f"changes(einvoice_check_last_run_timestamp_seconds{window})", end, ident)
    fails = _values(prom, f"sum by (item, check, target) (increase(einvoice_check_failures_total{window}))",
                    end, ident)
    checks = [CheckRow(key[0], key[1], key[2], up.get(key), round(runs.get(key, 0)),
                       round(fails.get(key, 0))) for key in sorted(set(up) | set(runs))]
    limits = _thresholds(thresholds)
    measures: list[Measure] = []
    not_collected = []
    for kind, expr, names, unit, worse in SECTIONS:
        found = _measures(prom, period, kind, expr, names, limits[kind], unit, worse)
        if not found:
            not_collected.append(kind)
        measures.extend(found)
    records = [t for t in store.tickets_touching(period.start, period.end)
               if period.start <= t.starts_at < period.end]
    gaps = [] if checks else ["本期没有任何检查（einvoice_check_up）数据"]
    sources = [f"Prometheus HTTP API：{prom.url}",
               f"工单库：{store.engine.url.render_as_string(hide_password=True)}"]
    return HealthReport(period, now, checks, measures, not_collected, records, sources, gaps,
                        trends(prom, period, limits))


def fmt_value(measure: Measure, value: float | None) -> str:
    if value is None:
        return "—"
    if measure.unit == "ratio":
        return f"{value * 100:.1f}%"
    if measure.unit == "days":
        return f"{value:.1f} 天"
    if measure.unit == "number":
        return f"{value:.2f}"
    return f"{value:.2f} 秒"


def trend_charts(report: HealthReport) -> list[tuple[str, str]]:
    out = []
    for trend in report.trends:
        peak = max([v for _, values in trend.lines for v in values if v is not None] + [trend.threshold])
        svg = charts.line_chart(trend.lines, trend.labels, trend.title, 0.0, max(1.0, peak),
                                lambda v: f"{v * 100:.0f}%", reference=trend.threshold)
        out.append((trend.title, svg))
    return out


def context(report: HealthReport) -> dict[str, Any]:
    return {"report": report, "trend_charts": trend_charts(report), "period": report.period,
            "gaps": report.gaps, "sources": report.sources,
            "item_names": ITEM_NAMES, "fmt_value": fmt_value, "drift": DRIFT,
            "generated_local": report.generated_at.astimezone(REPORT_TZ)}
