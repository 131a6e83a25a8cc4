"""Collector of kind `weblogic`: servers, thread pools, JDBC data sources and JMS of a WebLogic
domain (items 05 and 10), from the RESTful Management Services of 12.2.1.x and 14.1.x.

One request per run, whatever the number of servers and MBeans: `POST
/management/weblogic/{version}/domainRuntime/search` on the Administration Server, whose documented
query language ("Administering Oracle WebLogic Server with RESTful Management Services", section
"Viewing WLS Beans" / bulk search: `fields`, `links`, `children`) returns the `serverRuntimes`
collection with only the named fields, no links, and the nested `threadPoolRuntime`,
`JDBCServiceRuntime.JDBCDataSourceRuntimeMBeans` and `JMSRuntime.JMSServers` children. WebLogic's CSRF
guard answers 400 to a POST without `X-Requested-By`, so every request carries it. The request
takes its timeout from the run's Deadline (weblogic-monitoring-exporter has none: a hung admin
server hangs its scrape).

Metric names are weblogic-monitoring-exporter's (snake case of the MBean attribute, its usual
prefixes and `server`/`name` labels) so its Grafana dashboards work:

    wls_server_activation_time{server="sl-intake-1"} 1.7e+12          (milliseconds, as WebLogic)
    wls_threadpool_stuck_thread_count{server="sl-intake-1"} 0
    wls_threadpool_hogging_thread_count{server="sl-intake-1"} 2
    wls_datasource_active_connections_current_count{name="einvoiceDS",server="sl-intake-1"} 7
    wls_jms_connections_current_count{server="sl-intake-1"} 3
    einvoice_weblogic_server_state{server="sl-intake-1",state="RUNNING"} 1
    einvoice_weblogic_server_health{server="sl-intake-1",state="ok"} 1
    einvoice_weblogic_server_start_time_seconds{server="sl-intake-1"} 1.7e+09
    einvoice_weblogic_datasource_state{name="einvoiceDS",server="sl-intake-1",state="Running"} 1

A server that is shut down is absent from `serverRuntimes`: list the servers that must run in
`expected_servers` to have one reported (`einvoice_weblogic_server_present 0` and a failure).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator

from ..fields import StrictModel, check_tls_files, one_of_secret, resolve_secret
from ..outcome import Check, MetricSet, Outcome, Reason
from . import CheckError, Deadline

SERVER_STATES = ("RUNNING", "ADMIN", "STANDBY", "STARTING", "RESUMING", "SUSPENDING",
                 "SHUTTING_DOWN", "FORCE_SHUTTING_DOWN", "SHUTDOWN", "FAILED", "UNKNOWN")
"""ServerRuntimeMBean.state values; `wls_server_state_val` is the index in this tuple."""
HEALTH_STATES = ("ok", "warning", "critical", "failed", "overloaded")
"""healthState.state as the REST serialization writes it (lower case)."""
DATASOURCE_STATES = ("Running", "Suspended", "Shutdown", "Overloaded", "Unknown", "Unhealthy")
THREADPOOL_METRICS = (
    ("executeThreadTotalCount", "wls_threadpool_execute_thread_total_count"),
    ("executeThreadIdleCount", "wls_threadpool_execute_thread_idle_count"),
    ("hoggingThreadCount", "wls_threadpool_hogging_thread_count"),
    ("stuckThreadCount", "wls_threadpool_stuck_thread_count"),
    ("queueLength", "wls_threadpool_queue_length"),
    ("throughput", "wls_threadpool_throughput"),
    ("pendingUserRequestCount", "wls_threadpool_pending_user_request_count"),
    ("standbyThreadCount", "wls_threadpool_standby_thread_count"),
    ("completedRequestCount", "wls_threadpool_completed_request_count"),
)
"""ThreadPoolRuntime attribute -> weblogic-monitoring-exporter's name (prefix + snake case)."""
DATASOURCE_METRICS = (
    ("activeConnectionsCurrentCount", "wls_datasource_active_connections_current_count"),
    ("activeConnectionsHighCount", "wls_datasource_active_connections_high_count"),
    ("waitingForConnectionCurrentCount", "wls_datasource_waiting_for_connection_current_count"),
    ("waitingForConnectionFailureTotal", "wls_datasource_waiting_for_connection_failure_total"),
    ("failuresToReconnectCount", "wls_datasource_failures_to_reconnect_count"),
    ("leakedConnectionCount", "wls_datasource_leaked_connection_count"),
    ("currCapacity", "wls_datasource_curr_capacity"),
    ("connectionDelayTime", "wls_datasource_connection_delay_time"),
)
JMS_METRICS = (
    ("connectionsCurrentCount", "wls_jms_connections_current_count"),
    ("JMSServersCurrentCount", "wls_jms_jms_servers_current_count"),
)
JMS_SERVER_METRICS = (
    ("messagesCurrentCount", "wls_jmsserver_messages_current_count"),
    ("messagesPendingCount", "wls_jmsserver_messages_pending_count"),
    ("bytesCurrentCount", "wls_jmsserver_bytes_current_count"),
    ("destinationsCurrentCount", "wls_jmsserver_destinations_current_count"),
)
MAX_BODY = 8 * 1024 * 1024
LABEL_MAX = 64


class Settings(StrictModel):
    """Settings of a `weblogic` module. The target is the Administration Server's base URL
    (`https://wls-admin:7002`); the user needs the Monitor role only."""

    username: Annotated[str, Field(min_length=1)] | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    version: Annotated[str, Field(pattern=r"^(latest|\d+(\.\d+){1,4})$")] = "latest"
    ca_file: Path | None = None
    insecure_skip_verify: bool = False
    expected_servers: list[Annotated[str, Field(min_length=1, max_length=LABEL_MAX)]] = Field(
        default_factory=list)
    """Servers that must be in the domain runtime (a shut-down server is simply absent)."""
    healthy_states: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=lambda: ["RUNNING"])
    """Server states that are not a failure; ADMIN, FAILED, SHUTTING_DOWN... are."""
    max_stuck_threads: Annotated[int, Field(ge=0)] | None = 0
    """Fail when a server has more stuck threads than this."""
    max_hogging_threads: Annotated[int, Field(ge=0)] | None = None
    max_waiting_for_connection: Annotated[int, Field(ge=0)] | None = None
    """Fail when a data source has more requests waiting for a connection than this."""
    datasources: bool = True
    jms: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        one_of_secret(self.password, self.password_file, "password")
        has_password = self.password is not None or self.password_file is not None
        if (self.username is None) == has_password:
            if self.username is not None:
                raise ValueError("username needs password or password_file")
            if has_password:
                raise ValueError("password needs username")
        check_tls_files(self.ca_file, None, None)
        bad = [s for s in self.healthy_states if s not in SERVER_STATES]
        if bad:
            raise ValueError(f"healthy_states {bad} are not server states ({', '.join(SERVER_STATES)})")
        return self


def validate_target(target: str) -> str:
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{target!r} is not the admin server's base URL like https://wls-admin:7002")
    if parts.username or parts.password:
        raise ValueError("credentials do not belong in the URL; use username/password_file")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise ValueError("the target is the base URL only (the collector adds /management/...)")
    return target


def query(settings: Settings) -> dict[str, Any]:
    """The search body: serverRuntimes with their thread pool, data sources and JMS, no links."""
    def fields(table: tuple[tuple[str, str], ...], *extra: str) -> list[str]:
        return [*extra, *(field for field, _metric in table)]

    children: dict[str, Any] = {
        "threadPoolRuntime": {"fields": fields(THREADPOOL_METRICS, "healthState"), "links": []},
    }
    if settings.datasources:
        children["JDBCServiceRuntime"] = {"fields": [], "links": [], "children": {
            "JDBCDataSourceRuntimeMBeans": {"fields": fields(DATASOURCE_METRICS, "name", "state"),
                                            "links": []}}}
    if settings.jms:
        children["JMSRuntime"] = {"fields": fields(JMS_METRICS, "healthState"), "links": [], "children": {
            "JMSServers": {"fields": fields(JMS_SERVER_METRICS, "name", "healthState"), "links": []}}}
    return {"fields": [], "links": [], "children": {"serverRuntimes": {
        "fields": ["name", "state", "healthState", "activationTime"], "links": [], "children": children}}}


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _items(node: object) -> list[dict[str, Any]]:
    if isinstance(node, dict) and isinstance(node.get("items"), list):
        return [i for i in node["items"] if isinstance(i, dict)]
    return []


def _health(node: object) -> str:
    if isinstance(node, dict) and isinstance(node.get("healthState"), dict):
        return str(node["healthState"].get("state", "")).lower()
    return ""


class Collector:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def run(self, target: str, timeout: float) -> Outcome:
        try:
            validate_target(target)
        except ValueError as exc:
            return Outcome().fail(Reason.ERROR, f"bad target: {exc}")
        deadline = Deadline(timeout)
        outcome = Outcome()
        try:
            body = self._search(target.rstrip("/"), deadline)
            self._collect(body, outcome)
        except CheckError as exc:
            outcome.fail_with(exc)
        return outcome

    def _search(self, base: str, deadline: Deadline) -> dict[str, Any]:
        import requests
        from urllib3.exceptions import HTTPError as TransportError
        from urllib3.exceptions import ReadTimeoutError

        s = self.settings
        path = f"/management/weblogic/{s.version}/domainRuntime/search"
        try:
            password = resolve_secret(s.password, s.password_file)
        except OSError as exc:
            raise CheckError(Reason.ERROR, f"cannot read the password file: {exc.strerror}") from None
        auth = (s.username, password or "") if s.username is not None else None
        verify: bool | str = False if s.insecure_skip_verify else (str(s.ca_file) if s.ca_file else True)
        remaining = deadline.remaining("waiting for the domain runtime search")
        try:
            with requests.Session() as session:
                session.trust_env = False
                response = session.post(
                    base + path, json=query(s), auth=auth, verify=verify, timeout=remaining,
                    allow_redirects=False, stream=True,
                    headers={"Accept": "application/json", "X-Requested-By": "einvoice-exporter",
                             "User-Agent": "einvoice-exporter"})
                with response:
                    deadline.phase("reading the domain runtime")
                    raw = response.raw.read(MAX_BODY + 1, decode_content=True)
                    status = response.status_code
        except requests.exceptions.SSLError:
            raise CheckError(Reason.TLS, "TLS with the admin server failed") from None
        except requests.exceptions.Timeout:
            raise CheckError(Reason.TIMEOUT, f"the admin server gave no answer within {remaining:.1f}s "
                                             f"({deadline.doing()})") from None
        except requests.exceptions.ConnectionError as exc:
            if "timed out" in str(exc).lower():
                raise CheckError(Reason.TIMEOUT, f"the admin server gave no answer within {remaining:.1f}s "
                                                 f"({deadline.doing()})") from None
            if _resolves_not(exc):
                raise CheckError(Reason.DNS, "the admin server's host does not resolve") from None
            raise CheckError(Reason.REFUSED, "the admin server does not accept connections") from None
        except requests.exceptions.RequestException as exc:
            raise CheckError(Reason.ERROR, f"request failed: {type(exc).__name__}") from None
        except (TimeoutError, ReadTimeoutError):
            raise CheckError(Reason.TIMEOUT, f"the admin server stopped sending within {remaining:.1f}s "
                                             f"({deadline.doing()})") from None
        except TransportError:
            raise CheckError(Reason.RESET,
                             f"the admin server broke the answer off ({deadline.doing()})") from None
        if status in (401, 403):
            raise CheckError(Reason.AUTH, f"HTTP {status}: the admin server refused the credentials "
                                          "(the user needs the Monitor role)")
        if status != 200:
            raise CheckError(Reason.BAD_STATUS, f"HTTP {status} from {path}")
        if len(raw) > MAX_BODY:
            raise CheckError(Reason.BAD_CONTENT, f"domain runtime answer larger than {MAX_BODY} bytes")
        try:
            body = json.loads(raw)
        except ValueError:
            raise CheckError(Reason.BAD_CONTENT, "the domain runtime answer is not JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("serverRuntimes"), dict):
            raise CheckError(Reason.BAD_CONTENT, "the answer has no serverRuntimes collection")
        return body

    def _collect(self, body: dict[str, Any], outcome: Outcome) -> None:
        s = self.settings
        ms = outcome.metrics
        problems: list[tuple[Reason, str]] = []
        seen: set[str] = set()
        for server in _items(body["serverRuntimes"]):
            name = str(server.get("name", ""))[:LABEL_MAX]
            if not name:
                continue
            seen.add(name)
            self._server(name, server, ms, problems)
        for name in s.expected_servers:
            ms.gauge("einvoice_weblogic_server_present",
                     "Whether an expected server is in the domain runtime",
                     1 if name in seen else 0, {"server": name})
            if name not in seen:
                problems.append((Reason.STATE,
                                 f"server {name} is not running (absent from the domain runtime)"))
        if problems:
            reason = next((r for r, _d in problems if r is Reason.STATE), problems[0][0])
            details = [d for _r, d in problems]
            outcome.fail(reason, "; ".join(details[:3]) + (f" (+{len(details) - 3} more)"
                                                           if len(details) > 3 else ""))

    def _server(self, name: str, server: dict[str, Any], ms: MetricSet,
                problems: list[tuple[Reason, str]]) -> None:
        s = self.settings
        sv = {"server": name}
        state = str(server.get("state", "UNKNOWN")).upper()
        index = SERVER_STATES.index(state) if state in SERVER_STATES else SERVER_STATES.index("UNKNOWN")
        ms.gauge("wls_server_state_val", "Server state as an index into " + ",".join(SERVER_STATES),
                 index, sv)
        for each in SERVER_STATES:
            ms.gauge("einvoice_weblogic_server_state", "Whether the server is in this state",
                     1 if state == each else 0, {**sv, "state": each})
        health = _health(server)
        if health:
            for each in HEALTH_STATES:
                ms.gauge("einvoice_weblogic_server_health", "Whether the server's health state is this",
                         1 if health == each else 0, {**sv, "state": each})
        activation = _number(server.get("activationTime"))
        if activation is not None and activation > 0:
            ms.gauge("wls_server_activation_time", "When the server was activated (ms since the epoch)",
                     activation, sv)
            ms.gauge("einvoice_weblogic_server_start_time_seconds",
                     "When the server was activated (Unix seconds)", activation / 1000, sv)
        if state not in s.healthy_states:
            problems.append((Reason.STATE, f"server {name} is {state}"))
        elif health in ("critical", "failed"):
            problems.append((Reason.STATE, f"server {name} health is {health}"))
        pool = server.get("threadPoolRuntime")
        if isinstance(pool, dict):
            for field, metric in THREADPOOL_METRICS:
                value = _number(pool.get(field))
                if value is not None:
                    ms.gauge(metric, f"Self-tuning thread pool {field}", value, sv)
            stuck = _number(pool.get("stuckThreadCount"))
            if s.max_stuck_threads is not None and stuck is not None and stuck > s.max_stuck_threads:
                problems.append((Reason.THRESHOLD, f"server {name} has {stuck:.0f} stuck thread(s)"))
            hogging = _number(pool.get("hoggingThreadCount"))
            if s.max_hogging_threads is not None and hogging is not None and hogging > s.max_hogging_threads:
                problems.append((Reason.THRESHOLD, f"server {name} has {hogging:.0f} hogging thread(s)"))
        jdbc = server.get("JDBCServiceRuntime")
        for ds in _items(jdbc.get("JDBCDataSourceRuntimeMBeans") if isinstance(jdbc, dict) else None):
            self._datasource(name, ds, ms, problems)
        jms = server.get("JMSRuntime")
        if isinstance(jms, dict):
            for field, metric in JMS_METRICS:
                value = _number(jms.get(field))
                if value is not None:
                    ms.gauge(metric, f"JMS runtime {field}", value, sv)
            for jserver in _items(jms.get("JMSServers")):
                j = {**sv, "jmsserver": str(jserver.get("name", ""))[:LABEL_MAX]}
                for field, metric in JMS_SERVER_METRICS:
                    value = _number(jserver.get(field))
                    if value is not None:
                        ms.gauge(metric, f"JMS server {field}", value, j)

    def _datasource(self, server: str, ds: dict[str, Any], ms: MetricSet,
                    problems: list[tuple[Reason, str]]) -> None:
        s = self.settings
        d = {"server": server, "name": str(ds.get("name", ""))[:LABEL_MAX]}
        state = str(ds.get("state", "Unknown"))
        for each in DATASOURCE_STATES:
            ms.gauge("einvoice_weblogic_datasource_state", "Whether the data source is in this state",
                     1 if state == each else 0, {**d, "state": each})
        for field, metric in DATASOURCE_METRICS:
            value = _number(ds.get(field))
            if value is not None:
                ms.gauge(metric, f"JDBC data source {field}", value, d)
        if state != "Running":
            problems.append((Reason.STATE, f"data source {d['name']} on {server} is {state}"))
        waiting = _number(ds.get("waitingForConnectionCurrentCount"))
        if (s.max_waiting_for_connection is not None and waiting is not None
                and waiting > s.max_waiting_for_connection):
            problems.append((Reason.THRESHOLD, f"data source {d['name']} on {server} has {waiting:.0f} "
                                               "request(s) waiting for a connection"))

    def close(self) -> None:
        """Nothing pooled."""


def _resolves_not(exc: BaseException) -> bool:
    inner: BaseException | None = exc
    for _ in range(16):
        if inner is None:
            return False
        if isinstance(inner, socket.gaierror):
            return True
        inner = inner.__context__ or inner.__cause__
    return False


def build(settings: Settings) -> Check:
    return Collector(settings)
