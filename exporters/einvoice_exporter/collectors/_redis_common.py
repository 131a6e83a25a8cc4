"""What the `redis` and `redis_cluster` collectors share: connection settings, error reasons, the
per-instance metrics (redis_exporter's names) and the judgement of one instance.

redis-py is imported inside functions only: validating a config must not import it.
"""

from __future__ import annotations

import errno
import functools
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, SecretStr, model_validator

from einvoice_core.thresholds import shipped

from ..fields import StrictModel, TlsFiles, one_of_secret, resolve_secret
from ..outcome import MetricSet, Outcome, Reason
from . import CheckError, Deadline

if TYPE_CHECKING:
    import redis

DEFAULT_PORT = 6379
IDLE_PRUNE_SECONDS = 600.0
"""A kept connection unused this long is closed."""


class RedisTls(TlsFiles):
    """TLS towards Redis (`tls-port`); present (even empty) means the connection uses TLS, and a
    client certificate serves servers with `tls-auth-clients yes`."""


class ConnectionSettings(StrictModel):
    """How to reach and authenticate to every Redis instance of one module.

    A different password per target means a different module (the password belongs to the module).
    """

    username: str | None = None
    """ACL user (Redis 6+); the `default` user when absent."""
    password: SecretStr | None = None
    password_file: Path | None = None
    tls: RedisTls | None = None
    client_name: str | None = Field(default=None, pattern=r"^[!-~]{1,64}$")
    """Shown in CLIENT LIST; costs one more round trip and the +client|setname permission."""
    persistent_connections: bool = True
    """Keep one authenticated connection per instance between runs; false opens a fresh one per
    run, as redis_exporter does."""
    memory_used_max_ratio: float | None = Field(
        default_factory=lambda: shipped().redis.memory_ratio_warning, gt=0, le=1)
    """Fail (threshold) when used_memory exceeds this share of maxmemory; none disables it. No
    effect while maxmemory is 0 (unlimited)."""

    @model_validator(mode="after")
    def _secret(self) -> ConnectionSettings:
        one_of_secret(self.password, self.password_file, "password")
        return self


def parse_address(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """`host:port`, `host` or `[v6]:port` -> (host, port); ValueError with a sentence otherwise."""
    text = text.strip()
    if not text:
        raise ValueError("an address host:port is required")
    if "://" in text or "/" in text or "@" in text:
        raise ValueError(f"{text!r} must be host:port (no scheme, path or credentials)")
    host, port_text = text, ""
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ValueError(f"{text!r}: unclosed [ in an IPv6 address")
        host, rest = text[1:close], text[close + 1:]
        if rest and not rest.startswith(":"):
            raise ValueError(f"{text!r} must be [ipv6]:port")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif text.count(":") > 1:
        raise ValueError(f"{text!r}: write IPv6 addresses as [addr]:port")
    if not host or any(c.isspace() for c in host):
        raise ValueError(f"{text!r} has no valid host")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{text!r}: port must be a number from 1 to 65535")
    return host, int(port_text)


def parse_addresses(text: str, default_port: int = DEFAULT_PORT) -> list[tuple[str, int]]:
    """A comma-separated list of addresses (seeds, sentinels)."""
    parts = [part for part in text.split(",") if part.strip()]
    if not parts:
        raise ValueError("at least one address host:port is required")
    return [parse_address(part, default_port) for part in parts]


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None

    def resolve(self) -> str | None:
        """Read at each run so a rotated `password_file` needs no reload."""
        return resolve_secret(self.password, self.password_file)


class RedisConnector:
    """redis-py Connections with one module's settings, kept (one idle per instance) between runs.

    A kept connection saves the TCP (and TLS) handshake and AUTH on every scrape. One that went stale
    (restart, failover, server `timeout`) fails at once and is replaced by a fresh one within the
    same run. Reads wait at most the time left of the run. No retries inside redis-py: retries are
    the runtime's business, within the same timeout.
    """

    def __init__(self, settings: ConnectionSettings, credentials: Credentials | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self.credentials = credentials or Credentials(settings.username, settings.password,
                                                      settings.password_file)
        self._idle: dict[tuple[str, int, str | None], tuple[redis.Connection, float]] = {}
        self._lock = threading.Lock()
        self._next_prune = 0.0

    def close(self) -> None:
        with self._lock:
            idle, self._idle = list(self._idle.values()), {}
        for connection, _ in idle:
            connection.disconnect()

    def connection(self, host: str, port: int, deadline: Deadline,
                   password: str | None) -> redis.Connection:
        """An unconnected redis-py Connection: the plain protocol object, without the client's
        command table and pool, which cost more than the exchange itself for a two-command visit."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        timeout = deadline.left(0.01)
        deadline.phase("connecting")
        options: dict[str, Any] = {
            "host": host, "port": port, "username": self.credentials.username, "password": password,
            "socket_timeout": timeout, "socket_connect_timeout": timeout,
            "retry": Retry(NoBackoff(), 0), "client_name": self.settings.client_name,
            "protocol": 2,  # RESP2: Redis before 6 has no HELLO
            **_no_client_setinfo(),
        }
        tls = self.settings.tls
        if tls is None:
            return redis.Connection(**options)
        return redis.SSLConnection(
            **options,
            ssl_ca_certs=str(tls.ca_file) if tls.ca_file else None,
            ssl_certfile=str(tls.cert_file) if tls.cert_file else None,
            ssl_keyfile=str(tls.key_file) if tls.key_file else None,
            ssl_cert_reqs="none" if tls.insecure_skip_verify else "required",
            ssl_check_hostname=not tls.insecure_skip_verify,
        )

    def exchange(self, host: str, port: int, deadline: Deadline, password: str | None,
                 commands: list[tuple[str, ...]]) -> list[Any]:
        """Send all commands in one write on a kept or new connection, read every answer.

        Error replies come back in place as ResponseError instances; connection, timeout and
        authentication errors raise. The password is part of the key: a rotated one opens a new
        connection."""
        from redis.exceptions import ConnectionError as RedisConnectionError

        kept = self.take(host, port, password)
        if kept is not None:
            try:
                self.send(kept, commands)
                answers = self.receive(kept, len(commands), deadline)
            except RedisConnectionError:
                kept.disconnect()  # stale: the server restarted or closed it; try a fresh one
                if deadline.expired():
                    raise
            except BaseException:
                kept.disconnect()
                raise
            else:
                self.keep(host, port, password, kept)
                return answers
        return self.fresh_exchange(host, port, deadline, password, commands)

    def fresh_exchange(self, host: str, port: int, deadline: Deadline, password: str | None,
                       commands: list[tuple[str, ...]]) -> list[Any]:
        connection = self.connection(host, port, deadline, password)
        try:
            connection.connect()
            self.send(connection, commands)
            answers = self.receive(connection, len(commands), deadline)
        except BaseException:
            connection.disconnect()
            raise
        self.keep(host, port, password, connection)
        return answers

    @staticmethod
    def send(connection: redis.Connection, commands: list[tuple[str, ...]]) -> None:
        connection.send_packed_command(connection.pack_commands(commands))

    @staticmethod
    def receive(connection: redis.Connection, count: int, deadline: Deadline) -> list[Any]:
        from redis.exceptions import ResponseError

        per_read = _read_timeout_supported()
        deadline.phase("waiting for the answers")
        answers: list[Any] = []
        for _ in range(count):
            try:
                if per_read:
                    answers.append(connection.read_response(timeout=deadline.left(0.01)))
                else:  # older redis-py: the socket timeout set at connect bounds the read
                    answers.append(connection.read_response())
            except ResponseError as exc:
                answers.append(exc)
        return answers

    def take(self, host: str, port: int, password: str | None) -> redis.Connection | None:
        """The connection kept from an earlier run, if any (it leaves the idle set)."""
        if not self.settings.persistent_connections:
            return None
        with self._lock:
            entry = self._idle.pop((host, port, password), None)
        return entry[0] if entry else None

    def keep(self, host: str, port: int, password: str | None, connection: redis.Connection) -> None:
        """Hand a connection that just answered back for the next run (or close it)."""
        if not self.settings.persistent_connections:
            connection.disconnect()
            return
        now = self._clock()
        closing: list[redis.Connection] = []
        with self._lock:
            spare = self._idle.pop((host, port, password), None)
            if spare is not None:  # two runs of one target overlapped; keep one connection
                closing.append(spare[0])
            self._idle[(host, port, password)] = (connection, now)
            if now >= self._next_prune:  # nodes that left a cluster, targets no longer scraped
                self._next_prune = now + IDLE_PRUNE_SECONDS
                for key in [k for k, (_, used) in self._idle.items() if now - used > IDLE_PRUNE_SECONDS]:
                    closing.append(self._idle.pop(key)[0])
        for old in closing:
            old.disconnect()

    def kept(self) -> int:
        """Connections kept idle now (for tests and the curious)."""
        with self._lock:
            return len(self._idle)


@functools.cache
def _read_timeout_supported() -> bool:
    """Whether Connection.read_response takes a per-read `timeout` (recent redis-py does)."""
    import inspect

    import redis

    return "timeout" in inspect.signature(redis.Connection.read_response).parameters


@functools.cache
def _no_client_setinfo() -> dict[str, None]:
    """Skip CLIENT SETINFO (two round trips per connection): `driver_info=None` on redis-py 7.1+,
    `lib_name`/`lib_version=None` before it."""
    try:
        import redis.driver_info  # noqa: F401 - present from redis-py 7.1
    except ImportError:
        return {"lib_name": None, "lib_version": None}
    return {"driver_info": None}


def classify(exc: BaseException) -> CheckError:
    """A bounded reason and a one-line English detail (never a secret) for a failed exchange."""
    import redis.exceptions as rex

    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, rex.AuthenticationError | rex.AuthorizationError | rex.NoPermissionError
                  | rex.AuthenticationWrongNumberOfArgsError):
        return CheckError(Reason.AUTH, f"authentication or permission refused: {_first_line(exc)}")
    if isinstance(exc, rex.TimeoutError | TimeoutError):
        return CheckError(Reason.TIMEOUT, "no answer in time")
    if isinstance(cause, ssl.SSLError | ssl.CertificateError) or isinstance(exc, ssl.SSLError):
        return CheckError(Reason.TLS, f"TLS handshake failed: {_first_line(cause or exc)}")
    if isinstance(cause, socket.gaierror):
        return CheckError(Reason.DNS, "host name did not resolve")
    if isinstance(cause, ConnectionRefusedError):
        return CheckError(Reason.REFUSED, "connection refused")
    if isinstance(cause, OSError) and cause.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return CheckError(Reason.REFUSED, "host unreachable")
    if isinstance(cause, TimeoutError):
        return CheckError(Reason.TIMEOUT, "no answer in time")
    if isinstance(exc, rex.BusyLoadingError):
        return CheckError(Reason.STATE, "instance is loading its dataset")
    if isinstance(exc, rex.ConnectionError):
        return CheckError(Reason.RESET, f"connection lost: {_first_line(exc)}")
    if isinstance(exc, rex.ResponseError):
        return CheckError(Reason.BAD_CONTENT, f"error reply: {_first_line(exc)}")
    return CheckError(Reason.ERROR, f"{type(exc).__name__}: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


@dataclass(frozen=True, slots=True)
class InstanceReport:
    """What one instance answered: parsed INFO and SLOWLOG LEN (None when not permitted)."""

    info: Mapping[str, str]
    keyspace: Mapping[str, Mapping[str, int]]
    """`db0` -> {"keys": .., "expires": ..}, from INFO's keyspace section."""
    slowlog_length: int | None


def parse_info(text: str) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """INFO as (field -> text, db -> keyspace counts). Section headers have no colon."""
    fields: dict[str, str] = {}
    keyspace: dict[str, dict[str, int]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        if key[:2] == "db" and key[2:].isdigit():
            stats = (pair.partition("=") for pair in value.split(","))
            keyspace[key] = {k: int(v) for k, _, v in stats if v.lstrip("-").isdigit()}
        else:
            fields[key] = value.rstrip()
    return fields, keyspace


def number(value: str | None) -> float | None:
    """An INFO field as a number; None when absent or not one."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


INSTANCE_COMMANDS: tuple[tuple[str, ...], ...] = (("INFO",), ("SLOWLOG", "LEN"))


def to_report(answers: list[Any]) -> tuple[InstanceReport, list[Any]]:
    """Answers of `[*extra, INFO, SLOWLOG LEN]` -> the report and the extra answers; raises the
    first error reply among INFO and the extras."""
    for answer in answers[:-1]:
        if isinstance(answer, Exception):
            raise answer
    slowlog = answers[-1]
    if isinstance(slowlog, Exception):
        slowlog = None  # an ACL without +slowlog: the series is absent, the check still runs
    info_raw = answers[-2]
    info, keyspace = parse_info(info_raw.decode("utf-8", "replace") if isinstance(info_raw, bytes)
                                else str(info_raw))
    return InstanceReport(info, keyspace, slowlog), answers[:-2]


def query_instance(connector: RedisConnector, host: str, port: int, deadline: Deadline,
                   password: str | None, extra: tuple[tuple[str, ...], ...] = ()
                   ) -> tuple[InstanceReport, list[Any]]:
    """INFO and SLOWLOG LEN (plus `extra` commands) in one round trip; raises redis errors.

    The extra commands' answers come back raw, in order; any of them failing raises."""
    return to_report(connector.exchange(host, port, deadline, password, [*extra, *INSTANCE_COMMANDS]))


def _ok(value: object) -> float:
    return 1.0 if value == "ok" else 0.0


def _link_up(value: object) -> float:
    return 1.0 if value == "up" else 0.0


# redis_exporter's names for INFO fields: (field, metric, type, help, transform).
INSTANCE_METRICS: tuple[tuple[str, str, str, str, Callable[[Any], float] | None], ...] = (
    ("uptime_in_seconds", "redis_uptime_in_seconds", "gauge", "Seconds since the instance started", None),
    ("connected_clients", "redis_connected_clients", "gauge", "Client connections", None),
    ("blocked_clients", "redis_blocked_clients", "gauge", "Clients blocked in BLPOP and the like", None),
    ("used_memory", "redis_memory_used_bytes", "gauge", "Memory allocated by Redis", None),
    ("used_memory_rss", "redis_memory_used_rss_bytes", "gauge", "Resident memory of the process", None),
    ("used_memory_peak", "redis_memory_used_peak_bytes", "gauge", "Peak allocated memory", None),
    ("maxmemory", "redis_memory_max_bytes", "gauge", "maxmemory setting (0 = unlimited)", None),
    ("mem_fragmentation_ratio", "redis_mem_fragmentation_ratio", "gauge",
     "RSS divided by allocated memory", None),
    ("rejected_connections", "redis_rejected_connections_total", "counter",
     "Connections refused because of maxclients", None),
    ("evicted_keys", "redis_evicted_keys_total", "counter", "Keys evicted because of maxmemory", None),
    ("expired_keys", "redis_expired_keys_total", "counter", "Keys expired", None),
    ("keyspace_hits", "redis_keyspace_hits_total", "counter", "Successful key lookups", None),
    ("keyspace_misses", "redis_keyspace_misses_total", "counter", "Failed key lookups", None),
    ("total_commands_processed", "redis_commands_processed_total", "counter", "Commands processed", None),
    ("total_connections_received", "redis_connections_received_total", "counter",
     "Connections accepted", None),
    ("instantaneous_ops_per_sec", "redis_instantaneous_ops_per_sec", "gauge",
     "Commands per second (Redis' own sample)", None),
    ("connected_slaves", "redis_connected_slaves", "gauge", "Replicas connected to this instance", None),
    ("master_repl_offset", "redis_master_repl_offset", "gauge", "Replication offset", None),
    ("rdb_changes_since_last_save", "redis_rdb_changes_since_last_save", "gauge",
     "Writes since the last RDB save", None),
    ("rdb_last_save_time", "redis_rdb_last_save_timestamp_seconds", "gauge",
     "Unix time of the last successful RDB save", None),
    ("rdb_bgsave_in_progress", "redis_rdb_bgsave_in_progress", "gauge", "1 while a BGSAVE runs", None),
    ("rdb_last_bgsave_status", "redis_rdb_last_bgsave_status", "gauge",
     "1 when the last BGSAVE succeeded", _ok),
    ("aof_enabled", "redis_aof_enabled", "gauge", "1 when the append-only file is on", None),
    ("aof_last_write_status", "redis_aof_last_write_status", "gauge",
     "1 when the last AOF write succeeded", _ok),
    ("aof_last_bgrewrite_status", "redis_aof_last_bgrewrite_status", "gauge",
     "1 when the last AOF rewrite succeeded", _ok),
    ("loading", "redis_loading_dump_file", "gauge", "1 while the dataset is loading", None),
    ("used_cpu_sys", "redis_cpu_sys_seconds_total", "counter", "System CPU of the process", None),
    ("used_cpu_user", "redis_cpu_user_seconds_total", "counter", "User CPU of the process", None),
    ("cluster_enabled", "redis_cluster_enabled", "gauge", "1 when cluster mode is on", None),
)

REPLICA_METRICS: tuple[tuple[str, str, str, str, Callable[[Any], float] | None], ...] = (
    ("master_link_status", "redis_master_link_up", "gauge", "1 when the replica's link to its master is up",
     _link_up),
    ("master_last_io_seconds_ago", "redis_master_last_io_seconds_ago", "gauge",
     "Seconds since the last exchange with the master", None),
    ("master_sync_in_progress", "redis_master_sync_in_progress", "gauge", "1 while a full sync runs", None),
    ("slave_repl_offset", "redis_slave_repl_offset", "gauge", "Replication offset of the replica", None),
)

INFO_LABELS = ("role", "redis_version", "redis_mode", "maxmemory_policy")
"""Labels of redis_instance_info: bounded ones only (no run_id, pid or os)."""


def emit_up(metrics: MetricSet, up: bool, labels: Mapping[str, str] | None = None) -> None:
    metrics.gauge("redis_up", "1 when the instance answered", 1 if up else 0, labels)


def emit_instance(metrics: MetricSet, report: InstanceReport,
                  labels: Mapping[str, str] | None = None) -> None:
    """Per-instance series with redis_exporter's names, e.g.

        redis_up 1
        redis_memory_used_bytes 1040128
        redis_db_keys{db="db0"} 2
        redis_instance_info{maxmemory_policy="noeviction",redis_mode="standalone",...,role="master"} 1
    """
    base = dict(labels or {})
    info = report.info
    emit_up(metrics, True, base)
    table = INSTANCE_METRICS + (REPLICA_METRICS if info.get("role") == "slave" else ())
    for field, name, type_, help_, transform in table:
        if field not in info:
            continue
        raw = info[field]
        value = transform(raw) if transform else number(raw)
        if value is None:
            continue
        if type_ == "counter":
            metrics.counter(name, help_, value, base)
        else:
            metrics.gauge(name, help_, value, base)
    if report.slowlog_length is not None:
        metrics.gauge("redis_slowlog_length", "Entries in the slow log", report.slowlog_length, base)
    databases = {"db0": {"keys": 0, "expires": 0}, **report.keyspace}
    for db, stats in sorted(databases.items(), key=lambda kv: int(kv[0][2:])):
        db_labels = {**base, "db": db}
        metrics.gauge("redis_db_keys", "Keys in the database", stats.get("keys", 0), db_labels)
        metrics.gauge("redis_db_keys_expiring", "Keys with a time to live in the database",
                      stats.get("expires", 0), db_labels)
    info_labels = {**base, **{key: str(info.get(key, "")) for key in INFO_LABELS}}
    metrics.gauge("redis_instance_info", "Information about the Redis instance", 1, info_labels)


def judge_instance(outcome: Outcome, report: InstanceReport, settings: ConnectionSettings,
                   where: str = "instance") -> None:
    """Record the first failure an instance's own INFO shows."""
    info = report.info
    if info.get("loading") == "1":
        outcome.fail(Reason.STATE, f"{where} is loading its dataset")
    if info.get("rdb_last_bgsave_status", "ok") != "ok":
        outcome.fail(Reason.STATE, f"{where}: last background save (BGSAVE) failed")
    if info.get("aof_enabled") == "1" and info.get("aof_last_write_status", "ok") != "ok":
        outcome.fail(Reason.STATE, f"{where}: last append-only file write failed")
    if info.get("role") == "slave" and info.get("master_link_status") != "up":
        outcome.fail(Reason.STATE, f"{where}: replica's link to its master is down")
    ratio = settings.memory_used_max_ratio
    used, maximum = number(info.get("used_memory")), number(info.get("maxmemory"))
    if ratio is not None and used is not None and maximum and used > ratio * maximum:
        outcome.fail(Reason.THRESHOLD,
                     f"{where}: memory used {used / maximum:.0%} of maxmemory, above {ratio:.0%}")


def query_many(connector: RedisConnector, addresses: list[tuple[str, int]], deadline: Deadline,
               password: str | None, max_workers: int
               ) -> dict[tuple[str, int], InstanceReport | CheckError]:
    """Query several instances at once, each within the deadline; every address gets its report or
    the reason it could not be read.

    Kept connections are scatter-gathered from this thread: the commands go out on all of them
    first, then the answers are read in turn, so the wait is the slowest node's, not the sum.
    Instances without a usable kept connection are connected by worker threads (at most
    `max_workers`). An instance still busy at the deadline is a timeout.
    """
    import concurrent.futures as cf

    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisError

    commands = list(INSTANCE_COMMANDS)
    results: dict[tuple[str, int], InstanceReport | CheckError] = {}
    futures: dict[cf.Future[list[Any] | CheckError], tuple[str, int]] = {}
    pool: cf.ThreadPoolExecutor | None = None

    def fresh(address: tuple[str, int]) -> list[Any] | CheckError:
        try:
            return connector.fresh_exchange(address[0], address[1], deadline, password, commands)
        except (RedisError, OSError) as exc:
            return classify(exc)

    def connect_later(address: tuple[str, int]) -> None:
        nonlocal pool
        if pool is None:
            pool = cf.ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(addresses))),
                                         thread_name_prefix="redis-node")
        futures[pool.submit(fresh, address)] = address

    def report(answers: list[Any] | CheckError) -> InstanceReport | CheckError:
        if isinstance(answers, CheckError):
            return answers
        try:
            return to_report(answers)[0]
        except RedisError as exc:
            return classify(exc)

    try:
        sent = []
        for address in addresses:
            kept = connector.take(address[0], address[1], password)
            if kept is None:
                connect_later(address)
                continue
            try:
                connector.send(kept, commands)
                sent.append((address, kept))
            except (RedisError, OSError):
                kept.disconnect()
                connect_later(address)
        for address, kept in sent:
            try:
                answers = connector.receive(kept, len(commands), deadline)
            except RedisConnectionError as exc:
                kept.disconnect()  # stale: restarted or closed by the server
                if deadline.expired():
                    results[address] = classify(exc)
                else:
                    connect_later(address)
            except (RedisError, OSError) as exc:
                kept.disconnect()
                results[address] = classify(exc)
            else:
                connector.keep(address[0], address[1], password, kept)
                results[address] = report(answers)
        if futures:
            done, _ = cf.wait(futures, timeout=deadline.left(0.01))
            for future, address in futures.items():
                results[address] = (report(future.result()) if future in done
                                    else CheckError(Reason.TIMEOUT, "no answer in time"))
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
    return {address: results[address] for address in addresses}
