"""Collector of kind `kafka`: consumer-group lag per group, topic and partition (item 13).

Offsets and lag carry kafka_exporter's names (`kafka_consumergroup_lag`, ...), so its community
dashboards work. Two things kafka_exporter lacks, because a lag of 10 000 messages means nothing
without the production rate:

* lag in seconds, named as kafka-lag-exporter names it (`kafka_consumergroup_group_lag_seconds`,
  `kafka_consumergroup_group_max_lag_seconds`) but with kafka_exporter's label names. It is
  estimated, like kafka-lag-exporter does, from a bounded history of (time, log-end offset) points
  the collector keeps per partition: the time at which the log end was where the group's committed
  offset is now, interpolated between the two points around it;
* a stalled-consumer signal: the committed offset has not moved for `stall_after` while lag > 0.

Exposition (identity labels added by the runtime omitted):

    kafka_consumergroup_lag{consumergroup="invoice-push",topic="invoices",partition="0"} 42
    kafka_consumergroup_lag_sum{consumergroup="invoice-push",topic="invoices"} 42
    kafka_consumergroup_group_lag_seconds{consumergroup="invoice-push",topic="invoices",partition="0"} 12.5
    einvoice_kafka_consumergroup_state{consumergroup="invoice-push",state="Stable"} 1
    einvoice_kafka_consumergroup_stalled{consumergroup="invoice-push"} 0
    kafka_brokers 3
    kafka_broker_info{address="10.3.0.1:9092",id="1"} 1
    kafka_topic_partition_oldest_offset{partition="0",topic="invoices"} 1200
    kafka_topic_partition_leader{partition="0",topic="invoices"} 1
    kafka_topic_partition_replicas{partition="0",topic="invoices"} 3
    kafka_topic_partition_in_sync_replica{partition="0",topic="invoices"} 3
    kafka_topic_partition_under_replicated_partition{partition="0",topic="invoices"} 0

The broker and placement series are kafka_exporter's (DescribeCluster, DescribeTopics and ListOffsets
earliest: the monitoring principal needs Describe on the cluster and the topics).

kafka-python is imported lazily (validating a config must not import it).
"""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, model_validator

from ..fields import Duration, StrictModel, TlsFiles, one_of_secret, resolve_secret
from ..outcome import Check, MetricSet, Outcome, Reason
from . import CheckError, Deadline

GROUP_STATES: tuple[str, ...] = (
    "Stable", "PreparingRebalance", "CompletingRebalance", "Empty", "Dead",
    "Assigning", "Reconciling", "Unknown",
)
"""Group states as brokers report them (KIP-518, KIP-848); anything else is shown as Unknown."""

Regex = re.Pattern[str]
MAX_TARGETS = 64
"""Targets whose history and admin client one module keeps (configured checks plus /probe)."""


class SaslSettings(StrictModel):
    mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
    username: Annotated[str, Field(min_length=1)]
    password: SecretStr | None = None
    password_file: Path | None = None

    @model_validator(mode="after")
    def _one_password(self) -> SaslSettings:
        one_of_secret(self.password, self.password_file, "password")
        if self.password is None and self.password_file is None:
            raise ValueError("sasl needs password or password_file")
        return self


class TlsSettings(TlsFiles):
    """TLS towards the brokers."""


class GroupOverride(StrictModel):
    """Thresholds for the groups whose id matches `group` (the first matching override wins)."""

    group: Regex
    max_lag: Annotated[int, Field(ge=0)] | None = None
    max_lag_seconds: Duration | None = None
    stall_after: Duration | None = None


class Settings(StrictModel):
    """Settings of a `kafka` module. The target is the bootstrap list `host:port[,host:port]`."""

    group_filter: Regex = re.compile(".*")
    group_exclude: Regex | None = None
    topic_filter: Regex = re.compile(".*")
    topic_exclude: Regex | None = re.compile("^__.*")
    """Internal topics (__consumer_offsets, ...) are left out by default, as kafka_exporter does."""
    max_lag: Annotated[int, Field(ge=0)] | None = None
    """Fail when a group's lag summed over its partitions exceeds this many messages."""
    max_lag_seconds: Duration | None = None
    """Fail when a group's largest estimated lag in seconds exceeds this."""
    stall_after: Duration | None = 300.0
    """Fail (reason state) when a committed offset stays put this long while lag > 0; 0 disables."""
    history_size: Annotated[int, Field(ge=2, le=10_000)] = 120
    """Log-end offset points kept per partition for the lag-in-seconds estimate."""
    overrides: list[GroupOverride] = Field(default_factory=list)
    sasl: SaslSettings | None = None
    tls: TlsSettings | None = None
    client_id: Annotated[str, Field(min_length=1, max_length=64)] = "einvoice-exporter"


_SERVER_RE = re.compile(r"^(?:\[(?P<ip6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9_.-]+)):(?P<port>\d{1,5})$")


def parse_servers(target: str) -> list[tuple[str, int]]:
    servers: list[tuple[str, int]] = []
    for raw in target.split(","):
        item = raw.strip()
        match = _SERVER_RE.fullmatch(item)
        if match is None:
            raise ValueError(f"{item!r} is not host:port; write bootstrap servers like "
                             "kafka1:9092,kafka2:9092")
        port = int(match["port"])
        if not 0 < port < 65536:
            raise ValueError(f"port {port} in {item!r} is out of range")
        servers.append((match["ip6"] or match["host"], port))
    return servers


def validate_target(target: str) -> str:
    parse_servers(target)
    return target


@dataclass(frozen=True, slots=True)
class Thresholds:
    max_lag: int | None
    max_lag_seconds: float | None
    stall_after: float | None


def thresholds_for(settings: Settings, group: str) -> Thresholds:
    for override in settings.overrides:
        if override.group.search(group):
            return Thresholds(
                override.max_lag if override.max_lag is not None else settings.max_lag,
                override.max_lag_seconds if override.max_lag_seconds is not None
                else settings.max_lag_seconds,
                override.stall_after if override.stall_after is not None else settings.stall_after,
            )
    return Thresholds(settings.max_lag, settings.max_lag_seconds, settings.stall_after)


class OffsetHistory:
    """Bounded (time, log-end offset) points of one partition, oldest first.

    A flat stretch keeps only its first and last point, so the bounded history covers idle
    periods cheaply; the last time the log end stood at an offset is what the estimate needs.
    """

    def __init__(self, size: int) -> None:
        self.points: deque[tuple[float, int]] = deque(maxlen=size)

    def add(self, now: float, offset: int) -> None:
        if self.points and offset < self.points[-1][1]:
            self.points.clear()  # topic recreated or truncated: the old points describe another log
        if (len(self.points) >= 2 and self.points[-1][1] == offset
                and self.points[-2][1] == offset):
            self.points[-1] = (now, offset)
        else:
            self.points.append((now, offset))

    def time_at(self, offset: int) -> float | None:
        """When the log end stood at `offset` (interpolated), or None when history cannot say."""
        points = self.points
        if not points:
            return None
        newest_time, newest_offset = points[-1]
        if offset >= newest_offset:
            return newest_time
        oldest_time, oldest_offset = points[0]
        if offset < oldest_offset:
            # Older than the history: extrapolate at the rate seen over the history, and never
            # claim less than the history's span (the log end was already past it then).
            span = newest_time - oldest_time
            if span <= 0:
                return None
            rate = (newest_offset - oldest_offset) / span
            return oldest_time - (oldest_offset - offset) / rate if rate > 0 else oldest_time
        before = max(i for i, (_, off) in enumerate(points) if off <= offset)
        t0, o0 = points[before]
        t1, o1 = points[before + 1]
        return t0 + (offset - o0) / (o1 - o0) * (t1 - t0)


@dataclass(slots=True)
class _Commit:
    offset: int
    since: float


@dataclass(slots=True)
class _TargetState:
    history: dict[tuple[str, int], OffsetHistory] = field(default_factory=dict)
    commits: dict[tuple[str, str, int], _Commit] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True, slots=True)
class GroupView:
    """What the brokers say about one group, the collector's input."""

    state: str
    members: int | None
    committed: dict[tuple[str, int], int]


@dataclass(frozen=True, slots=True)
class PartitionMeta:
    """Leader and replica placement of one partition (Metadata/DescribeTopics)."""

    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ClusterView:
    groups: dict[str, GroupView]
    log_end: dict[tuple[str, int], int]
    partitions: dict[str, int]
    brokers: tuple[tuple[int, str, int], ...] = ()
    """(id, host, port) of every broker (DescribeCluster)."""
    placement: dict[tuple[str, int], PartitionMeta] = field(default_factory=dict)
    log_start: dict[tuple[str, int], int] = field(default_factory=dict)
    """Oldest offset still in the log (ListOffsets, earliest)."""


def _tcp_precheck(servers: list[tuple[str, int]], timeout: float,
                  tls: ssl.SSLContext | None = None) -> None:
    """Reach one bootstrap server by TCP first: kafka-python reports refused, silent and unknown
    hosts all as one bootstrap timeout, and leaves its IO thread running when it gives up."""
    per_server = max(timeout / max(len(servers), 1), 0.2)
    reasons: list[tuple[Reason, str]] = []
    for host, port in servers:
        try:
            with socket.create_connection((host, port), timeout=per_server) as sock:
                if tls is not None:
                    # kafka-python retries a failed handshake until its bootstrap times out;
                    # one handshake here names the real cause.
                    sock.settimeout(per_server)
                    with tls.wrap_socket(sock, server_hostname=host):
                        pass
                return
        except ssl.SSLError as exc:
            reasons.append((Reason.TLS, f"{host}:{port} TLS: {exc.reason or exc}"))
        except socket.gaierror:
            reasons.append((Reason.DNS, f"{host} does not resolve"))
        except TimeoutError:
            reasons.append((Reason.TIMEOUT, f"{host}:{port} connect timed out"))
        except OSError as exc:
            reasons.append((Reason.REFUSED, f"{host}:{port} {exc.strerror or exc}"))
    reason = reasons[0][0]
    raise CheckError(reason, "no bootstrap server reachable: " + "; ".join(d for _, d in reasons))


class AdminSource:
    """Reads groups, committed and log-end offsets through kafka-python's KafkaAdminClient."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def reach(self, servers: list[tuple[str, int]], timeout: float) -> None:
        tls = self.settings.tls
        _tcp_precheck(servers, timeout, _ssl_context(tls) if tls is not None else None)

    def _configs(self, timeout: float) -> dict[str, Any]:
        settings = self.settings
        ms = max(int(timeout * 1000), 500)
        configs: dict[str, Any] = {
            "client_id": settings.client_id, "request_timeout_ms": ms, "bootstrap_timeout_ms": ms,
            "reconnect_backoff_max_ms": 1000,
        }
        if settings.tls is not None:
            configs["ssl_context"] = _ssl_context(settings.tls)
        if settings.sasl is not None:
            configs["sasl_mechanism"] = settings.sasl.mechanism
            configs["sasl_plain_username"] = settings.sasl.username
            configs["sasl_plain_password"] = resolve_secret(settings.sasl.password,
                                                            settings.sasl.password_file)
        configs["security_protocol"] = {
            (False, False): "PLAINTEXT", (True, False): "SSL",
            (False, True): "SASL_PLAINTEXT", (True, True): "SASL_SSL",
        }[(settings.tls is not None, settings.sasl is not None)]
        return configs

    def open(self, servers: list[tuple[str, int]], timeout: float, made: list[Any]) -> Any:
        """A connected KafkaAdminClient; the network selectors it starts are appended to `made`,
        so the caller can stop them (kafka-python waits without a deadline on a TLS handshake
        that never completes, and leaves its IO thread running when bootstrap fails)."""
        from kafka import KafkaAdminClient
        from kafka.net.compat import KafkaNetClient
        from kafka.net.selector import NetworkSelector

        def net_client(**configs: Any) -> Any:
            net = NetworkSelector(**configs)
            made.append(net)
            return KafkaNetClient(net=net, **configs)

        bootstrap = [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in servers]
        try:
            return KafkaAdminClient(bootstrap_servers=bootstrap, kafka_client=net_client,
                                    **self._configs(timeout))
        except BaseException:
            _stop_all(made)
            raise

    def read(self, admin: Any) -> ClusterView:
        from kafka import OffsetSpec, TopicPartition

        settings = self.settings
        listed = admin.list_groups()
        states: dict[str, str] = {}
        for entry in listed:
            group_id = entry["group_id"]
            if settings.group_filter.search(group_id) and not (
                    settings.group_exclude and settings.group_exclude.search(group_id)):
                states[group_id] = entry.get("group_state") or "Unknown"
        members: dict[str, int] = {}
        if states:
            try:
                described = admin.describe_groups(sorted(states))
            except ValueError:
                # kafka-python 3.0 cannot decode authorized-operation bits it does not know
                # (tansu reports them); state still comes from ListGroups, members stay unknown.
                described = {}
            for group_id, info in described.items():
                if info.get("error") is None:
                    members[group_id] = len(info.get("members") or [])
                    if info.get("group_state"):
                        states[group_id] = info["group_state"]
        topics = sorted(t for t in admin.list_topics() if self._topic_wanted(t))
        partitions: dict[str, int] = {}
        placement: dict[tuple[str, int], PartitionMeta] = {}
        if topics:
            for topic in admin.describe_topics(topics):
                if topic.get("error_code", 0) == 0:
                    partitions[topic["name"]] = len(topic["partitions"])
                    for part in topic["partitions"]:
                        placement[(topic["name"], int(part["partition_index"]))] = PartitionMeta(
                            int(part.get("leader_id", -1)), tuple(part.get("replica_nodes") or ()),
                            tuple(part.get("isr_nodes") or ()))
        specs = {TopicPartition(t, p): OffsetSpec.LATEST
                 for t, count in partitions.items() for p in range(count)}
        log_end = ({(tp.topic, tp.partition): int(o.offset)
                    for tp, o in admin.list_partition_offsets(specs).items()} if specs else {})
        log_start = ({(tp.topic, tp.partition): int(o.offset) for tp, o in admin.list_partition_offsets(
            dict.fromkeys(specs, OffsetSpec.EARLIEST)).items()} if specs else {})
        cluster = admin.describe_cluster()
        brokers = tuple(sorted((int(b["broker_id"]), str(b["host"]), int(b["port"]))
                               for b in cluster.get("brokers") or ()))
        groups: dict[str, GroupView] = {}
        for group_id, state in states.items():
            # One group per request: brokers before 3.0 (OffsetFetch < v8) take only one.
            offsets = admin.list_group_offsets({group_id: None}).get(group_id, {})
            committed = {(tp.topic, tp.partition): int(om.offset) for tp, om in offsets.items()
                         if om.offset >= 0 and tp.topic in partitions}
            groups[group_id] = GroupView(state if state in GROUP_STATES else "Unknown",
                                         members.get(group_id), committed)
        return ClusterView(groups, log_end, partitions, brokers, placement, log_start)

    def _topic_wanted(self, topic: str) -> bool:
        settings = self.settings
        return bool(settings.topic_filter.search(topic)) and not (
            settings.topic_exclude is not None and settings.topic_exclude.search(topic))


def _ssl_context(tls: TlsSettings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
    if tls.cert_file is not None and tls.key_file is not None:
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    if tls.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _classify(exc: BaseException) -> CheckError:
    import kafka.errors as errors

    name = type(exc).__name__
    if isinstance(exc, errors.SaslAuthenticationFailedError | errors.AuthorizationError
                  | errors.UnsupportedSaslMechanismError):
        return CheckError(Reason.AUTH, f"{name}: authentication or authorization refused")
    if isinstance(exc, ssl.SSLError):
        return CheckError(Reason.TLS, f"{name}: {exc.reason or 'TLS handshake failed'}")
    if isinstance(exc, errors.KafkaTimeoutError | TimeoutError):
        return CheckError(Reason.TIMEOUT, f"{name}: brokers did not answer in time")
    if isinstance(exc, errors.KafkaConnectionError | ConnectionError):
        return CheckError(Reason.REFUSED, f"{name}: connection to brokers lost")
    return CheckError(Reason.ERROR, f"{name}: {str(exc)[:200]}")


class Collector:
    """One module's Kafka check; keeps offset history and commit ages per target between runs."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time,
                 source: AdminSource | None = None, max_targets: int = MAX_TARGETS) -> None:
        self.settings = settings
        self.max_targets = max_targets
        self.clock = clock
        self.source = source or AdminSource(settings)
        self._targets: dict[str, _TargetState] = {}
        self._admins: dict[str, tuple[Any, list[Any]]] = {}
        self._lock = threading.Lock()

    def _state(self, target: str) -> _TargetState:
        """The target's state, marked most recently used."""
        with self._lock:
            state = self._targets.pop(target, None) or _TargetState()
            self._targets[target] = state
            return state

    def _evict(self) -> None:
        """Forget the least recently used targets beyond `max_targets`, so that /probe requests
        with ever new targets cannot pile up admin clients (each holds a thread and sockets)."""
        evicted: list[str] = []
        with self._lock:
            excess = len(self._targets) - self.max_targets
            for target, state in list(self._targets.items()):
                if excess <= 0:
                    break
                if state.lock.acquire(blocking=False):  # not in use by a run right now
                    try:
                        del self._targets[target]
                        evicted.append(target)
                        excess -= 1
                    finally:
                        state.lock.release()
        for target in evicted:
            self._drop(target)

    def run(self, target: str, timeout: float) -> Outcome:
        outcome = Outcome()
        try:
            servers = parse_servers(target)
        except ValueError as exc:
            return outcome.fail(Reason.ERROR, f"bad target: {exc}")
        deadline = Deadline(timeout)
        state = self._state(target)
        with state.lock:
            try:
                self.source.reach(servers, deadline.remaining("connecting to a bootstrap server"))
                view = self._read(target, servers, deadline)
            except CheckError as exc:
                outcome.fail_with(exc)
            else:
                self.judge(view, state, outcome)
        self._evict()
        return outcome

    def _read(self, target: str, servers: list[tuple[str, int]], deadline: Deadline) -> ClusterView:
        """Open (or reuse) the target's admin client and read a view, within the deadline.

        The work runs in a helper thread: when it overruns, the client's network loops are
        stopped, which fails kafka-python's blocked call, and the run reports a timeout.
        """
        import kafka.errors as errors

        cached = self._admins.pop(target, None)
        made: list[Any] = cached[1] if cached else []
        result: dict[str, Any] = {}
        timeout = deadline.remaining("reading groups and offsets")

        def work() -> None:
            try:
                admin = cached[0] if cached else self.source.open(servers, timeout, made)
                result["admin"] = admin
                result["view"] = self.source.read(admin)
            except (errors.KafkaError, OSError, ValueError, RuntimeError) as exc:
                result["error"] = exc

        worker = threading.Thread(target=work, name=f"kafka-check-{target}"[:60], daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            _stop_all(made)
            worker.join(2.0)
            if "admin" in result:
                result["admin"].close()
            raise CheckError(Reason.TIMEOUT, f"brokers did not answer within {timeout:g}s")
        error = result.get("error")
        if error is not None:
            if "admin" in result:
                result["admin"].close()
            _stop_all(made)
            raise _classify(error)
        self._admins[target] = (result["admin"], made)
        return result["view"]

    def _drop(self, target: str) -> None:
        cached = self._admins.pop(target, None)
        if cached is not None:
            cached[0].close()
            _stop_all(cached[1])

    def judge(self, view: ClusterView, state: _TargetState, outcome: Outcome) -> None:
        """Turn one view into metrics and the check's verdict, updating history and commit ages."""
        now = self.clock()
        ms = outcome.metrics
        for (topic, partition), end in sorted(view.log_end.items()):
            history = state.history.get((topic, partition))
            if history is None:
                history = state.history[(topic, partition)] = OffsetHistory(self.settings.history_size)
            history.add(now, end)
            ms.gauge("kafka_topic_partition_current_offset", "Log-end offset of a partition",
                     end, {"topic": topic, "partition": str(partition)})
        for topic, count in sorted(view.partitions.items()):
            ms.gauge("kafka_topic_partitions", "Number of partitions of a topic", count, {"topic": topic})
        emit_cluster(view, ms)
        _forget(state.history, view.log_end)
        seen_commits: set[tuple[str, str, int]] = set()
        for group_id, group in sorted(view.groups.items()):
            seen_commits |= self._judge_group(group_id, group, view, state, now, outcome)
        for key in [k for k in state.commits if k not in seen_commits]:
            del state.commits[key]

    def _judge_group(self, group_id: str, group: GroupView, view: ClusterView, state: _TargetState,
                     now: float, outcome: Outcome) -> set[tuple[str, str, int]]:
        ms = outcome.metrics
        limits = thresholds_for(self.settings, group_id)
        g = {"consumergroup": group_id}
        for known in GROUP_STATES:
            ms.gauge("einvoice_kafka_consumergroup_state", "1 for the group's current state",
                     1 if group.state == known else 0, {**g, "state": known})
        if group.members is not None:
            ms.gauge("kafka_consumergroup_members", "Members of the consumer group", group.members, g)
        lag_total = 0
        max_seconds: float | None = None
        stalled: tuple[str, int, float] | None = None
        sums: dict[str, list[int]] = {}
        seen: set[tuple[str, str, int]] = set()
        for (topic, partition), committed in sorted(group.committed.items()):
            end = view.log_end.get((topic, partition))
            if end is None:
                continue
            labels = {**g, "topic": topic, "partition": str(partition)}
            lag = max(end - committed, 0)
            lag_total += lag
            sums.setdefault(topic, [0, 0])
            sums[topic][0] += committed
            sums[topic][1] += lag
            ms.gauge("kafka_consumergroup_current_offset", "Committed offset of the group", committed,
                     labels)
            ms.gauge("kafka_consumergroup_lag", "Log-end offset minus committed offset", lag, labels)
            history = state.history.get((topic, partition))
            at = history.time_at(committed) if history is not None and lag > 0 else now
            if at is not None:
                seconds = max(now - at, 0.0)
                ms.gauge("kafka_consumergroup_group_lag_seconds",
                         "Estimated age of the next message the group will consume", seconds, labels)
                max_seconds = seconds if max_seconds is None else max(max_seconds, seconds)
            key = (group_id, topic, partition)
            seen.add(key)
            previous = state.commits.get(key)
            if previous is None or previous.offset != committed or lag == 0:
                previous = state.commits[key] = _Commit(committed, now)
            still = now - previous.since
            if (lag > 0 and limits.stall_after and still >= limits.stall_after
                    and (stalled is None or still > stalled[2])):
                stalled = (topic, partition, still)
        for topic, (offset_sum, lag_sum) in sorted(sums.items()):
            ms.gauge("kafka_consumergroup_current_offset_sum", "Committed offsets summed over partitions",
                     offset_sum, {**g, "topic": topic})
            ms.gauge("kafka_consumergroup_lag_sum", "Lag summed over partitions", lag_sum,
                     {**g, "topic": topic})
        if max_seconds is not None:
            ms.gauge("kafka_consumergroup_group_max_lag_seconds",
                     "Largest estimated lag in seconds over the group's partitions", max_seconds, g)
        ms.gauge("einvoice_kafka_consumergroup_stalled",
                 "1 when a committed offset has not moved for stall_after while lag > 0",
                 1 if stalled else 0, g)
        if stalled is not None:
            outcome.fail(Reason.STATE, f"group {group_id} stalled on {stalled[0]}/{stalled[1]} "
                                       f"for {stalled[2]:.0f}s with lag")
        if limits.max_lag is not None and lag_total > limits.max_lag:
            outcome.fail(Reason.THRESHOLD, f"group {group_id} lag {lag_total} > max_lag {limits.max_lag}")
        if (limits.max_lag_seconds is not None and max_seconds is not None
                and max_seconds > limits.max_lag_seconds):
            outcome.fail(Reason.THRESHOLD, f"group {group_id} lag {max_seconds:.0f}s > "
                                           f"max_lag_seconds {limits.max_lag_seconds:g}")
        return seen

    def close(self) -> None:
        with self._lock:
            targets = list(self._admins)
        for target in targets:
            self._drop(target)


def emit_cluster(view: ClusterView, ms: MetricSet) -> None:
    """kafka_exporter's broker and partition-placement series."""
    if view.brokers:
        ms.gauge("kafka_brokers", "Number of brokers in the cluster", len(view.brokers))
    for broker_id, host, port in view.brokers:
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        ms.gauge("kafka_broker_info", "Information about a broker", 1,
                 {"id": str(broker_id), "address": address})
    for (topic, partition), start in sorted(view.log_start.items()):
        ms.gauge("kafka_topic_partition_oldest_offset", "Oldest offset still in a partition's log",
                 start, {"topic": topic, "partition": str(partition)})
    for (topic, partition), meta in sorted(view.placement.items()):
        labels = {"topic": topic, "partition": str(partition)}
        ms.gauge("kafka_topic_partition_leader", "Broker id of the partition's leader", meta.leader, labels)
        ms.gauge("kafka_topic_partition_replicas", "Replicas of the partition", len(meta.replicas), labels)
        ms.gauge("kafka_topic_partition_in_sync_replica", "In-sync replicas of the partition",
                 len(meta.isr), labels)
        ms.gauge("kafka_topic_partition_leader_is_preferred", "1 when the leader is the preferred replica",
                 1 if meta.replicas and meta.leader == meta.replicas[0] else 0, labels)
        ms.gauge("kafka_topic_partition_under_replicated_partition",
                 "1 when fewer replicas are in sync than assigned",
                 1 if len(meta.isr) < len(meta.replicas) else 0, labels)


def _stop_all(nets: list[Any]) -> None:
    for net in nets:
        net.stop(timeout_ms=2000)


def _forget(history: dict[tuple[str, int], OffsetHistory], live: Iterable[tuple[str, int]]) -> None:
    """Drop history of partitions that went away, so deleted topics do not pile up."""
    keep = set(live)
    for key in [k for k in history if k not in keep]:
        del history[key]


def build(settings: Settings) -> Check:
    return Collector(settings)
