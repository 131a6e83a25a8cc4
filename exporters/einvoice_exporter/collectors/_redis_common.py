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
from dataclasses import dataclass, field
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
        connection.send_packed_command([_packed(tuple(commands))])

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


@functools.lru_cache(maxsize=64)
def _packed(commands: tuple[tuple[str, ...], ...]) -> bytes:
    """RESP for a batch of commands; the same few batches go out on every run (packing them each
    time was a tenth of a run's CPU)."""
    parts = []
    for command in commands:
        words = [word.encode() for word in command]
        parts.append(f"*{len(words)}\r\n".encode() + b"".join(
            b"$%d\r\n%b\r\n" % (len(word), word) for word in words))
    return b"".join(parts)


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
    """What one instance answered: INFO ALL parsed, and the optional answers (None when the ACL
    does not permit the command: that series is absent, the check still runs)."""

    info: Mapping[str, str]
    keyspace: Mapping[str, Mapping[str, int]]
    """`db0` -> {"keys": .., "expires": .., "avg_ttl": ..}, from INFO's keyspace section."""
    slowlog_length: int | None
    stats: Mapping[str, Mapping[str, Mapping[str, str]]] = field(default_factory=dict)
    """INFO's `name:k=v,...` lines by prefix: `cmdstat_`, `errorstat_`, `latency_percentiles_usec_`,
    `slave` (a master's replicas) -> suffix -> {k: v}."""
    slowlog_last: tuple[int, float] | None = None
    """(id, duration in seconds) of the newest slow log entry; (0, 0) when the log is empty."""
    latency_latest: tuple[tuple[str, float, float], ...] | None = None
    """LATENCY LATEST: (event, unix time of the latest spike, its duration in seconds)."""
    config: Mapping[str, str] = field(default_factory=dict)
    """CONFIG GET answers for CONFIG_KEYS that were permitted."""
    extra: tuple[Any, ...] = ()
    """Raw answers of the extra commands sent before INSTANCE_COMMANDS (e.g. CLUSTER INFO)."""


_STAT_PREFIXES = ("cmdstat_", "errorstat_", "latency_percentiles_usec_")


Stats = dict[str, dict[str, dict[str, str]]]


def parse_info(text: str) -> tuple[dict[str, str], dict[str, dict[str, int]], Stats]:
    """INFO as (field -> text, db -> keyspace counts, prefix -> name -> {k: v}) in one pass.

    Section headers have no colon; `k=v,...` values are split only for the known prefixes."""
    fields: dict[str, str] = {}
    keyspace: dict[str, dict[str, int]] = {}
    stats: Stats = {prefix: {} for prefix in (*_STAT_PREFIXES, "slave")}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        head = key[:2]
        if head == "db" and key[2:].isdigit():
            pairs = (pair.partition("=") for pair in value.split(","))
            keyspace[key] = {k: int(v) for k, _, v in pairs if v.lstrip("-").isdigit()}
            continue
        if "=" in value and head in ("cm", "er", "la", "sl"):
            for prefix in _STAT_PREFIXES:
                if key.startswith(prefix):
                    stats[prefix][key[len(prefix):]] = _kv(value)
                    break
            else:
                if key.startswith("slave") and key[5:].isdigit():
                    stats["slave"][key[5:]] = _kv(value)
                else:
                    fields[key] = value.rstrip()
            continue
        fields[key] = value.rstrip()
    return fields, keyspace, stats


def _kv(value: str) -> dict[str, str]:
    return dict(pair.partition("=")[::2] for pair in value.rstrip().split(","))


def number(value: str | None) -> float | None:
    """An INFO field as a number; None when absent or not one."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


CONFIG_KEYS = ("maxclients", "maxmemory", "io-threads")
"""CONFIG GET one key each (Redis before 7 takes one pattern per call), as redis_config_*."""
INSTANCE_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("INFO", "ALL"), ("SLOWLOG", "LEN"), ("SLOWLOG", "GET", "1"), ("LATENCY", "LATEST"),
    *(("CONFIG", "GET", key) for key in CONFIG_KEYS))
"""What each instance is asked, in one round trip. Only INFO is required; the others may be refused
by the ACL (see the module docstrings) and their series are then absent."""
_OPTIONAL = len(INSTANCE_COMMANDS) - 1


def _text(raw: Any) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def to_report(answers: list[Any]) -> tuple[InstanceReport, list[Any]]:
    """Answers of `[*extra, *INSTANCE_COMMANDS]` -> the report and the extra answers; raises the
    first error reply among the extras and INFO."""
    count = len(INSTANCE_COMMANDS)
    extra, own = answers[:-count], answers[-count:]
    for answer in (*extra, own[0]):
        if isinstance(answer, Exception):
            raise answer
    info, keyspace, stats = parse_info(_text(own[0]))
    slowlog_len, slowlog_get, latency, *configs = (
        None if isinstance(answer, Exception) else answer for answer in own[1:])
    slowlog_last: tuple[int, float] | None = None
    if isinstance(slowlog_get, list):
        entry = slowlog_get[0] if slowlog_get else None
        slowlog_last = (int(entry[0]), int(entry[2]) / 1e6) if entry else (0, 0.0)
    spikes: tuple[tuple[str, float, float], ...] | None = None
    if isinstance(latency, list):
        spikes = tuple((_text(event[0]), float(event[1]), float(event[2]) / 1000) for event in latency)
    config = {}
    for key, answer in zip(CONFIG_KEYS, configs, strict=True):
        if isinstance(answer, list) and len(answer) >= 2:
            config[key] = _text(answer[1])
    return InstanceReport(info, keyspace, slowlog_len, stats, slowlog_last, spikes, config,
                          tuple(extra)), extra


def query_instance(connector: RedisConnector, host: str, port: int, deadline: Deadline,
                   password: str | None, extra: tuple[tuple[str, ...], ...] = ()
                   ) -> tuple[InstanceReport, list[Any]]:
    """INSTANCE_COMMANDS (plus `extra` commands first) in one round trip; raises redis errors.

    The extra commands' answers come back raw, in order; any of them failing raises."""
    return to_report(connector.exchange(host, port, deadline, password, [*extra, *INSTANCE_COMMANDS]))


def _ok(value: str) -> float | None:
    return 1.0 if value == "ok" else 0.0


def _micros(value: str) -> float | None:
    parsed = number(value)
    return None if parsed is None else parsed / 1e6


G, C = "gauge", "counter"
COUNTERS_AS_GAUGES = ("redis_unexpected_error_replies", "redis_total_error_replies",
                      "redis_dump_payload_sanitizations", "redis_total_reads_processed",
                      "redis_total_writes_processed", "redis_io_threaded_reads_processed",
                      "redis_io_threaded_writes_processed")
"""Counters in redis_exporter whose names lack `_total`: OpenMetrics (what Prometheus asks for)
requires a counter's sample to end in `_total`, so these keep the name and are typed gauge."""
# INFO field -> (redis_exporter's metric name, type, help, transform). Fields not listed are not
# exposed (as in redis_exporter 1.45); the `_human` duplicates and texts never are.
INFO_METRICS: dict[str, tuple[str, str, str, Callable[[str], float | None]]] = {
    field: (name, type_, help_, transform or number)
    for field, name, type_, help_, transform in (
        # server, clients
        ("uptime_in_seconds", "redis_uptime_in_seconds", G, "Seconds since the instance started", None),
        ("process_id", "redis_process_id", G, "Process id of the server", None),
        ("connected_clients", "redis_connected_clients", G, "Client connections", None),
        ("blocked_clients", "redis_blocked_clients", G, "Clients blocked in BLPOP and the like", None),
        ("tracking_clients", "redis_tracking_clients", G, "Clients tracking keys", None),
        ("clients_in_timeout_table", "redis_clients_in_timeout_table", G,
         "Clients in the timeout table", None),
        ("client_recent_max_input_buffer", "redis_client_recent_max_input_buffer_bytes", G,
         "Largest recent client input buffer", None),
        ("client_recent_max_output_buffer", "redis_client_recent_max_output_buffer_bytes", G,
         "Largest recent client output buffer", None),
        ("client_longest_output_list", "redis_client_longest_output_list", G,
         "Longest client output list (Redis < 5)", None),
        ("client_biggest_input_buf", "redis_client_biggest_input_buf", G,
         "Biggest client input buffer (Redis < 5)", None),
        # memory
        ("used_memory", "redis_memory_used_bytes", G, "Memory allocated by Redis", None),
        ("used_memory_rss", "redis_memory_used_rss_bytes", G, "Resident memory of the process", None),
        ("used_memory_peak", "redis_memory_used_peak_bytes", G, "Peak allocated memory", None),
        ("used_memory_overhead", "redis_memory_used_overhead_bytes", G,
         "Memory for internal structures", None),
        ("used_memory_startup", "redis_memory_used_startup_bytes", G, "Memory used at startup", None),
        ("used_memory_dataset", "redis_memory_used_dataset_bytes", G, "Memory used by the dataset", None),
        ("used_memory_lua", "redis_memory_used_lua_bytes", G, "Memory of the Lua engine", None),
        ("used_memory_scripts", "redis_memory_used_scripts_bytes", G, "Memory of cached scripts", None),
        ("maxmemory", "redis_memory_max_bytes", G, "maxmemory setting (0 = unlimited)", None),
        ("total_system_memory", "redis_total_system_memory_bytes", G, "Memory of the host", None),
        ("mem_fragmentation_ratio", "redis_mem_fragmentation_ratio", G,
         "RSS divided by allocated memory", None),
        ("mem_fragmentation_bytes", "redis_mem_fragmentation_bytes", G, "RSS minus allocated memory", None),
        ("mem_clients_slaves", "redis_mem_clients_slaves", G, "Memory of replica client buffers", None),
        ("mem_clients_normal", "redis_mem_clients_normal", G, "Memory of normal client buffers", None),
        ("mem_not_counted_for_evict", "redis_mem_not_counted_for_eviction_bytes", G,
         "Memory not counted for eviction", None),
        ("allocator_allocated", "redis_allocator_allocated_bytes", G, "Allocator: allocated", None),
        ("allocator_active", "redis_allocator_active_bytes", G, "Allocator: active", None),
        ("allocator_resident", "redis_allocator_resident_bytes", G, "Allocator: resident", None),
        ("allocator_frag_ratio", "redis_allocator_frag_ratio", G, "Allocator fragmentation ratio", None),
        ("allocator_frag_bytes", "redis_allocator_frag_bytes", G, "Allocator fragmentation", None),
        ("allocator_rss_ratio", "redis_allocator_rss_ratio", G, "Allocator RSS ratio", None),
        ("allocator_rss_bytes", "redis_allocator_rss_bytes", G, "Allocator RSS overhead", None),
        ("lazyfree_pending_objects", "redis_lazyfree_pending_objects", G,
         "Objects waiting to be freed", None),
        ("active_defrag_running", "redis_active_defrag_running", G, "Active defragmentation running", None),
        ("number_of_cached_scripts", "redis_number_of_cached_scripts", G, "Cached Lua scripts", None),
        # persistence
        ("loading", "redis_loading_dump_file", G, "1 while the dataset is loading", None),
        ("rdb_changes_since_last_save", "redis_rdb_changes_since_last_save", G,
         "Writes since the last RDB save", None),
        ("rdb_bgsave_in_progress", "redis_rdb_bgsave_in_progress", G, "1 while a BGSAVE runs", None),
        ("rdb_last_save_time", "redis_rdb_last_save_timestamp_seconds", G,
         "Unix time of the last successful RDB save", None),
        ("rdb_last_bgsave_status", "redis_rdb_last_bgsave_status", G,
         "1 when the last BGSAVE succeeded", _ok),
        ("rdb_last_bgsave_time_sec", "redis_rdb_last_bgsave_duration_sec", G,
         "Duration of the last BGSAVE", None),
        ("rdb_current_bgsave_time_sec", "redis_rdb_current_bgsave_duration_sec", G,
         "Duration of the running BGSAVE", None),
        ("rdb_last_cow_size", "redis_rdb_last_cow_size_bytes", G,
         "Copy-on-write memory of the last BGSAVE", None),
        ("aof_enabled", "redis_aof_enabled", G, "1 when the append-only file is on", None),
        ("aof_rewrite_in_progress", "redis_aof_rewrite_in_progress", G, "1 while an AOF rewrite runs", None),
        ("aof_rewrite_scheduled", "redis_aof_rewrite_scheduled", G,
         "1 when an AOF rewrite is scheduled", None),
        ("aof_last_rewrite_time_sec", "redis_aof_last_rewrite_duration_sec", G,
         "Duration of the last AOF rewrite", None),
        ("aof_current_rewrite_time_sec", "redis_aof_current_rewrite_duration_sec", G,
         "Duration of the running AOF rewrite", None),
        ("aof_last_bgrewrite_status", "redis_aof_last_bgrewrite_status", G,
         "1 when the last AOF rewrite succeeded", _ok),
        ("aof_last_write_status", "redis_aof_last_write_status", G,
         "1 when the last AOF write succeeded", _ok),
        ("aof_last_cow_size", "redis_aof_last_cow_size_bytes", G,
         "Copy-on-write memory of the last rewrite", None),
        ("module_fork_in_progress", "redis_module_fork_in_progress", G, "1 while a module fork runs", None),
        ("module_fork_last_cow_size", "redis_module_fork_last_cow_size", G,
         "Copy-on-write memory of the last module fork", None),
        # stats
        ("total_connections_received", "redis_connections_received_total", C, "Connections accepted", None),
        ("total_commands_processed", "redis_commands_processed_total", C, "Commands processed", None),
        ("total_net_input_bytes", "redis_net_input_bytes_total", C, "Bytes read from the network", None),
        ("total_net_output_bytes", "redis_net_output_bytes_total", C, "Bytes written to the network", None),
        ("rejected_connections", "redis_rejected_connections_total", C,
         "Connections refused because of maxclients", None),
        ("sync_full", "redis_replica_resyncs_full", G, "Full resynchronisations with replicas", None),
        ("sync_partial_ok", "redis_replica_partial_resync_accepted", G, "Partial resyncs accepted", None),
        ("sync_partial_err", "redis_replica_partial_resync_denied", G, "Partial resyncs denied", None),
        ("expired_keys", "redis_expired_keys_total", C, "Keys expired", None),
        ("expired_stale_perc", "redis_expired_stale_percentage", G, "Share of keys probably expired", None),
        ("expired_time_cap_reached_count", "redis_expired_time_cap_reached_total", G,
         "Times the expire cycle stopped early", None),
        ("evicted_keys", "redis_evicted_keys_total", C, "Keys evicted because of maxmemory", None),
        ("keyspace_hits", "redis_keyspace_hits_total", C, "Successful key lookups", None),
        ("keyspace_misses", "redis_keyspace_misses_total", C, "Failed key lookups", None),
        ("pubsub_channels", "redis_pubsub_channels", G, "Pub/sub channels with subscribers", None),
        ("pubsub_patterns", "redis_pubsub_patterns", G, "Pub/sub patterns with subscribers", None),
        ("latest_fork_usec", "redis_latest_fork_seconds", G, "Duration of the latest fork", _micros),
        ("migrate_cached_sockets", "redis_migrate_cached_sockets_total", G, "Sockets open for MIGRATE", None),
        ("slave_expires_tracked_keys", "redis_slave_expires_tracked_keys", G,
         "Keys tracked for expiry on a writable replica", None),
        ("active_defrag_hits", "redis_defrag_hits", G, "Defragmentation: values moved", None),
        ("active_defrag_misses", "redis_defrag_misses", G, "Defragmentation: values skipped", None),
        ("active_defrag_key_hits", "redis_defrag_key_hits", G, "Defragmentation: keys moved", None),
        ("active_defrag_key_misses", "redis_defrag_key_misses", G, "Defragmentation: keys skipped", None),
        ("tracking_total_keys", "redis_tracking_total_keys", G, "Keys tracked for clients", None),
        ("tracking_total_items", "redis_tracking_total_items", G, "Items tracked for clients", None),
        ("tracking_total_prefixes", "redis_tracking_total_prefixes", G, "Prefixes tracked for clients", None),
        ("unexpected_error_replies", "redis_unexpected_error_replies", G, "Unexpected error replies", None),
        ("total_error_replies", "redis_total_error_replies", G, "Error replies", None),
        ("dump_payload_sanitizations", "redis_dump_payload_sanitizations", G, "DUMP payload checks", None),
        ("total_reads_processed", "redis_total_reads_processed", G, "Read events processed", None),
        ("total_writes_processed", "redis_total_writes_processed", G, "Write events processed", None),
        ("io_threaded_reads_processed", "redis_io_threaded_reads_processed", G, "Reads by I/O threads", None),
        ("io_threaded_writes_processed", "redis_io_threaded_writes_processed", G,
         "Writes by I/O threads", None),
        ("io_threads_active", "redis_io_threads_active", G, "1 when I/O threads are active", None),
        ("instantaneous_ops_per_sec", "redis_instantaneous_ops_per_sec", G,
         "Commands per second (Redis' own sample; not in redis_exporter 1.45)", None),
        # replication
        ("connected_slaves", "redis_connected_slaves", G, "Replicas connected to this instance", None),
        ("master_repl_offset", "redis_master_repl_offset", G, "Replication offset", None),
        ("second_repl_offset", "redis_second_repl_offset", G,
         "Offset up to which replication ids are accepted", None),
        ("repl_backlog_active", "redis_repl_backlog_is_active", G, "1 when the backlog is active", None),
        ("repl_backlog_size", "redis_replication_backlog_bytes", G, "Size of the replication backlog", None),
        ("repl_backlog_first_byte_offset", "redis_repl_backlog_first_byte_offset", G,
         "Offset of the backlog's first byte", None),
        ("repl_backlog_histlen", "redis_repl_backlog_history_bytes", G, "Bytes in the backlog", None),
        ("slave_priority", "redis_slave_priority", G, "Replica priority for failover", None),
        ("replica_priority", "redis_slave_priority", G, "Replica priority for failover", None),
        # cpu, cluster
        ("used_cpu_sys", "redis_cpu_sys_seconds_total", C, "System CPU of the process", None),
        ("used_cpu_user", "redis_cpu_user_seconds_total", C, "User CPU of the process", None),
        ("used_cpu_sys_children", "redis_cpu_sys_children_seconds_total", C, "System CPU of children", None),
        ("used_cpu_user_children", "redis_cpu_user_children_seconds_total", C, "User CPU of children", None),
        ("used_cpu_sys_main_thread", "redis_cpu_sys_main_thread_seconds_total", C,
         "System CPU of the main thread", None),
        ("used_cpu_user_main_thread", "redis_cpu_user_main_thread_seconds_total", C,
         "User CPU of the main thread", None),
        ("cluster_enabled", "redis_cluster_enabled", G, "1 when cluster mode is on", None),
        ("cluster_connections", "redis_cluster_connections", G, "Cluster bus connections", None),
    )
}

REPLICA_METRICS: tuple[tuple[str, str, str, Callable[[str], float | None]], ...] = (
    ("master_link_status", "redis_master_link_up", "1 when the replica's link to its master is up",
     lambda value: 1.0 if value == "up" else 0.0),
    ("master_last_io_seconds_ago", "redis_master_last_io_seconds_ago",
     "Seconds since the last exchange with the master", number),
    ("master_sync_in_progress", "redis_master_sync_in_progress", "1 while a full sync runs", number),
    ("slave_repl_offset", "redis_slave_repl_offset", "Replication offset of the replica", number),
)
"""On a replica, labelled `master_host`/`master_port` as redis_exporter does."""

INFO_LABELS = ("role", "redis_version", "redis_build_id", "redis_mode", "os", "maxmemory_policy",
               "tcp_port", "run_id", "process_id")
"""Labels of redis_instance_info, as redis_exporter's. `run_id` and `process_id` change at each
restart only (a restart starts a new series, as upstream)."""
QUANTILES = {"p50": "50", "p99": "99", "p99.9": "99.9"}


def emit_up(metrics: MetricSet, up: bool, labels: Mapping[str, str] | None = None) -> None:
    metrics.gauge("redis_up", "1 when the instance answered", 1 if up else 0, labels)


def emit_instance(metrics: MetricSet, report: InstanceReport,
                  labels: Mapping[str, str] | None = None) -> None:
    """Per-instance series with redis_exporter's names, types and labels, e.g.

        redis_up 1
        redis_memory_used_bytes 1040128
        redis_commands_total{cmd="get"} 12
        redis_db_keys{db="db0"} 2
        redis_instance_info{maxmemory_policy="noeviction",redis_mode="standalone",...,role="master"} 1
    """
    base = dict(labels or {})
    info = report.info
    gauge, counter = metrics.gauge, metrics.counter
    emit_up(metrics, True, base)
    for key, raw in info.items():
        spec = INFO_METRICS.get(key)
        if spec is None:
            continue
        name, type_, help_, transform = spec
        value = transform(raw)
        if value is None:
            continue
        (counter if type_ == C else gauge)(name, help_, value, base)
    _emit_time(metrics, info, base)
    if info.get("role") == "slave":
        master = {**base, "master_host": info.get("master_host", ""),
                  "master_port": info.get("master_port", "")}
        for key, name, help_, transform in REPLICA_METRICS:
            value = transform(info[key]) if key in info else None
            if value is not None:
                gauge(name, help_, value, master)
        gauge("redis_slave_info", "Replica's master and read-only setting", 1,
              {**master, "read_only": info.get("slave_read_only", info.get("replica_read_only", ""))})
    for replica in report.stats.get("slave", {}).values():
        replica_labels = {**base, "slave_ip": replica.get("ip", ""), "slave_port": replica.get("port", ""),
                          "slave_state": replica.get("state", "")}
        for key, name, help_ in (("lag", "redis_connected_slave_lag_seconds", "Replica's lag"),
                                 ("offset", "redis_connected_slave_offset_bytes", "Replica's offset")):
            value = number(replica.get(key))
            if value is not None:
                gauge(name, help_, value, replica_labels)
    _emit_stats(metrics, report, base)
    _emit_optional(metrics, report, base)
    databases = {"db0": {"keys": 0, "expires": 0}, **report.keyspace}
    for db, stats in sorted(databases.items(), key=lambda kv: int(kv[0][2:])):
        db_labels = {**base, "db": db}
        gauge("redis_db_keys", "Keys in the database", stats.get("keys", 0), db_labels)
        gauge("redis_db_keys_expiring", "Keys with a time to live in the database",
              stats.get("expires", 0), db_labels)
        if "avg_ttl" in stats:
            gauge("redis_db_avg_ttl_seconds", "Average time to live of keys with one",
                  stats["avg_ttl"] / 1000, db_labels)
    info_labels = {**base, **{key: str(info.get(key, "")) for key in INFO_LABELS}}
    gauge("redis_instance_info", "Information about the Redis instance", 1, info_labels)


def _emit_time(metrics: MetricSet, info: Mapping[str, str], base: Mapping[str, str]) -> None:
    """redis_start_time_seconds from the server's own clock (server_time_usec, Redis 5+) minus its
    uptime; from ours when the server does not tell its time."""
    uptime = number(info.get("uptime_in_seconds"))
    if uptime is None:
        return
    now = number(info.get("server_time_usec"))
    started = (now / 1e6 if now is not None else time.time()) - uptime
    metrics.gauge("redis_start_time_seconds", "Unix time the instance started", int(started), base)


def _emit_stats(metrics: MetricSet, report: InstanceReport, base: Mapping[str, str]) -> None:
    """Per command and per error type (INFO commandstats, errorstats, latencystats)."""
    counter = metrics.counter
    for cmd, stat in report.stats.get("cmdstat_", {}).items():
        labels = {**base, "cmd": cmd}
        counter("redis_commands_total", "Calls per command", float(stat.get("calls", 0)), labels)
        counter("redis_commands_duration_seconds_total", "Time spent per command",
                float(stat.get("usec", 0)) / 1e6, labels)
        if "rejected_calls" in stat:
            counter("redis_commands_rejected_calls_total", "Calls rejected before execution",
                    float(stat["rejected_calls"]), labels)
            counter("redis_commands_failed_calls_total", "Calls that failed in execution",
                    float(stat.get("failed_calls", 0)), labels)
    for err, stat in report.stats.get("errorstat_", {}).items():
        counter("redis_errors_total", "Error replies per error prefix", float(stat.get("count", 0)),
                {**base, "err": err})
    commands = report.stats.get("cmdstat_", {})
    for cmd, stat in report.stats.get("latency_percentiles_usec_", {}).items():
        quantiles = {QUANTILES.get(key, key.removeprefix("p")): float(value) for key, value in stat.items()}
        calls = commands.get(cmd, {})
        metrics.summary("redis_latency_percentiles_usec", "Command latency percentiles (microseconds)",
                        quantiles, float(calls.get("usec", 0)), float(calls.get("calls", 0)),
                        {**base, "cmd": cmd})


def _emit_optional(metrics: MetricSet, report: InstanceReport, base: Mapping[str, str]) -> None:
    """Slow log, latency monitor and configuration: absent when the ACL refused the command."""
    gauge = metrics.gauge
    if report.slowlog_length is not None:
        gauge("redis_slowlog_length", "Entries in the slow log", report.slowlog_length, base)
    if report.slowlog_last is not None:
        last_id, duration = report.slowlog_last
        gauge("redis_slowlog_last_id", "Id of the newest slow log entry", last_id, base)
        gauge("redis_last_slow_execution_duration_seconds", "Duration of the newest slow log entry",
              duration, base)
    for event, when, duration in report.latency_latest or ():
        labels = {**base, "event_name": event}
        gauge("redis_latency_spike_last", "Unix time of the latest latency spike", when, labels)
        gauge("redis_latency_spike_duration_seconds", "Duration of the latest latency spike",
              duration, labels)
    for key, value in report.config.items():
        parsed = number(value)
        if parsed is not None:
            gauge(f"redis_config_{key.replace('-', '_')}", f"CONFIG {key}", parsed, base)


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
               password: str | None, max_workers: int, extra: tuple[tuple[str, ...], ...] = ()
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

    commands = [*extra, *INSTANCE_COMMANDS]
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
