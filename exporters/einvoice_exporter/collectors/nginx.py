"""Collector of kind `nginx` (item 04): stub_status with nginx-prometheus-exporter's names, metrics
from the access log driven by its `log_format`, error-log patterns, and `nginx -t`.

The target is the stub_status URL (`http://127.0.0.1:8080/nginx_status`, module
ngx_http_stub_status_module). Same names and values as nginx-prometheus-exporter:

    nginx_up 1
    nginx_connections_active 3
    nginx_connections_accepted 1042          (a gauge here: the bundle's counters end in _total)
    nginx_connections_handled 1042
    nginx_connections_reading 0
    nginx_connections_writing 1
    nginx_connections_waiting 2
    nginx_http_requests_total 88213

From the access log (names of prometheus-nginxlog-exporter, namespace `nginx`):

    nginx_http_response_count_total{status="502"} 7
    nginx_http_response_time_seconds_bucket{le="0.5"} 88011    ($request_time)
    nginx_http_upstream_time_seconds_bucket{le="0.5"} 87002    ($upstream_response_time, summed
                                                                 over the upstreams tried)
    nginx_parse_errors_total 0

From the error log, the `nginx_error` pattern set counted like the `logfile` kind
(`einvoice_log_matches_total{class="upstream_timed_out"}`, `connect_failed`, `no_live_upstreams`),
and with `config_test: true` on the nginx host, `einvoice_nginx_config_ok 1` from `nginx -t`
(run at most every `config_test_interval`). The check fails only when stub_status does not answer
as stub_status does, or a configured log cannot be read.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from pydantic import Field, field_validator

from ..fields import Duration, StrictModel
from ..outcome import Check, MetricSet, Outcome, Reason
from . import CheckError, logfile
from ._net import classify_os_error

COMBINED = ('$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
            '"$http_referer" "$http_user_agent"')
"""nginx's predefined `combined` format."""
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_VARIABLE = re.compile(r"\$(\{[A-Za-z0-9_]+\}|[A-Za-z0-9_]+)")
_FIELD_REGEX = {
    "status": rb"(?P<status>[1-5][0-9][0-9])",
    "request_time": rb"(?P<request_time>[0-9]+(?:\.[0-9]+)?)",
    "upstream_response_time": rb"(?P<upstream_response_time>-|[0-9.]+(?:(?:, | : )(?:-|[0-9.]+))*)",
    "body_bytes_sent": rb"[0-9]+",
    "bytes_sent": rb"[0-9]+",
    "remote_addr": rb"[0-9A-Fa-f.:]+",
    "time_local": rb"[^]\n]+",
    "time_iso8601": rb"[^ \n]+",
    "msec": rb"[0-9.]+",
}
_STUB = re.compile(
    rb"Active connections:\s*(\d+)\s*\n\s*server accepts handled requests\s*\n\s*(\d+)\s+(\d+)\s+(\d+)\s*\n"
    rb"\s*Reading:\s*(\d+)\s+Writing:\s*(\d+)\s+Waiting:\s*(\d+)")


def log_format_regex(log_format: str) -> re.Pattern[bytes]:
    """The regex of one access-log line for an nginx `log_format` string: literal text as is, each
    variable a lazy field within the line (tight ones for the variables we measure)."""
    fmt = COMBINED if log_format.strip() == "combined" else log_format
    parts: list[bytes] = []
    position = 0
    seen: set[str] = set()
    for match in _VARIABLE.finditer(fmt):
        parts.append(re.escape(fmt[position:match.start()].encode("utf-8")))
        name = match.group(1).strip("{}")
        regex = _FIELD_REGEX.get(name, rb"[^\n]*?")
        if name in seen and b"?P<" in regex:
            regex = re.sub(rb"\?P<[a-z_]+>", b"?:", regex)
        seen.add(name)
        parts.append(regex)
        position = match.end()
    parts.append(re.escape(fmt[position:].encode("utf-8")))
    if "status" not in seen:
        raise ValueError("the log_format has no $status: the access-log metrics need it")
    return re.compile(b"^" + b"".join(parts) + rb"\r?$", re.MULTILINE)


class Settings(StrictModel):
    """Settings of an `nginx` module."""

    access_log: Path | None = None
    """The access log to read (glob allowed), written with `log_format`."""
    log_format: str = "combined"
    """The log_format string of that access log, as in nginx.conf (`combined` for the default)."""
    error_log: Path | None = None
    buckets: list[float] = Field(default_factory=lambda: list(DEFAULT_BUCKETS))
    state_file: Path | None = None
    """Positions and counters of the logs across restarts (one file per module)."""
    from_start: bool = False
    config_test: bool = False
    """Run `nginx -t` (the exporter runs on the nginx host with the rights to read its config)."""
    nginx_binary: str = "nginx"
    nginx_conf: Path | None = None
    config_test_interval: Duration = 300.0
    error_patterns: list[logfile.Pattern] = Field(default_factory=list)
    """Extra error-log patterns beside the `nginx_error` set."""

    @field_validator("log_format")
    @classmethod
    def _format(cls, value: str) -> str:
        log_format_regex(value)
        return value

    @field_validator("buckets")
    @classmethod
    def _buckets(cls, value: list[float]) -> list[float]:
        if not value or sorted(set(value)) != value or value[0] <= 0:
            raise ValueError("buckets are positive and strictly increasing")
        return value


def validate_target(target: str) -> str:
    if not re.match(r"^https?://[^/\s]+(/\S*)?$", target):
        raise ValueError("the target is the stub_status URL, such as http://127.0.0.1:8080/nginx_status")
    return target


class _Histogram:
    def __init__(self, bounds: list[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.count = 0
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.count += 1
        self.total += value
        for index, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[index] += 1

    def cumulative(self) -> list[tuple[float, float]]:
        return list(zip(self.bounds, self.counts, strict=True))

    def to_json(self) -> list[object]:
        return [self.counts, self.count, self.total]

    def restore(self, data: object) -> None:
        if isinstance(data, list) and len(data) == 3 and len(data[0]) == len(self.bounds):
            self.counts, self.count, self.total = list(data[0]), int(data[1]), float(data[2])


class _AccessLog:
    """Counters of one access log, fed complete lines by a logfile Follower."""

    def __init__(self, settings: Settings) -> None:
        self.regex = log_format_regex(settings.log_format)
        self.statuses: dict[str, int] = {}
        self.response_time = _Histogram(settings.buckets)
        self.upstream_time = _Histogram(settings.buckets)
        self.parse_errors = 0
        self.lines = 0

    def consume(self, _source: str, buffer: bytes, _cut: int) -> None:
        lines = buffer.count(b"\n")
        parsed = 0
        statuses = self.statuses
        has_rt = "request_time" in self.regex.groupindex
        has_urt = "upstream_response_time" in self.regex.groupindex
        for match in self.regex.finditer(buffer):
            parsed += 1
            status = match.group("status").decode()
            statuses[status] = statuses.get(status, 0) + 1
            if has_rt:
                self.response_time.observe(float(match.group("request_time")))
            if has_urt:
                upstream = _upstream_seconds(match.group("upstream_response_time"))
                if upstream is not None:
                    self.upstream_time.observe(upstream)
        self.lines += lines
        self.parse_errors += lines - parsed

    def emit(self, metrics: MetricSet) -> None:
        for status, count in sorted(self.statuses.items()):
            metrics.counter("nginx_http_response_count_total", "Access-log requests by status code", count,
                            {"status": status})
        metrics.counter("nginx_parse_errors_total", "Access-log lines that do not match the log_format",
                        self.parse_errors)
        if "request_time" in self.regex.groupindex:
            metrics.histogram("nginx_http_response_time_seconds", "$request_time of access-log requests",
                              self.response_time.cumulative(), self.response_time.count,
                              self.response_time.total)
        if "upstream_response_time" in self.regex.groupindex:
            metrics.histogram("nginx_http_upstream_time_seconds", "$upstream_response_time of requests "
                              "passed upstream (summed over the upstreams tried)",
                              self.upstream_time.cumulative(), self.upstream_time.count,
                              self.upstream_time.total)


def _upstream_seconds(raw: bytes) -> float | None:
    total, any_value = 0.0, False
    for part in re.split(rb", | : ", raw):
        if part and part != b"-":
            total += float(part)
            any_value = True
    return total if any_value else None


class Collector:
    def __init__(self, settings: Settings, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        from .logs.state import StateFile

        self.settings = settings
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._state = StateFile(settings.state_file)
        self._access: _AccessLog | None = _AccessLog(settings) if settings.access_log else None
        self._access_follower: object = None
        self._error_log: logfile.Collector | None = None
        if settings.error_log is not None:
            error_settings = logfile.Settings(pattern_sets=["nginx_error"], patterns=settings.error_patterns,
                                              from_start=settings.from_start,
                                              state_file=_sibling(settings.state_file, "error"))
            self._error_log = logfile.Collector(error_settings, monotonic=monotonic)
        self._config_checked = -float("inf")
        self._config_ok: float | None = None
        self._config_detail = ""

    def run(self, target: str, timeout: float) -> Outcome:
        started = self.monotonic()
        outcome = Outcome()
        metrics = outcome.metrics
        self._stub_status(target, timeout * 0.5, outcome)
        with self._lock:
            if self._access is not None:
                self._read_access(started + timeout * 0.8, outcome)
            if self._error_log is not None and self.settings.error_log is not None:
                inner = self._error_log.run(str(self.settings.error_log), max(timeout * 0.2, 0.05))
                for name, type_, doc, samples in inner.metrics.items():
                    for labels, value in samples:
                        if type_ == "counter":
                            metrics.counter(name, doc, value, labels)
                        elif name != "einvoice_log_behind":
                            metrics.gauge(name, doc, value, labels)
                if inner.failure is not None:
                    outcome.fail(inner.failure.reason, f"error log: {inner.failure.detail}")
            if self.settings.config_test:
                self._config_test(metrics)
        return outcome

    def _stub_status(self, url: str, timeout: float, outcome: Outcome) -> None:
        metrics = outcome.metrics
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "einvoice-exporter"})  # noqa: S310
            with urllib.request.urlopen(request, timeout=max(timeout, 0.1)) as response:  # noqa: S310
                body = response.read(4096)
            match = _STUB.search(body)
            if match is None:
                raise CheckError(Reason.BAD_CONTENT, "the answer is not a stub_status page")
        except urllib.error.HTTPError as exc:
            metrics.gauge("nginx_up", "Status of the last metric scrape", 0)
            outcome.fail(Reason.AUTH if exc.code in (401, 403) else Reason.BAD_STATUS,
                         f"stub_status answered HTTP {exc.code}")
            return
        except urllib.error.URLError as exc:
            error = classify_os_error(exc.reason if isinstance(exc.reason, BaseException) else exc,
                                      "the stub_status request")
            metrics.gauge("nginx_up", "Status of the last metric scrape", 0)
            outcome.fail(error.reason, error.detail)
            return
        except CheckError as exc:
            metrics.gauge("nginx_up", "Status of the last metric scrape", 0)
            outcome.fail(exc.reason, exc.detail)
            return
        except OSError as exc:
            error = classify_os_error(exc, "the stub_status request")
            metrics.gauge("nginx_up", "Status of the last metric scrape", 0)
            outcome.fail(error.reason, error.detail)
            return
        active, accepted, handled, requests, reading, writing, waiting = (int(g) for g in match.groups())
        metrics.gauge("nginx_up", "Status of the last metric scrape", 1)
        metrics.gauge("nginx_connections_active", "Active client connections", active)
        metrics.gauge("nginx_connections_accepted", "Accepted client connections", accepted)
        metrics.gauge("nginx_connections_handled", "Handled client connections", handled)
        metrics.gauge("nginx_connections_reading", "Connections where NGINX is reading the request header",
                      reading)
        metrics.gauge("nginx_connections_writing", "Connections where NGINX is writing the response back "
                      "to the client", writing)
        metrics.gauge("nginx_connections_waiting", "Idle client connections", waiting)
        metrics.counter("nginx_http_requests_total", "Total http requests", requests)

    def _read_access(self, deadline: float, outcome: Outcome) -> None:
        from .logs.follow import Follower, Position

        access, path = self._access, self.settings.access_log
        assert access is not None and path is not None
        if self._access_follower is None:
            saved = self._state.target("access") or {}
            positions = ({p: Position.from_json(v) for p, v in saved["files"].items()}
                         if "files" in saved else None)
            access.statuses = dict(saved.get("statuses", {}))
            access.parse_errors = int(saved.get("parse_errors", 0))
            access.response_time.restore(saved.get("response_time"))
            access.upstream_time.restore(saved.get("upstream_time"))
            self._access_follower = Follower(str(path), max_line=64 * 1024, positions=positions,
                                             from_start=self.settings.from_start, monotonic=self.monotonic)
        follower = self._access_follower
        assert isinstance(follower, Follower)
        stats = follower.poll(access.consume, deadline, 1 << 30)
        for where, kind in sorted(stats.errors.items()):
            outcome.fail(Reason.AUTH if kind == "permission" else Reason.ERROR, f"access log {kind}: {where}")
        if not follower.positions and not stats.errors:
            outcome.fail(Reason.ERROR, f"access log: no file matches {path}")
        access.emit(outcome.metrics)
        self._state.save("access", {
            "files": {p: pos.to_json() for p, pos in follower.positions.items()},
            "statuses": access.statuses, "parse_errors": access.parse_errors,
            "response_time": access.response_time.to_json(), "upstream_time": access.upstream_time.to_json()})

    def _config_test(self, metrics: MetricSet) -> None:
        now = self.monotonic()
        if now - self._config_checked >= self.settings.config_test_interval:
            self._config_checked = now
            argv = [self.settings.nginx_binary, "-t", "-q"]
            if self.settings.nginx_conf is not None:
                argv += ["-c", str(self.settings.nginx_conf)]
            try:
                done = subprocess.run(argv, capture_output=True, timeout=30, check=False)
                self._config_ok = 1.0 if done.returncode == 0 else 0.0
            except (OSError, subprocess.TimeoutExpired):
                self._config_ok = None
        if self._config_ok is not None:
            metrics.gauge("einvoice_nginx_config_ok", "1 when `nginx -t` accepted the configuration at the "
                          "last test", self._config_ok)

    def close(self) -> None:
        """Nothing pooled."""


def _sibling(path: Path | None, suffix: str) -> Path | None:
    return None if path is None else path.with_name(f"{path.name}.{suffix}")




def build(settings: Settings) -> Check:
    return Collector(settings)
