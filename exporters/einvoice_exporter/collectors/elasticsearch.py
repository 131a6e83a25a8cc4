"""Collector of kind `elasticsearch`: cluster health, node JVM/disk/breakers, pending tasks (item 12).

Client: plain `requests` against the documented REST API, not the official `elasticsearch`
package. Its 8.x/9.x clients refuse any server that does not send `X-Elastic-Product:
Elasticsearch` (6.8 and 7.x before 7.14 do not), and a 6.x/7.x client cannot talk to 8.x without
compatibility headers; the platform's cluster may be 6 or 7 and may move to 8. The three GET calls
this check needs have kept the same shape from 6.8 to 8.x, so one small HTTP client serves all.

Metric names are elasticsearch_exporter's for the same quantities (dashboards and runbooks written
for it keep working). Exposition (identity labels added by the runtime omitted):

    elasticsearch_cluster_health_status{cluster="es-prod",color="green"} 1
    elasticsearch_cluster_health_number_of_nodes{cluster="es-prod"} 3
    elasticsearch_jvm_memory_used_bytes{area="heap",cluster="es-prod",name="es-node-1"} 4.2e+09
    elasticsearch_filesystem_data_available_bytes{cluster="es-prod",name="es-node-1",path="/data"} 8.1e+11
    elasticsearch_breakers_tripped{breaker="parent",cluster="es-prod",name="es-node-1"} 0

`elasticsearch_breakers_tripped` is a running count, exposed as a gauge under elasticsearch_exporter's
name (which lacks `_total`), so that `increase()` queries written for it work unchanged; so are all of
upstream's counters named without `_total`. Node series carry upstream's labels (`host`, `name`,
`es_*_node`); what is and is not exposed of elasticsearch_exporter 1.5: tests/community/README.md.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator

from einvoice_core.thresholds import shipped

from ..fields import StrictModel, check_tls_files, one_of_secret, resolve_secret
from ..outcome import Check, MetricSet, Outcome, Reason
from . import CheckError, Deadline

COLORS = ("green", "yellow", "red")
HEALTH_GAUGES = (
    "number_of_nodes", "number_of_data_nodes", "active_primary_shards", "active_shards",
    "relocating_shards", "initializing_shards", "unassigned_shards", "delayed_unassigned_shards",
    "number_of_pending_tasks", "number_of_in_flight_fetch",
)
"""Fields of `_cluster/health` exposed as `elasticsearch_cluster_health_<field>`."""

Ratio = Annotated[float, Field(gt=0, le=1)]

G, C = "gauge", "counter"
# elasticsearch_exporter's per-node series: (name, type, path under the node, scale). Its counters
# whose names do not end in `_total` are typed gauge here (OpenMetrics, which Prometheus negotiates,
# requires a counter's sample to end in `_total`); tests/community/README.md lists them.
NODE_METRICS: tuple[tuple[str, str, tuple[str, ...], float], ...] = (
    ("elasticsearch_os_load1", G, ("os", "cpu", "load_average", "1m"), 1),
    ("elasticsearch_os_load5", G, ("os", "cpu", "load_average", "5m"), 1),
    ("elasticsearch_os_load15", G, ("os", "cpu", "load_average", "15m"), 1),
    ("elasticsearch_os_cpu_percent", G, ("os", "cpu", "percent"), 1),
    ("elasticsearch_os_mem_free_bytes", G, ("os", "mem", "free_in_bytes"), 1),
    ("elasticsearch_os_mem_used_bytes", G, ("os", "mem", "used_in_bytes"), 1),
    ("elasticsearch_indices_fielddata_memory_size_bytes", G,
     ("indices", "fielddata", "memory_size_in_bytes"), 1),
    ("elasticsearch_indices_fielddata_evictions", G, ("indices", "fielddata", "evictions"), 1),
    ("elasticsearch_indices_completion_size_in_bytes", G, ("indices", "completion", "size_in_bytes"), 1),
    ("elasticsearch_indices_query_cache_memory_size_bytes", G,
     ("indices", "query_cache", "memory_size_in_bytes"), 1),
    ("elasticsearch_indices_query_cache_evictions", G, ("indices", "query_cache", "evictions"), 1),
    ("elasticsearch_indices_query_cache_total", C, ("indices", "query_cache", "total_count"), 1),
    ("elasticsearch_indices_query_cache_cache_size", G, ("indices", "query_cache", "cache_size"), 1),
    ("elasticsearch_indices_query_cache_cache_total", C, ("indices", "query_cache", "cache_count"), 1),
    ("elasticsearch_indices_request_cache_memory_size_bytes", G,
     ("indices", "request_cache", "memory_size_in_bytes"), 1),
    ("elasticsearch_indices_request_cache_evictions", G, ("indices", "request_cache", "evictions"), 1),
    ("elasticsearch_indices_translog_operations", G, ("indices", "translog", "operations"), 1),
    ("elasticsearch_indices_translog_size_in_bytes", G, ("indices", "translog", "size_in_bytes"), 1),
    ("elasticsearch_indices_get_time_seconds", G, ("indices", "get", "time_in_millis"), 1e-3),
    ("elasticsearch_indices_get_total", C, ("indices", "get", "total"), 1),
    ("elasticsearch_indices_get_missing_time_seconds", G, ("indices", "get", "missing_time_in_millis"), 1e-3),
    ("elasticsearch_indices_get_missing_total", C, ("indices", "get", "missing_total"), 1),
    ("elasticsearch_indices_get_exists_time_seconds", G, ("indices", "get", "exists_time_in_millis"), 1e-3),
    ("elasticsearch_indices_get_exists_total", C, ("indices", "get", "exists_total"), 1),
    ("elasticsearch_indices_refresh_time_seconds_total", C,
     ("indices", "refresh", "total_time_in_millis"), 1e-3),
    ("elasticsearch_indices_refresh_total", C, ("indices", "refresh", "total"), 1),
    ("elasticsearch_indices_search_query_time_seconds", G,
     ("indices", "search", "query_time_in_millis"), 1e-3),
    ("elasticsearch_indices_search_query_total", C, ("indices", "search", "query_total"), 1),
    ("elasticsearch_indices_search_fetch_time_seconds", G,
     ("indices", "search", "fetch_time_in_millis"), 1e-3),
    ("elasticsearch_indices_search_fetch_total", C, ("indices", "search", "fetch_total"), 1),
    ("elasticsearch_indices_search_suggest_time_seconds", G,
     ("indices", "search", "suggest_time_in_millis"), 1e-3),
    ("elasticsearch_indices_search_suggest_total", C, ("indices", "search", "suggest_total"), 1),
    ("elasticsearch_indices_search_scroll_time_seconds", G,
     ("indices", "search", "scroll_time_in_millis"), 1e-3),
    ("elasticsearch_indices_search_scroll_total", C, ("indices", "search", "scroll_total"), 1),
    ("elasticsearch_indices_docs", G, ("indices", "docs", "count"), 1),
    ("elasticsearch_indices_docs_deleted", G, ("indices", "docs", "deleted"), 1),
    ("elasticsearch_indices_store_size_bytes", G, ("indices", "store", "size_in_bytes"), 1),
    ("elasticsearch_indices_store_throttle_time_seconds_total", C,
     ("indices", "store", "throttle_time_in_millis"), 1e-3),
    ("elasticsearch_indices_segments_memory_bytes", G, ("indices", "segments", "memory_in_bytes"), 1),
    ("elasticsearch_indices_segments_count", G, ("indices", "segments", "count"), 1),
    *((f"elasticsearch_indices_segments_{part}_memory_in_bytes", G,
       ("indices", "segments", f"{part}_memory_in_bytes"), 1)
      for part in ("terms", "stored_fields", "term_vectors", "norms", "points", "doc_values",
                   "index_writer", "version_map", "fixed_bit_set")),
    ("elasticsearch_indices_flush_total", C, ("indices", "flush", "total"), 1),
    ("elasticsearch_indices_flush_time_seconds", G, ("indices", "flush", "total_time_in_millis"), 1e-3),
    ("elasticsearch_indices_warmer_total", C, ("indices", "warmer", "total"), 1),
    ("elasticsearch_indices_warmer_time_seconds_total", C,
     ("indices", "warmer", "total_time_in_millis"), 1e-3),
    ("elasticsearch_indices_indexing_index_time_seconds_total", C,
     ("indices", "indexing", "index_time_in_millis"), 1e-3),
    ("elasticsearch_indices_indexing_index_total", C, ("indices", "indexing", "index_total"), 1),
    ("elasticsearch_indices_indexing_delete_time_seconds_total", C,
     ("indices", "indexing", "delete_time_in_millis"), 1e-3),
    ("elasticsearch_indices_indexing_delete_total", C, ("indices", "indexing", "delete_total"), 1),
    ("elasticsearch_indices_indexing_is_throttled", G, ("indices", "indexing", "is_throttled"), 1),
    ("elasticsearch_indices_indexing_throttle_time_seconds_total", C,
     ("indices", "indexing", "throttle_time_in_millis"), 1e-3),
    ("elasticsearch_indices_merges_total", C, ("indices", "merges", "total"), 1),
    ("elasticsearch_indices_merges_current", G, ("indices", "merges", "current"), 1),
    ("elasticsearch_indices_merges_current_size_in_bytes", G,
     ("indices", "merges", "current_size_in_bytes"), 1),
    ("elasticsearch_indices_merges_docs_total", C, ("indices", "merges", "total_docs"), 1),
    ("elasticsearch_indices_merges_total_size_bytes_total", C,
     ("indices", "merges", "total_size_in_bytes"), 1),
    ("elasticsearch_indices_merges_total_time_seconds_total", C,
     ("indices", "merges", "total_time_in_millis"), 1e-3),
    ("elasticsearch_indices_merges_total_throttled_time_seconds_total", C,
     ("indices", "merges", "total_throttled_time_in_millis"), 1e-3),
    ("elasticsearch_jvm_uptime_seconds", G, ("jvm", "uptime_in_millis"), 1e-3),
    ("elasticsearch_process_cpu_percent", G, ("process", "cpu", "percent"), 1),
    ("elasticsearch_process_cpu_seconds_total", C, ("process", "cpu", "total_in_millis"), 1e-3),
    ("elasticsearch_process_mem_virtual_size_bytes", G, ("process", "mem", "total_virtual_in_bytes"), 1),
    ("elasticsearch_process_open_files_count", G, ("process", "open_file_descriptors"), 1),
    ("elasticsearch_process_max_files_descriptors", G, ("process", "max_file_descriptors"), 1),
    ("elasticsearch_transport_rx_packets_total", C, ("transport", "rx_count"), 1),
    ("elasticsearch_transport_rx_size_bytes_total", C, ("transport", "rx_size_in_bytes"), 1),
    ("elasticsearch_transport_tx_packets_total", C, ("transport", "tx_count"), 1),
    ("elasticsearch_transport_tx_size_bytes_total", C, ("transport", "tx_size_in_bytes"), 1),
)
CACHE_METRICS = (
    ("elasticsearch_indices_query_cache_count", "query_cache", "hit_count", "hit"),
    ("elasticsearch_indices_query_miss_count", "query_cache", "miss_count", "miss"),
    ("elasticsearch_indices_request_cache_count", "request_cache", "hit_count", "hit"),
    ("elasticsearch_indices_request_miss_count", "request_cache", "miss_count", "miss"),
)
THREAD_POOL_METRICS = (
    ("elasticsearch_thread_pool_threads_count", "threads"),
    ("elasticsearch_thread_pool_queue_count", "queue"),
    ("elasticsearch_thread_pool_active_count", "active"),
    ("elasticsearch_thread_pool_largest_count", "largest"),
    ("elasticsearch_thread_pool_completed_count", "completed"),
    ("elasticsearch_thread_pool_rejected_count", "rejected"),
)
JVM_POOL_METRICS = (
    ("elasticsearch_jvm_memory_pool_used_bytes", "used_in_bytes"),
    ("elasticsearch_jvm_memory_pool_max_bytes", "max_in_bytes"),
    ("elasticsearch_jvm_memory_pool_peak_used_bytes", "peak_used_in_bytes"),
    ("elasticsearch_jvm_memory_pool_peak_max_bytes", "peak_max_in_bytes"),
)
NODE_STATS_PATH = "/_nodes/stats/jvm,fs,breaker,indices,thread_pool,transport,os,process,http"
"""One request for every node's stats that elasticsearch_exporter reads (6.8 to 8.x)."""


class Settings(StrictModel):
    """Settings of an `elasticsearch` module. The target is a base URL, or several separated by
    commas (tried in turn until one answers)."""

    username: Annotated[str, Field(min_length=1)] | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    api_key: SecretStr | None = None
    """The base64 `encoded` value of a created API key, sent as `Authorization: ApiKey <key>`."""
    api_key_file: Path | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure_skip_verify: bool = False
    fail_on_yellow: bool = False
    min_nodes: Annotated[int, Field(ge=1)] | None = None
    max_unassigned_shards: Annotated[int, Field(ge=0)] | None = None
    max_heap_ratio: Ratio | None = Field(default_factory=lambda: shipped().elasticsearch.heap_ratio_max)
    """Fail when a node's heap used / heap max exceeds this."""
    max_disk_ratio: Ratio | None = Field(default_factory=lambda: shipped().elasticsearch.disk_ratio_max)
    """Fail when a data path is fuller than this (Elasticsearch's default low watermark)."""
    node_stats: bool = True
    pending_tasks: bool = True
    max_body_bytes: Annotated[int, Field(ge=4096)] = 64 * 1024 * 1024
    """A larger answer fails the check (bad_content) instead of being held in memory: a lying or
    broken endpoint cannot make the exporter grow (`_nodes/stats` of a 100-node cluster is a few MB)."""

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        one_of_secret(self.password, self.password_file, "password")
        one_of_secret(self.api_key, self.api_key_file, "api_key")
        has_password = self.password is not None or self.password_file is not None
        has_key = self.api_key is not None or self.api_key_file is not None
        if self.username is not None and not has_password:
            raise ValueError("username needs password or password_file")
        if has_password and self.username is None:
            raise ValueError("password needs username")
        if self.username is not None and has_key:
            raise ValueError("use either username/password or api_key, not both")
        check_tls_files(self.ca_file, self.cert_file, self.key_file)
        return self


def split_urls(target: str) -> list[str]:
    urls = []
    for raw in target.split(","):
        url = raw.strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{raw.strip()!r} is not an http(s) base URL like https://es1:9200")
        if parts.username or parts.password:
            raise ValueError("credentials do not belong in the URL (it becomes the target label); "
                             "use username/password_file or api_key_file in the module")
        if parts.query or parts.fragment:
            raise ValueError(f"{raw.strip()!r}: a base URL has no query or fragment")
        urls.append(url)
    return urls


def validate_target(target: str) -> str:
    split_urls(target)
    return target


@dataclass(frozen=True, slots=True)
class _Request:
    headers: dict[str, str]
    auth: tuple[str, str] | None
    verify: bool | str
    cert: tuple[str, str] | None


class Collector:
    """Reads three documented endpoints per run; no state is kept between runs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def _request(self) -> _Request:
        s = self.settings
        headers = {"Accept": "application/json", "User-Agent": "einvoice-exporter"}
        api_key = resolve_secret(s.api_key, s.api_key_file)
        if api_key:
            headers["Authorization"] = f"ApiKey {api_key}"
        auth = None
        if s.username is not None:
            auth = (s.username, resolve_secret(s.password, s.password_file) or "")
        verify: bool | str = False if s.insecure_skip_verify else (str(s.ca_file) if s.ca_file else True)
        cert = (str(s.cert_file), str(s.key_file)) if s.cert_file and s.key_file else None
        return _Request(headers, auth, verify, cert)

    def run(self, target: str, timeout: float) -> Outcome:
        try:
            urls = split_urls(target)
        except ValueError as exc:
            return Outcome().fail(Reason.ERROR, f"bad target: {exc}")
        deadline = Deadline(timeout)
        try:
            request = self._request()
        except OSError as exc:
            return Outcome().fail(Reason.ERROR, f"cannot read a secret file: {exc.strerror}")
        errors: list[tuple[str, CheckError]] = []
        for url in urls:
            outcome = Outcome()
            try:
                self._collect(url, request, deadline, outcome)
            except CheckError as exc:
                errors.append((url, exc))
                if deadline.expired():
                    break
                continue
            return outcome
        url, error = errors[0] if len(errors) == 1 else _most_telling(errors)
        detail = error.detail if len(urls) == 1 else f"{url}: {error.detail} ({len(errors)} URL(s) failed)"
        return Outcome().fail(error.reason, detail)

    def _collect(self, base: str, request: _Request, deadline: Deadline, outcome: Outcome) -> None:
        s = self.settings
        health = self._get(base, "/_cluster/health", request, deadline)
        cluster = str(health.get("cluster_name", ""))
        status = health.get("status")
        if status not in COLORS:
            raise CheckError(Reason.BAD_CONTENT, "_cluster/health has no green/yellow/red status")
        ms = outcome.metrics
        c = {"cluster": cluster}
        for color in COLORS:
            ms.gauge("elasticsearch_cluster_health_status", "Whether the cluster health is this color",
                     1 if status == color else 0, {**c, "color": color})
        for key in HEALTH_GAUGES:
            if isinstance(health.get(key), int | float):
                ms.gauge(f"elasticsearch_cluster_health_{key}", f"Cluster health {key.replace('_', ' ')}",
                         health[key], c)
        if isinstance(health.get("task_max_waiting_in_queue_millis"), int | float):
            ms.gauge("elasticsearch_cluster_health_task_max_waiting_in_queue_millis",
                     "Longest wait of a pending cluster task, in milliseconds",
                     health["task_max_waiting_in_queue_millis"], c)
        if s.pending_tasks:
            self._pending(self._get(base, "/_cluster/pending_tasks", request, deadline), ms, c)
        nodes: dict[str, Any] = {}
        if s.node_stats:
            stats = self._get(base, NODE_STATS_PATH, request, deadline)
            found = stats.get("nodes")
            if not isinstance(found, dict):
                raise CheckError(Reason.BAD_CONTENT, "_nodes/stats has no nodes object")
            nodes = found
        problems = self._nodes(nodes, ms, c)
        self._judge(status, health, problems, outcome)

    def _get(self, base: str, path: str, request: _Request, deadline: Deadline) -> dict[str, Any]:
        import requests

        remaining = deadline.remaining(f"requesting {path}")
        try:
            with requests.Session() as session:
                # Exactly what the module says: no proxy variables or ~/.netrc credentials
                # picked up from the exporter's environment.
                session.trust_env = False
                with session.get(base + path, headers=request.headers, auth=request.auth,
                                 verify=request.verify, cert=request.cert, timeout=remaining,
                                 allow_redirects=False, stream=True) as response:
                    status = response.status_code
                    content_type = response.headers.get("Content-Type", "unknown type")
                    raw = _read_bounded(response, self.settings.max_body_bytes, path)
        except requests.exceptions.SSLError as exc:
            raise CheckError(Reason.TLS, f"{path}: TLS failed: {_root(exc)}") from None
        except requests.exceptions.Timeout:
            raise CheckError(Reason.TIMEOUT, f"{path}: no answer within {remaining:.1f}s") from None
        except requests.exceptions.ConnectionError as exc:
            chain = _chain(exc)
            if any(isinstance(e, socket.gaierror) for e in chain):
                raise CheckError(Reason.DNS, f"{path}: host does not resolve") from None
            if any(isinstance(e, TimeoutError) for e in chain):
                raise CheckError(Reason.TIMEOUT, f"{path}: no answer within {remaining:.1f}s") from None
            raise CheckError(Reason.REFUSED, f"{path}: {_root(exc)}") from None
        except requests.exceptions.RequestException as exc:
            raise CheckError(Reason.ERROR, f"{path}: {type(exc).__name__}") from None
        if status in (401, 403):
            raise CheckError(Reason.AUTH, f"{path}: HTTP {status} {_es_error(raw)}")
        if status != 200:
            raise CheckError(Reason.BAD_STATUS, f"{path}: HTTP {status} {_es_error(raw)}")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise CheckError(Reason.BAD_CONTENT, f"{path}: body is not JSON ({content_type})") from None
        if not isinstance(body, dict):
            raise CheckError(Reason.BAD_CONTENT, f"{path}: body is not a JSON object")
        return body

    @staticmethod
    def _pending(body: dict[str, Any], ms: MetricSet, c: dict[str, str]) -> None:
        tasks = body.get("tasks")
        if not isinstance(tasks, list):
            raise CheckError(Reason.BAD_CONTENT, "_cluster/pending_tasks has no tasks list")
        by_priority: dict[str, int] = {}
        oldest = 0.0
        for task in tasks:
            if not isinstance(task, dict):
                continue
            priority = str(task.get("priority", "UNKNOWN")).lower()[:16]
            by_priority[priority] = by_priority.get(priority, 0) + 1
            waited = task.get("time_in_queue_millis")
            if isinstance(waited, int | float):
                oldest = max(oldest, waited / 1000)
        for priority in ("immediate", "urgent", "high", "normal", "low", "languid"):
            by_priority.setdefault(priority, 0)
        for priority, count in sorted(by_priority.items()):
            ms.gauge("einvoice_elasticsearch_pending_tasks", "Pending cluster-state tasks by priority",
                     count, {**c, "priority": priority})
        ms.gauge("einvoice_elasticsearch_pending_task_max_wait_seconds",
                 "How long the oldest pending cluster-state task has waited", oldest, c)

    def _nodes(self, nodes: dict[str, Any], ms: MetricSet, c: dict[str, str]) -> list[str]:
        """Per-node metrics; returns the threshold problems found (heap, disk)."""
        s = self.settings
        problems: list[str] = []
        for node_id, node in sorted(nodes.items()):
            if not isinstance(node, dict):
                continue
            name = str(node.get("name") or node_id)[:64]
            host = str(node.get("host") or "")[:64]
            roles = _roles(node)
            n = {**c, "host": host, "name": name,
                 **{f"es_{role}_node": "true" if roles[role] else "false"
                    for role in ("master", "data", "ingest", "client")}}
            for role in ("master", "data", "ingest", "client"):
                if roles[role]:
                    ms.gauge("elasticsearch_nodes_roles", "Node roles", 1,
                             {**c, "host": host, "name": name, "role": role})
            _emit_node_tables(node, ms, n)
            mem = (node.get("jvm") or {}).get("mem") or {}
            used, limit = mem.get("heap_used_in_bytes"), mem.get("heap_max_in_bytes")
            for area, key in (("heap", "heap_used_in_bytes"), ("non-heap", "non_heap_used_in_bytes")):
                if isinstance(mem.get(key), int | float):
                    ms.gauge("elasticsearch_jvm_memory_used_bytes", "JVM memory currently used by area",
                             mem[key], {**n, "area": area})
            for area, key in (("heap", "heap_committed_in_bytes"),
                              ("non-heap", "non_heap_committed_in_bytes")):
                if isinstance(mem.get(key), int | float):
                    ms.gauge("elasticsearch_jvm_memory_committed_bytes",
                             "JVM memory currently committed by area", mem[key], {**n, "area": area})
            if isinstance(limit, int | float):
                ms.gauge("elasticsearch_jvm_memory_max_bytes", "JVM memory max by area", limit,
                         {**n, "area": "heap"})
            if (s.max_heap_ratio is not None and isinstance(used, int | float)
                    and isinstance(limit, int | float) and limit > 0 and used / limit > s.max_heap_ratio):
                problems.append(f"node {n['name']} heap {used / limit:.0%} > {s.max_heap_ratio:.0%}")
            for data in (node.get("fs") or {}).get("data") or []:
                if not isinstance(data, dict):
                    continue
                p = {**n, "mount": str(data.get("mount", ""))[:128], "path": str(data.get("path", ""))[:128]}
                total, available = data.get("total_in_bytes"), data.get("available_in_bytes")
                for metric, key, doc in (
                        ("elasticsearch_filesystem_data_size_bytes", "total_in_bytes", "Size of a data path"),
                        ("elasticsearch_filesystem_data_available_bytes", "available_in_bytes",
                         "Space available to Elasticsearch on a data path"),
                        ("elasticsearch_filesystem_data_free_bytes", "free_in_bytes",
                         "Free space on a data path")):
                    if isinstance(data.get(key), int | float):
                        ms.gauge(metric, doc, data[key], p)
                if (s.max_disk_ratio is not None and isinstance(total, int | float) and total > 0
                        and isinstance(available, int | float)
                        and 1 - available / total > s.max_disk_ratio):
                    problems.append(f"node {n['name']} disk {p['path']} {1 - available / total:.0%} "
                                    f"> {s.max_disk_ratio:.0%}")
            for breaker, stats in sorted((node.get("breakers") or {}).items()):
                if not isinstance(stats, dict):
                    continue
                b = {**n, "breaker": str(breaker)[:32]}
                for metric, key, doc in (
                        ("elasticsearch_breakers_tripped", "tripped", "Times the breaker has tripped"),
                        ("elasticsearch_breakers_overhead", "overhead", "Overhead factor of the breaker"),
                        ("elasticsearch_breakers_estimated_size_bytes", "estimated_size_in_bytes",
                         "Estimated size of the breaker"),
                        ("elasticsearch_breakers_limit_size_bytes", "limit_size_in_bytes",
                         "Limit of the breaker")):
                    if isinstance(stats.get(key), int | float):
                        ms.gauge(metric, doc, stats[key], b)
        return problems

    def _judge(self, status: str, health: dict[str, Any], problems: list[str], outcome: Outcome) -> None:
        s = self.settings
        if status == "red":
            outcome.fail(Reason.STATE, f"cluster health is red ({health.get('unassigned_shards')} "
                                       "unassigned shards)")
        if status == "yellow" and s.fail_on_yellow:
            outcome.fail(Reason.STATE, f"cluster health is yellow ({health.get('unassigned_shards')} "
                                       "unassigned shards)")
        nodes = health.get("number_of_nodes")
        if s.min_nodes is not None and isinstance(nodes, int) and nodes < s.min_nodes:
            outcome.fail(Reason.THRESHOLD, f"{nodes} node(s) in the cluster, fewer than {s.min_nodes}")
        unassigned = health.get("unassigned_shards")
        if (s.max_unassigned_shards is not None and isinstance(unassigned, int)
                and unassigned > s.max_unassigned_shards):
            outcome.fail(Reason.THRESHOLD,
                         f"{unassigned} unassigned shard(s), more than {s.max_unassigned_shards}")
        if problems:
            outcome.fail(Reason.THRESHOLD, "; ".join(problems[:3]))

    def close(self) -> None:
        """Nothing pooled: each run opens its own connections."""


def _roles(node: dict[str, Any]) -> dict[str, bool]:
    """elasticsearch_exporter's role flags: master/data/ingest from `roles` (a `data_*` tier counts
    as data only when `data` itself is listed, as upstream), client when the node serves HTTP."""
    listed = node.get("roles")
    names = {str(role) for role in listed} if isinstance(listed, list) else set()
    return {"master": "master" in names, "data": "data" in names, "ingest": "ingest" in names,
            "client": bool(node.get("http"))}


def _at(node: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = node
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    return float(value) if isinstance(value, int | float) else None


def _emit_node_tables(node: dict[str, Any], ms: MetricSet, n: dict[str, str]) -> None:
    """The table-driven per-node series (indices, thread pools, GC, transport, OS, process)."""
    for name, type_, path, scale in NODE_METRICS:
        value = _at(node, path)
        if value is not None:
            help_ = name.removeprefix("elasticsearch_").replace("_", " ")
            (ms.counter if type_ == C else ms.gauge)(name, help_, value * scale, n)
    indices = _at_dict(node, ("indices",))
    for name, section, key, cache in CACHE_METRICS:
        value = _at(indices, (section, key))
        if value is not None:
            ms.gauge(name, f"{section} {key.replace('_', ' ')}", value, {**n, "cache": cache})
    pools = node.get("thread_pool")
    for pool, stats in sorted(pools.items() if isinstance(pools, dict) else []):
        if not isinstance(stats, dict):
            continue
        labels = {**n, "type": str(pool)[:48]}
        for name, key in THREAD_POOL_METRICS:
            if isinstance(stats.get(key), int | float):
                ms.gauge(name, f"Thread pool {key}", stats[key], labels)
    jvm = _at_dict(node, ("jvm",))
    collectors = _at_dict(jvm, ("gc", "collectors"))
    for gc, stats in sorted(collectors.items()):
        if isinstance(stats, dict):
            labels = {**n, "gc": str(gc)[:32]}
            if isinstance(stats.get("collection_count"), int | float):
                ms.gauge("elasticsearch_jvm_gc_collection_seconds_count", "Count of JVM GC runs",
                         stats["collection_count"], labels)
            if isinstance(stats.get("collection_time_in_millis"), int | float):
                ms.gauge("elasticsearch_jvm_gc_collection_seconds_sum", "GC run time in seconds",
                         stats["collection_time_in_millis"] / 1000, labels)
    for pool, stats in sorted(_at_dict(jvm, ("mem", "pools")).items()):
        if isinstance(stats, dict):
            for name, key in JVM_POOL_METRICS:
                if isinstance(stats.get(key), int | float):
                    ms.gauge(name, f"JVM memory pool {key}", stats[key], {**n, "pool": str(pool)[:32]})
    for kind, stats in sorted(_at_dict(jvm, ("buffer_pools",)).items()):
        if isinstance(stats, dict) and isinstance(stats.get("used_in_bytes"), int | float):
            ms.gauge("elasticsearch_jvm_buffer_pool_used_bytes", "JVM buffer pool used",
                     stats["used_in_bytes"], {**n, "type": str(kind)[:32]})


def _at_dict(node: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    value: Any = node
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, dict) else {}


_PREFERENCE = (Reason.AUTH, Reason.BAD_CONTENT, Reason.BAD_STATUS, Reason.TLS, Reason.TIMEOUT,
               Reason.DNS, Reason.REFUSED, Reason.ERROR)


def _most_telling(errors: list[tuple[str, CheckError]]) -> tuple[str, CheckError]:
    """With several URLs failing, report the failure that says most about the cluster: an answer
    (refused credentials, bad status) over a node that is merely unreachable."""
    return min(errors, key=lambda e: _PREFERENCE.index(e[1].reason) if e[1].reason in _PREFERENCE else 99)


def _chain(exc: BaseException) -> list[BaseException]:
    chain = [exc]
    inner = exc.__context__
    while inner is not None and len(chain) < 16:
        chain.append(inner)
        inner = inner.__context__
    return chain


def _root(exc: BaseException) -> str:
    """The innermost cause's message, short (URLs never carry credentials: validate_target)."""
    inner = _chain(exc)[-1]
    return (str(inner) or type(inner).__name__)[:160]


def _read_bounded(response: Any, limit: int, path: str) -> bytes:
    """The body, read in chunks and refused past `limit` bytes (never held whole if it is larger)."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=64 * 1024):
        size += len(chunk)
        if size > limit:
            raise CheckError(Reason.BAD_CONTENT, f"{path}: answer larger than {limit} bytes (max_body_bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


def _es_error(raw: bytes) -> str:
    """`error.type` of Elasticsearch's error body (security_exception, master_not_discovered_exception)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("type", ""))[:80]
    return str(error)[:80] if error else ""


def build(settings: Settings) -> Check:
    return Collector(settings)
