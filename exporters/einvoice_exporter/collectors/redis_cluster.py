"""Collector of kind `redis_cluster`: a whole Redis Cluster from one seed node (item 11).

The seed's CLUSTER INFO and CLUSTER NODES give the cluster view (redis_exporter's `redis_cluster_*`
names) and the node list; every node is then read at once (bounded), its series labelled `addr`.

    modules:
      core_cluster:
        kind: redis_cluster
        timeout: 5s
        redis_cluster: {password_file: /etc/einvoice/redis-cluster.pw, max_concurrency: 8}
    checks:
      - {name: core-cluster, item: "11", module: core_cluster, target: "10.2.0.11:7000"}

A target may list more seeds, separated by commas: the first that answers is used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import Field

from ..outcome import Check, MetricSet, Outcome, Reason
from . import CheckError, Deadline
from ._redis_common import (
    ConnectionSettings,
    InstanceReport,
    RedisConnector,
    classify,
    emit_instance,
    emit_up,
    format_address,
    judge_instance,
    parse_address,
    parse_addresses,
    query_instance,
    query_many,
)

CLUSTER_INFO_METRICS: tuple[tuple[str, str, str], ...] = (
    ("cluster_slots_assigned", "redis_cluster_slots_assigned", "Slots assigned to a node"),
    ("cluster_slots_ok", "redis_cluster_slots_ok", "Slots whose node is not flagged fail or pfail"),
    ("cluster_slots_pfail", "redis_cluster_slots_pfail", "Slots on nodes flagged pfail (possibly failing)"),
    ("cluster_slots_fail", "redis_cluster_slots_fail", "Slots on nodes flagged fail"),
    ("cluster_known_nodes", "redis_cluster_known_nodes", "Nodes known to the cluster"),
    ("cluster_size", "redis_cluster_size", "Masters serving at least one slot"),
    ("cluster_current_epoch", "redis_cluster_current_epoch", "Cluster's current epoch"),
)
NODE_FLAGS = ("fail", "pfail")


class Settings(ConnectionSettings):
    """Settings of a `redis_cluster` module (auth and TLS apply to every node)."""

    max_concurrency: Annotated[int, Field(ge=1, le=64)] = 8
    """Nodes read at once."""
    require_replica: bool = True
    """Fail (state) when a master serving slots has no healthy replica."""


def validate_target(target: str) -> str:
    """One seed `host:port` (or several, comma-separated)."""
    parse_addresses(target)
    return target


@dataclass(slots=True)
class Node:
    """One line of CLUSTER NODES."""

    node_id: str
    host: str
    port: int
    flags: frozenset[str]
    master_id: str
    link_state: str
    slots: int

    @property
    def addr(self) -> str:
        return format_address(self.host, self.port)

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def failing(self) -> bool:
        return bool(self.flags & {"fail", "fail?"})

    @property
    def reachable_address(self) -> bool:
        return bool(self.host) and self.port > 0 and not (self.flags & {"noaddr", "handshake"})


def parse_cluster_nodes(text: str) -> list[Node]:
    """CLUSTER NODES: `<id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch> <link>
    <slot>...`; slot entries in brackets are migrations in progress, not served slots."""
    nodes = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        address = parts[1].split(",", 1)[0].split("@", 1)[0]
        try:
            host, port = parse_address(address) if address != ":0" else ("", 0)
        except ValueError:
            host, port = "", 0
        slots = 0
        for entry in parts[8:]:
            if entry.startswith("["):
                continue
            low, _, high = entry.partition("-")
            if low.isdigit():
                slots += (int(high) if high.isdigit() else int(low)) - int(low) + 1
        nodes.append(Node(parts[0], host, port, frozenset(parts[2].split(",")), parts[3],
                          parts[7], slots))
    return nodes


def parse_cluster_info(text: str) -> dict[str, str]:
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in pairs}


@dataclass(slots=True)
class ClusterView:
    info: dict[str, str]
    nodes: list[Node]
    seed: tuple[str, int]
    seed_report: InstanceReport
    reports: dict[str, InstanceReport | CheckError] = field(default_factory=dict)
    lacking_replica: list[str] = field(default_factory=list)
    """Addresses of masters serving slots with no healthy replica."""


class RedisClusterCollector:
    """A cluster through one seed.

        redis_cluster_state 1
        redis_cluster_slots_ok 16384
        einvoice_redis_cluster_masters_without_replica 0
        einvoice_redis_cluster_node_flag{addr="10.2.0.12:7001",flag="pfail"} 0
        redis_up{addr="10.2.0.12:7001"} 1
        redis_memory_used_bytes{addr="10.2.0.12:7001"} 2.5e+06
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.connector = RedisConnector(settings)

    def close(self) -> None:
        """Close the connections kept for the next run."""
        self.connector.close()

    def run(self, target: str, timeout: float) -> Outcome:
        from redis.exceptions import RedisError, ResponseError

        deadline = Deadline(timeout)
        outcome = Outcome()
        try:
            password = self.connector.credentials.resolve()
        except OSError as exc:
            return outcome.fail(Reason.ERROR, f"password_file unreadable: {exc.strerror}")

        view: ClusterView | None = None
        last = CheckError(Reason.ERROR, "no seed to ask")
        for host, port in parse_addresses(target):
            if deadline.expired():
                last = CheckError(Reason.TIMEOUT, "no answer in time")
                break
            try:
                report, (info_raw, nodes_raw) = query_instance(
                    self.connector, host, port, deadline, password,
                    extra=(("CLUSTER", "INFO"), ("CLUSTER", "NODES")))
            except ResponseError as exc:
                failure = classify(exc)
                reason, detail = failure.reason, failure.detail
                if reason == Reason.BAD_CONTENT:
                    reason, detail = Reason.STATE, f"seed is not a cluster node ({detail})"
                last = CheckError(reason, f"seed {format_address(host, port)}: {detail}")
                continue
            except (RedisError, OSError) as exc:
                failure = classify(exc)
                last = CheckError(failure.reason, f"seed {format_address(host, port)}: {failure.detail}")
                continue
            view = ClusterView(parse_cluster_info(_text(info_raw)), parse_cluster_nodes(_text(nodes_raw)),
                               (host, port), report)
            break
        if view is None:
            emit_up(outcome.metrics, False)
            return outcome.fail_with(last)

        self._read_nodes(view, deadline, password)
        self._emit(view, outcome.metrics)
        self._judge(view, outcome)
        return outcome

    def _read_nodes(self, view: ClusterView, deadline: Deadline, password: str | None) -> None:
        """Every node but the seed (already read) at once; a node without an address is
        unreachable by definition."""
        myself = next((n for n in view.nodes if "myself" in n.flags), None)
        # The seed's own line may lack its IP (never told by a peer); then the target names it.
        seed_addr = myself.addr if myself and myself.host else format_address(*view.seed)
        if myself is not None and not myself.host:
            myself.host, myself.port = view.seed
        view.reports[seed_addr] = view.seed_report
        others = {}
        for node in view.nodes:
            if node is myself or node.addr == seed_addr or "handshake" in node.flags:
                continue
            if not node.reachable_address:
                view.reports[node.addr or node.node_id[:12]] = CheckError(Reason.STATE, "node has no address")
                continue
            others[(node.host, node.port)] = node.addr
        answers = query_many(self.connector, list(others), deadline, password,
                             self.settings.max_concurrency, extra=(("CLUSTER", "INFO"),))
        for address, result in answers.items():
            view.reports[others[address]] = result

    def _emit(self, view: ClusterView, metrics: MetricSet) -> None:
        info = view.info
        metrics.gauge("redis_cluster_state", "1 when the seed reports cluster_state ok",
                      1 if info.get("cluster_state") == "ok" else 0)
        for key, name, help_ in CLUSTER_INFO_METRICS:
            if info.get(key, "").isdigit():
                metrics.gauge(name, help_, int(info[key]))
        by_id = {node.node_id: node for node in view.nodes}
        healthy_replicas: dict[str, int] = {}
        for node in view.nodes:
            if not node.is_master and not node.failing and node.master_id in by_id:
                healthy_replicas[node.master_id] = healthy_replicas.get(node.master_id, 0) + 1
        serving = [n for n in view.nodes if n.is_master and n.slots > 0 and not n.failing]
        lacking = [n for n in serving if healthy_replicas.get(n.node_id, 0) == 0]
        metrics.gauge("einvoice_redis_cluster_masters_without_replica",
                      "Masters serving slots with no healthy replica", len(lacking))
        for node in serving:
            labels = {"addr": node.addr}
            metrics.gauge("einvoice_redis_cluster_master_without_replica",
                          "1 when this master serving slots has no healthy replica",
                          1 if node in lacking else 0, labels)
            metrics.gauge("einvoice_redis_cluster_master_replicas", "Healthy replicas of this master",
                          healthy_replicas.get(node.node_id, 0), labels)
        for node in view.nodes:
            if "handshake" in node.flags:
                continue
            labels = {"addr": node.addr or node.node_id[:12]}
            metrics.gauge("einvoice_redis_cluster_node_flag", "1 when the seed flags the node so",
                          1 if "fail" in node.flags else 0, {**labels, "flag": "fail"})
            metrics.gauge("einvoice_redis_cluster_node_flag", "1 when the seed flags the node so",
                          1 if "fail?" in node.flags else 0, {**labels, "flag": "pfail"})
            metrics.gauge("einvoice_redis_cluster_node_slots", "Slots the node serves", node.slots, labels)
        unreachable = 0
        for addr, result in view.reports.items():
            if isinstance(result, InstanceReport):
                emit_instance(metrics, result, {"addr": addr})
                if result.extra and not isinstance(result.extra[0], Exception):
                    emit_node_cluster_info(metrics, parse_cluster_info(_text(result.extra[0])),
                                           {"addr": addr})
            else:
                unreachable += 1
                emit_up(metrics, False, {"addr": addr})
        metrics.gauge("einvoice_redis_cluster_nodes_unreachable",
                      "Nodes listed by the seed that the exporter could not read", unreachable)
        view.lacking_replica = [n.addr for n in lacking]

    def _judge(self, view: ClusterView, outcome: Outcome) -> None:
        """Cluster-wide state first, then unreachable nodes, then each node's own INFO."""
        state = view.info.get("cluster_state", "unknown")
        if state != "ok":
            outcome.fail(Reason.STATE, f"cluster_state is {state}")
        for node in view.nodes:
            for flag, shown in (("fail", "fail"), ("fail?", "pfail")):
                if flag in node.flags:
                    outcome.fail(Reason.STATE, f"node {node.addr} is flagged {shown}")
        if self.settings.require_replica and view.lacking_replica:
            outcome.fail(Reason.STATE,
                         f"master(s) without a healthy replica: {', '.join(view.lacking_replica)}")
        for addr, result in view.reports.items():
            if not isinstance(result, InstanceReport):
                outcome.fail(result.reason, f"node {addr}: {result.detail}")
        for addr, result in view.reports.items():
            if isinstance(result, InstanceReport):
                judge_instance(outcome, result, self.settings, f"node {addr}")


NODE_INFO_METRICS: tuple[tuple[str, str, str], ...] = (
    ("cluster_my_epoch", "redis_cluster_my_epoch", "The node's own config epoch"),
    ("cluster_stats_messages_sent", "redis_cluster_messages_sent_total", "Cluster bus messages sent"),
    ("cluster_stats_messages_received", "redis_cluster_messages_received_total",
     "Cluster bus messages received"),
)
"""Typed gauge as in redis_exporter 1.45, though named `_total`."""


def emit_node_cluster_info(metrics: MetricSet, info: dict[str, str], labels: dict[str, str]) -> None:
    """Each node's own CLUSTER INFO, with redis_exporter's names: its epoch and bus messages (by type:
    `redis_cluster_stats_messages_ping_sent` ...)."""
    for key, name, help_ in NODE_INFO_METRICS:
        if info.get(key, "").isdigit():
            metrics.gauge(name, help_, int(info[key]), labels)
    for key, value in info.items():
        if key.startswith("cluster_stats_messages_") and key.endswith(("_sent", "_received")) \
                and key not in ("cluster_stats_messages_sent", "cluster_stats_messages_received") \
                and value.isdigit():
            name = "redis_" + "".join(c if c.isalnum() or c == "_" else "_" for c in key)
            metrics.gauge(name, "Cluster bus messages of this type", int(value), labels)


def _text(raw: Any) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def unanswered(metrics: MetricSet) -> None:
    """`redis_up 0` for a run that timed out or raised before it could say so itself."""
    emit_up(metrics, False)


def build(settings: Settings) -> Check:
    return RedisClusterCollector(settings)
