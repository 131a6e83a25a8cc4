"""Collector of kind `docker`: containers of one Docker engine (item 15).

Client: the documented Docker Engine API (v1.41 of engine 20.10 and later, unversioned paths so
the daemon's own version answers), spoken over HTTP/1.1 by the standard library, on the daemon's
unix socket (`unix:///var/run/docker.sock`) or on TCP with TLS client certificates
(`tcp://host:2376`, the remote daemons of the intranet). One `GET /containers/json?all=1` lists the
containers, one `GET /containers/{id}/json` per exported container reads its state; every request
takes its timeout from the run's Deadline.

Only bounded, non-secret fields are read: name, image (without its digest), state, health status,
restart count, OOM-killed flag, exit code, start time. Environment, command line, health-check
output and logs are never read into a metric, a label or a failure detail (they carry secrets).

Exposition (identity labels added by the runtime omitted):

    einvoice_containers{state="running"} 12
    einvoice_container_state{name="intake-api-1",image="registry.local/intake:2.3",state="running"} 1
    einvoice_container_health{name="intake-api-1",image="registry.local/intake:2.3",status="healthy"} 1
    einvoice_container_restarts_total{name="intake-api-1",image="registry.local/intake:2.3"} 0
    einvoice_container_oom_killed{name="intake-api-1",image="registry.local/intake:2.3"} 0
    einvoice_container_last_exit_code{name="intake-api-1",image="registry.local/intake:2.3"} 0
    einvoice_container_uptime_seconds{name="intake-api-1",image="registry.local/intake:2.3"} 86400
    container_start_time_seconds{name="intake-api-1",image="registry.local/intake:2.3"} 1.7e+09
    einvoice_container_expected_running{expected="intake-api-.*"} 2
    einvoice_container_expected_min{expected="intake-api-.*"} 2

`container_start_time_seconds` has cAdvisor's name and meaning (the start of the container's
current run, Unix seconds) so that rules written for cAdvisor, and the continuous-running rules
of the platform, read it unchanged. `einvoice_container_restarts_total` is Docker's RestartCount
(restarts by the restart policy since the container was created; a recreated container starts
again at 0, which `increase()` treats as a counter reset).
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from pydantic import Field, model_validator

from ..fields import StrictModel, check_tls_files
from ..outcome import Check, MetricSet, Outcome, Reason
from . import CheckError, Deadline

STATES = ("created", "running", "restarting", "paused", "exited", "removing", "dead")
"""The values of Docker's `State.Status`."""
HEALTH = ("starting", "healthy", "unhealthy")
"""The values of Docker's `State.Health.Status` (absent when the image has no health check)."""
MAX_BODY = 16 * 1024 * 1024
"""Largest answer read from the daemon (a list of some thousand containers)."""
LABEL_MAX = 128


class Expected(StrictModel):
    """Containers that must run: one by name, or those whose name matches a pattern."""

    name: Annotated[str, Field(min_length=1, max_length=LABEL_MAX)] | None = None
    pattern: Annotated[str, Field(min_length=1, max_length=LABEL_MAX)] | None = None
    """A regular expression matched against the whole container name."""
    min_running: Annotated[int, Field(ge=1)] = 1

    @model_validator(mode="after")
    def _one(self) -> Expected:
        if (self.name is None) == (self.pattern is None):
            raise ValueError("an expected container has either a name or a pattern")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern {self.pattern!r} is not a regular expression: {exc}") from None
        return self

    @property
    def key(self) -> str:
        return self.name if self.name is not None else str(self.pattern)

    def matches(self, container: str) -> bool:
        if self.name is not None:
            return container == self.name
        return re.fullmatch(str(self.pattern), container) is not None


class Settings(StrictModel):
    """Settings of a `docker` module. The target is `unix:///path/docker.sock` or
    `tcp://host:port` (TLS with the client certificate below when `cert_file` is set)."""

    include: Annotated[str, Field(min_length=1)] | None = None
    """Regular expression: only containers whose name matches are exported and judged."""
    max_containers: Annotated[int, Field(ge=1, le=2000)] = 200
    """At most this many containers get per-container series (sorted by name); the rest are
    counted in `einvoice_containers` only."""
    expected: list[Expected] = Field(default_factory=list)
    fail_on_unhealthy: bool = True
    """Fail when an exported container reports health `unhealthy`."""
    fail_on_restarting: bool = True
    """Fail when an exported container is in state `restarting` (a crash loop)."""
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure_skip_verify: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        check_tls_files(self.ca_file, self.cert_file, self.key_file)
        if self.include is not None:
            try:
                re.compile(self.include)
            except re.error as exc:
                raise ValueError(f"include {self.include!r} is not a regular expression: {exc}") from None
        keys = [e.key for e in self.expected]
        if len(keys) != len(set(keys)):
            raise ValueError("each expected name or pattern appears once")
        return self


def parse_target(target: str) -> tuple[str, str, int]:
    """("unix", socket path, 0) or ("tcp", host, port)."""
    parts = urlsplit(target)
    if parts.scheme == "unix":
        path = (parts.netloc + parts.path) if parts.netloc else parts.path
        if not path.startswith("/"):
            raise ValueError("write a unix socket target as unix:///var/run/docker.sock")
        return "unix", path, 0
    if parts.scheme in ("tcp", "https"):
        if not parts.hostname:
            raise ValueError("write a TCP target as tcp://host:2376")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("a Docker TCP target is tcp://host:port only (no credentials or query)")
        return "tcp", parts.hostname, parts.port or 2376
    raise ValueError(f"{target!r} is not unix:///path/docker.sock or tcp://host:port")


def validate_target(target: str) -> str:
    parse_target(target)
    return target


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def _image(value: object) -> str:
    """The image reference without its digest; an image id shortened as `docker ps` does."""
    text = str(value or "")
    text = text.split("@", 1)[0]
    if text.startswith("sha256:"):
        text = text[7:19]
    return text[:LABEL_MAX] or "unknown"


_FRACTION = re.compile(r"(\.\d{1,6})\d*")


def parse_time(value: object) -> float | None:
    """Docker's RFC 3339 time with nanoseconds, as Unix seconds; None for the zero time."""
    if not isinstance(value, str) or not value or value.startswith("0001-"):
        return None
    text = _FRACTION.sub(r"\1", value.replace("Z", "+00:00"), count=1)
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


class Collector:
    """Reads the container list and each exported container's state; no state between runs."""

    def __init__(self, settings: Settings, *, wall_clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.wall_clock = wall_clock
        self.include = re.compile(settings.include) if settings.include else None

    def _connection(self, target: str, timeout: float) -> http.client.HTTPConnection:
        kind, where, port = parse_target(target)
        if kind == "unix":
            return _UnixConnection(where, timeout)
        s = self.settings
        if s.cert_file is None and s.ca_file is None and not s.insecure_skip_verify:
            return http.client.HTTPConnection(where, port, timeout=timeout)
        context = ssl.create_default_context(cafile=str(s.ca_file) if s.ca_file else None)
        if s.insecure_skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if s.cert_file and s.key_file:
            context.load_cert_chain(str(s.cert_file), str(s.key_file))
        return http.client.HTTPSConnection(where, port, timeout=timeout, context=context)

    def _get(self, target: str, path: str, deadline: Deadline, phase: str) -> tuple[int, Any]:
        timeout = deadline.remaining(phase)
        try:
            conn = self._connection(target, timeout)
        except (ssl.SSLError, OSError) as exc:
            raise CheckError(Reason.TLS, f"cannot load the TLS files: {type(exc).__name__}") from None
        try:
            conn.request("GET", path, headers={"Accept": "application/json",
                                               "User-Agent": "einvoice-exporter"})
            response = conn.getresponse()
            body = response.read(MAX_BODY + 1)
            status = response.status
        except TimeoutError:
            raise CheckError(Reason.TIMEOUT, f"the daemon gave no answer within {timeout:.1f}s "
                                             f"({deadline.doing()})") from None
        except ssl.SSLError as exc:
            raise CheckError(Reason.TLS, f"TLS with the daemon failed: {exc.reason or exc}") from None
        except socket.gaierror:
            raise CheckError(Reason.DNS, "the daemon's host does not resolve") from None
        except PermissionError:
            raise CheckError(Reason.AUTH, "permission denied on the daemon socket") from None
        except (FileNotFoundError, ConnectionRefusedError):
            raise CheckError(Reason.REFUSED, f"the daemon does not accept connections ({phase})") from None
        except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected,
                http.client.IncompleteRead):
            raise CheckError(Reason.RESET, f"the daemon closed the connection ({phase})") from None
        except OSError as exc:
            raise CheckError(Reason.REFUSED, f"cannot reach the daemon: {exc.strerror or exc}") from None
        except http.client.HTTPException as exc:
            raise CheckError(Reason.BAD_CONTENT, f"not an HTTP answer: {type(exc).__name__}") from None
        finally:
            conn.close()
        if len(body) > MAX_BODY:
            raise CheckError(Reason.BAD_CONTENT, f"answer to {phase} larger than {MAX_BODY} bytes")
        if status in (401, 403):
            raise CheckError(Reason.AUTH, f"HTTP {status} ({phase})")
        try:
            return status, json.loads(body) if body else None
        except ValueError:
            if status != 200:
                raise CheckError(Reason.BAD_STATUS, f"HTTP {status} ({phase})") from None
            raise CheckError(Reason.BAD_CONTENT, f"the answer to {phase} is not JSON") from None

    def run(self, target: str, timeout: float) -> Outcome:
        try:
            parse_target(target)
        except ValueError as exc:
            return Outcome().fail(Reason.ERROR, f"bad target: {exc}")
        deadline = Deadline(timeout)
        outcome = Outcome()
        try:
            self._collect(target, deadline, outcome)
        except CheckError as exc:
            outcome.fail_with(exc)
        return outcome

    def _collect(self, target: str, deadline: Deadline, outcome: Outcome) -> None:
        s = self.settings
        ms = outcome.metrics
        status, listing = self._get(target, "/containers/json?all=1", deadline, "listing containers")
        if status != 200:
            raise CheckError(Reason.BAD_STATUS, f"HTTP {status} listing containers")
        if not isinstance(listing, list):
            raise CheckError(Reason.BAD_CONTENT, "the container list is not a JSON array")
        by_state = dict.fromkeys(STATES, 0)
        chosen: list[tuple[str, str, str]] = []
        for entry in listing:
            if not isinstance(entry, dict):
                continue
            names = entry.get("Names") or []
            name = str(names[0] if names else entry.get("Id", ""))[:LABEL_MAX].lstrip("/")
            state = str(entry.get("State", "")).lower()
            if self.include is not None and not self.include.fullmatch(name):
                continue
            key = state if state in STATES else "unknown"
            by_state[key] = by_state.get(key, 0) + 1
            chosen.append((name, str(entry.get("Id", "")), _image(entry.get("Image"))))
        for state, count in by_state.items():
            ms.gauge("einvoice_containers", "Containers of the daemon by state", count, {"state": state})
        chosen.sort()
        ms.gauge("einvoice_container_series_truncated",
                 "Containers left without per-container series (max_containers reached)",
                 max(len(chosen) - s.max_containers, 0))
        running: dict[str, bool] = {}
        problems: list[str] = []
        for name, cid, image in chosen[:s.max_containers]:
            if not re.fullmatch(r"[0-9a-f]{12,64}", cid):
                continue
            status, info = self._get(target, f"/containers/{quote(cid)}/json", deadline,
                                     f"inspecting container {name}")
            if status == 404:
                continue  # removed between the list and the inspection
            if status != 200 or not isinstance(info, dict):
                raise CheckError(Reason.BAD_STATUS if status != 200 else Reason.BAD_CONTENT,
                                 f"HTTP {status} inspecting container {name}")
            is_running = self._container(name, image, info, ms, problems)
            running[name] = running.get(name, False) or is_running
        for name in (n for n, _c, _i in chosen[s.max_containers:]):
            running.setdefault(name, False)
        self._expected(running, ms, problems)
        if problems:
            outcome.fail(Reason.STATE, "; ".join(problems[:3])
                         + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""))

    def _container(self, name: str, image: str, info: dict[str, Any], ms: MetricSet,
                   problems: list[str]) -> bool:
        s = self.settings
        c = {"name": name, "image": image}
        raw_state = info.get("State")
        state: dict[str, Any] = raw_state if isinstance(raw_state, dict) else {}
        status = str(state.get("Status", "")).lower()
        for each in STATES:
            ms.gauge("einvoice_container_state", "Whether the container is in this state",
                     1 if status == each else 0, {**c, "state": each})
        health = state.get("Health")
        health_status = str(health.get("Status", "")).lower() if isinstance(health, dict) else ""
        if health_status:
            for each in HEALTH:
                ms.gauge("einvoice_container_health", "Whether the container's health check reports this",
                         1 if health_status == each else 0, {**c, "status": each})
            if isinstance(health, dict) and isinstance(health.get("FailingStreak"), int):
                ms.gauge("einvoice_container_health_failing_streak",
                         "Consecutive failed health checks", health["FailingStreak"], c)
        restarts = info.get("RestartCount")
        if isinstance(restarts, int):
            ms.counter("einvoice_container_restarts_total",
                       "Restarts by the restart policy since the container was created", restarts, c)
        ms.gauge("einvoice_container_oom_killed", "Whether the container's last run was OOM-killed",
                 1 if state.get("OOMKilled") else 0, c)
        if isinstance(state.get("ExitCode"), int):
            ms.gauge("einvoice_container_last_exit_code", "Exit code of the container's last run",
                     state["ExitCode"], c)
        started = parse_time(state.get("StartedAt"))
        if started is not None:
            ms.gauge("container_start_time_seconds", "Start time of the container's current run (Unix s)",
                     started, c)
            if status == "running":
                ms.gauge("einvoice_container_uptime_seconds", "Seconds since the container started",
                         max(self.wall_clock() - started, 0.0), c)
        if status == "restarting" and s.fail_on_restarting:
            problems.append(f"container {name} is restarting ({restarts} restarts)")
        if health_status == "unhealthy" and s.fail_on_unhealthy:
            problems.append(f"container {name} is unhealthy")
        return status == "running"

    def _expected(self, running: dict[str, bool], ms: MetricSet, problems: list[str]) -> None:
        for expected in self.settings.expected:
            matched = [n for n in running if expected.matches(n)]
            up = sum(1 for n in matched if running[n])
            e = {"expected": expected.key}
            ms.gauge("einvoice_container_expected_running", "Running containers matching an expectation",
                     up, e)
            ms.gauge("einvoice_container_expected_min", "Containers that must run for an expectation",
                     expected.min_running, e)
            if up < expected.min_running:
                what = (f"container {expected.name}" if expected.name
                        else f"containers matching {expected.pattern}")
                if not matched:
                    problems.append(f"{what}: none found, {expected.min_running} must run")
                else:
                    problems.append(f"{what}: {up} running of {len(matched)}, "
                                    f"{expected.min_running} must run")

    def close(self) -> None:
        """Nothing pooled: each request opens its own connection."""


def build(settings: Settings) -> Check:
    return Collector(settings)
