"""The `redis_cluster` collector against a real 3-master/3-replica cluster made with redis-cli.

One cluster per module (about 3 s to build); the destructive test (a master killed, failover,
the old master back as a replica) runs last and leaves the cluster healthy again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from einvoice_exporter.collectors import redis_cluster as cluster_kind
from einvoice_exporter.collectors.redis_cluster import parse_cluster_nodes
from einvoice_exporter.outcome import Outcome, Reason

from tests.exporter.conftest import sample
from tests.redis.conftest import Cluster, StartRedis, start_cluster
from tests.redis.test_connection_reuse import get, start_exporter
from tests.redis.test_redis import link_up
from tests.support.collectors import run_once
from tests.support.procs import free_port, wait_until

pytestmark = pytest.mark.xdist_group("redis_cluster")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    made = start_cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield made
    finally:
        for node in made.nodes:
            node.proc.stop()


def run(target: str, timeout: float = 5.0, **settings: object) -> Outcome:
    return run_once(cluster_kind, cluster_kind.Settings.model_validate(settings), target, timeout)


def instance_roles(outcome: Outcome) -> dict[str, str]:
    return {labels["addr"]: labels["role"] for name, _, _, samples in outcome.metrics.items()
            if name == "redis_instance_info" for labels, _ in samples}


def test_healthy_cluster_from_one_seed(cluster: Cluster) -> None:
    seed = cluster.nodes[0]
    outcome = run(seed.address)
    m = outcome.metrics

    assert outcome.success, outcome.failure
    assert m.value("redis_cluster_state") == 1
    assert m.value("redis_cluster_slots_assigned") == 16384
    assert m.value("redis_cluster_slots_ok") == 16384
    assert m.value("redis_cluster_slots_pfail") == 0
    assert m.value("redis_cluster_slots_fail") == 0
    assert m.value("redis_cluster_known_nodes") == 6
    assert m.value("redis_cluster_size") == 3
    assert m.value("einvoice_redis_cluster_masters_without_replica") == 0
    assert m.value("einvoice_redis_cluster_nodes_unreachable") == 0
    roles = cluster.roles()
    assert instance_roles(outcome) == {f"127.0.0.1:{port}": role for port, (role, _) in roles.items()}
    for node in cluster.nodes:
        addr = {"addr": node.address}
        assert m.value("redis_up", addr) == 1
        assert m.value("redis_cluster_enabled", addr) == 1
        assert m.value("einvoice_redis_cluster_node_flag", {**addr, "flag": "fail"}) == 0
        assert m.value("einvoice_redis_cluster_node_flag", {**addr, "flag": "pfail"}) == 0
        if roles[node.port][0] == "master":
            assert m.value("einvoice_redis_cluster_master_without_replica", addr) == 0
            assert m.value("einvoice_redis_cluster_master_replicas", addr) == 1
            assert (m.value("einvoice_redis_cluster_node_slots", addr) or 0) > 5000
        else:
            assert link_up(m, node.address) == 1
    assert sum(m.value("einvoice_redis_cluster_node_slots", {"addr": n.address}) or 0
               for n in cluster.nodes) == 16384


def test_keys_land_on_their_nodes(cluster: Cluster) -> None:
    import redis.cluster

    client = redis.cluster.RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port)
    try:
        for index in range(30):
            client.set(f"invoice-batch:{index}", index)
    finally:
        client.close()
    outcome = run(cluster.nodes[1].address)
    masters = [n for n in cluster.nodes if cluster.roles()[n.port][0] == "master"]
    total = sum(outcome.metrics.value("redis_db_keys", {"addr": n.address, "db": "db0"}) or 0
                for n in masters)
    assert total >= 30


def test_cluster_nodes_are_read_on_kept_connections(cluster: Cluster, tmp_path: Path) -> None:
    seed = cluster.nodes[0]
    proc, base = start_exporter(tmp_path, (
        "modules:\n"
        "  core: {kind: redis_cluster, timeout: 5s, item: '11'}\n"
        "checks:\n"
        f"  - {{name: core-cluster, item: '11', module: core, target: '{seed.address}'}}\n"))
    try:
        assert sample(get(f"{base}/metrics"), "redis_cluster_state", check="core-cluster") == 1
        admins = [node.client() for node in cluster.nodes]
        accepted = [admin.info("stats")["total_connections_received"] for admin in admins]
        for _ in range(5):
            text = get(f"{base}/metrics")
            assert sample(text, "einvoice_check_up", check="core-cluster") == 1
        after = [admin.info("stats")["total_connections_received"] for admin in admins]
    finally:
        proc.stop()
    assert after == accepted, "a scrape opened new connections to cluster nodes"


def test_first_seed_down_uses_the_next(cluster: Cluster) -> None:
    dead = f"127.0.0.1:{free_port()}"
    only_dead = run(dead)
    with_fallback = run(f"{dead},{cluster.nodes[2].address}")

    assert only_dead.failure is not None and only_dead.failure.reason == Reason.REFUSED
    assert only_dead.metrics.value("redis_up") == 0
    assert with_fallback.success, with_fallback.failure


def test_wrong_password_on_seed_is_auth(cluster: Cluster) -> None:
    outcome = run(cluster.nodes[0].address, password="not-configured")
    assert outcome.failure is not None and outcome.failure.reason == Reason.AUTH


def test_seed_without_cluster_mode_is_state(start_redis: StartRedis) -> None:
    plain = start_redis()
    outcome = run(plain.address)
    assert outcome.failure is not None and outcome.failure.reason == Reason.STATE
    assert "not a cluster node" in outcome.failure.detail


@pytest.mark.parametrize("kept", [False, True], ids=["fresh-connections", "kept-connections"])
def test_busy_node_is_a_timeout_for_that_node_only(cluster: Cluster, kept: bool) -> None:
    roles = cluster.roles()
    replica = next(n for n in cluster.nodes if roles[n.port][0] == "slave")
    seed = next(n for n in cluster.nodes if n is not replica)
    check = cluster_kind.build(cluster_kind.Settings())
    if kept:
        assert check.run(seed.address, 5).success
    admin = replica.client()
    accepted = [n.client().info("stats")["total_connections_received"] for n in cluster.nodes]
    # Clients get no answer while paused; the cluster bus goes on, so the node is not flagged.
    admin.execute_command("CLIENT", "PAUSE", "5000", "ALL")
    try:
        outcome = check.run(seed.address, 0.5)
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
    m = outcome.metrics

    assert outcome.failure is not None and outcome.failure.reason == Reason.TIMEOUT
    assert replica.address in outcome.failure.detail
    assert m.value("redis_up", {"addr": replica.address}) == 0
    assert m.value("einvoice_redis_cluster_nodes_unreachable") == 1
    others = [n for n in cluster.nodes if n is not replica]
    assert all(m.value("redis_up", {"addr": n.address}) == 1 for n in others)
    assert m.value("redis_cluster_state") == 1
    if kept:  # the healthy nodes were read on the connections kept from the first run
        after = [n.client().info("stats")["total_connections_received"] for n in cluster.nodes]
        # One new connection per node: the test's own `info` (plus its CLIENT PAUSE on the replica).
        expected = [2 if n is replica else 1 for n in cluster.nodes]
        assert [a - b for a, b in zip(after, accepted, strict=True)] == expected
    assert check.run(seed.address, 5).success  # the timed-out connection was replaced
    check.close()


def test_parse_cluster_nodes_formats() -> None:
    """Lines as documented at https://redis.io/commands/cluster-nodes/ (7.x with hostname, 6.x,
    a migrating slot, a failed node without address)."""
    text = (
        "07c3 127.0.0.1:30004@31004,host-a replica e7d1 0 1426238317239 4 connected\n"
        "67ed 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922\n"
        "e7d1 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460 [5461->-67ed]\n"
        "6ec2 :0@0 master,fail,noaddr - 1426238316232 1426238316232 3 disconnected 10923\n"
    )
    nodes = {n.node_id: n for n in parse_cluster_nodes(text)}
    assert nodes["07c3"].addr == "127.0.0.1:30004" and not nodes["07c3"].is_master
    assert nodes["67ed"].slots == 10922 - 5461 + 1
    assert nodes["e7d1"].slots == 5461 and "myself" in nodes["e7d1"].flags
    assert nodes["6ec2"].failing and not nodes["6ec2"].reachable_address and nodes["6ec2"].slots == 1


def test_master_killed_pfail_fail_then_promotion_then_rejoin(cluster: Cluster) -> None:
    roles = cluster.roles()
    victim = next(n for n in cluster.nodes if roles[n.port][0] == "master")
    heir = next(n for n in cluster.nodes if roles[n.port] == ("slave", victim.port))
    seed = next(n for n in cluster.nodes if n not in (victim, heir))

    check = cluster_kind.build(cluster_kind.Settings())  # one collector throughout, as the exporter has
    assert check.run(seed.address, 2).success  # connections to every node are now kept

    victim.proc.kill()

    # Straight after the crash the seed still lists the node: it is unreachable, not an exception.
    first = check.run(seed.address, 2)
    assert first.failure is not None
    assert first.failure.reason in (Reason.REFUSED, Reason.STATE)
    assert first.metrics.value("redis_up", {"addr": victim.address}) == 0

    def flagged(outcome: Outcome) -> bool:
        return any(outcome.metrics.value("einvoice_redis_cluster_node_flag",
                                         {"addr": victim.address, "flag": flag}) == 1
                   for flag in ("pfail", "fail"))

    wait_until(lambda: flagged(check.run(seed.address, 2)), timeout=20, what="victim flagged")
    seen = check.run(seed.address, 2)
    assert seen.failure is not None and seen.failure.reason == Reason.STATE

    def promoted() -> bool:
        outcome = check.run(seed.address, 2)
        return (instance_roles(outcome).get(heir.address) == "master"
                and outcome.metrics.value("redis_cluster_state") == 1)

    wait_until(promoted, timeout=30, what="replica promoted and cluster ok")
    after = check.run(seed.address, 2)
    m = after.metrics
    assert m.value("einvoice_redis_cluster_node_flag", {"addr": victim.address, "flag": "fail"}) == 1
    assert m.value("einvoice_redis_cluster_masters_without_replica") == 1
    assert m.value("einvoice_redis_cluster_master_without_replica", {"addr": heir.address}) == 1
    assert m.value("einvoice_redis_cluster_nodes_unreachable") == 1
    assert after.failure is not None and after.failure.reason == Reason.STATE
    assert not run(seed.address, timeout=2, require_replica=False).success  # the failed node still counts

    victim.restart()  # the old master comes back and rejoins as a replica of its heir
    wait_until(lambda: check.run(seed.address, 2).success, timeout=30, what="cluster healthy again")
    healed = check.run(seed.address, 2)
    assert instance_roles(healed)[victim.address] == "slave"
    assert healed.metrics.value("einvoice_redis_cluster_masters_without_replica") == 0
    check.close()


def test_cluster_module_config_validates(tmp_path: Path) -> None:
    from einvoice_exporter.schema import ExporterConfig
    from pydantic import ValidationError

    good = {"modules": {"c": {"kind": "redis_cluster", "redis_cluster": {"max_concurrency": 4}}},
            "checks": [{"name": "core", "item": "11", "module": "c", "target": "10.2.0.11:7000"}]}
    assert ExporterConfig.model_validate(good).modules["c"].kind == "redis_cluster"
    bad = {**good, "modules": {"c": {"kind": "redis_cluster", "redis_cluster": {"max_concurrency": 0}}}}
    with pytest.raises(ValidationError, match="max_concurrency"):
        ExporterConfig.model_validate(bad)


def test_lone_node_without_slots_is_state_and_named_by_the_target(start_redis: StartRedis) -> None:
    # A node nobody has met lists itself without an IP (":port@cport myself,master").
    lone = start_redis("--cluster-enabled", "yes", "--cluster-port", str(free_port()))
    outcome = run(lone.address)
    m = outcome.metrics

    assert outcome.failure is not None and outcome.failure.reason == Reason.STATE
    assert "cluster_state is fail" in outcome.failure.detail
    assert m.value("redis_cluster_state") == 0
    assert m.value("redis_cluster_slots_assigned") == 0
    assert m.value("redis_up", {"addr": lone.address}) == 1
    assert m.value("einvoice_redis_cluster_node_flag", {"addr": lone.address, "flag": "fail"}) == 0
