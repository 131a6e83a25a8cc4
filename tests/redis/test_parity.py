"""Parity with redis_exporter 1.45 (Debian's prometheus-redis-exporter): both exporters scrape the
same real servers — a master with a replica, a Sentinel, a cluster node — and every metric name,
type and label name redis_exporter exposes must be in ours, unless tests/community/README.md
gives the reason it is not (the tables there are the ones below)."""

from __future__ import annotations

import contextlib
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from einvoice_exporter.collectors._redis_common import COUNTERS_AS_GAUGES
from prometheus_client.parser import text_string_to_metric_families

from tests.redis.conftest import RedisServer, StartRedis, start_cluster
from tests.support.procs import Proc, free_port, require_binary, wait_until

README = Path(__file__).resolve().parents[1] / "community" / "README.md"

NOT_EXPOSED: dict[str, str] = {
    "redis_exporter_build_info": "exporter's own",
    "redis_exporter_last_scrape_connect_time_seconds": "exporter's own",
    "redis_exporter_last_scrape_duration_seconds": "exporter's own",
    "redis_exporter_last_scrape_error": "exporter's own",
    "redis_exporter_scrape_duration_seconds_sum": "exporter's own",
    "redis_exporter_scrape_duration_seconds_count": "exporter's own",
    "redis_exporter_scrapes_total": "exporter's own",
    "redis_target_scrape_request_errors_total": "exporter's own",
    "redis_last_key_groups_scrape_duration_milliseconds": "key groups: no key scanning",
}
"""redis_exporter names we do not expose (reasons in tests/community/README.md)."""

SENTINEL_OWN = "the Sentinel process's own INFO"
"""Scraping a Sentinel, redis_exporter also exposes the Sentinel process's own INFO (clients, CPU,
memory) under the data instances' names; ours exposes the data instances there (labelled `addr`)."""

SELF = ("go_", "process_", "promhttp_")


@dataclass(frozen=True)
class Series:
    type: str
    labels: frozenset[str]


def scrape(url: str) -> dict[str, Series]:
    """Sample name -> (family type, label names) of one exposition."""
    with urllib.request.urlopen(url, timeout=30) as response:
        text = response.read().decode()
    found: dict[str, Series] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith(SELF):
                continue
            labels = frozenset(sample.labels) - {"quantile"}
            known = found.get(sample.name)
            found[sample.name] = Series(family.type, labels | (known.labels if known else frozenset()))
    return found


def differences(theirs: dict[str, Series], ours: dict[str, Series],
                ignore_labels: frozenset[str] = frozenset(), own_names: str | None = None) -> list[str]:
    problems = []
    for name, series in sorted(theirs.items()):
        if name in NOT_EXPOSED:
            continue
        mine = ours.get(name)
        if mine is None and name.removesuffix("_total") in COUNTERS_AS_GAUGES:
            name = name.removesuffix("_total")  # the text parser adds `_total` to counter samples
            mine = ours.get(name)
        if mine is None:
            if own_names and not name.startswith("redis_sentinel_") and name != "redis_up":
                continue  # the Sentinel process's own INFO (see SENTINEL_OWN)
            problems.append(f"{name}: missing")
            continue
        expected_type = "gauge" if name in COUNTERS_AS_GAUGES else series.type
        if mine.type != expected_type:
            problems.append(f"{name}: type {mine.type}, redis_exporter {series.type}")
        lacking = series.labels - mine.labels - ignore_labels
        if lacking:
            problems.append(f"{name}: lacks label(s) {sorted(lacking)}")
    return problems


@pytest.fixture
def exporters(tmp_path: Path) -> Iterator[tuple[int, int, Path]]:
    """Our exporter (CLI, with the modules below) and redis_exporter, both on free ports."""
    config = tmp_path / "exporter.yml"
    config.write_text(
        "modules:\n"
        "  standalone: {kind: redis, timeout: 10s, item: '06'}\n"
        "  cluster: {kind: redis_cluster, timeout: 10s, item: '11',\n"
        "            redis_cluster: {require_replica: false}}\n"
        "  sentinel: {kind: redis, timeout: 10s, item: '12',\n"
        "             redis: {mode: sentinel, master_name: mymaster}}\n"
        "checks: []\n", encoding="utf-8")
    ours_port, theirs_port = free_port(), free_port()
    exe = Path(sys.executable).with_name("einvoice-exporter")
    ours = Proc([str(exe), "--config", str(config), "--web.listen-address", f"127.0.0.1:{ours_port}",
                 "--log.level", "warn"], tmp_path / "ours.log")
    binary = require_binary("prometheus-redis-exporter")
    theirs = Proc([binary, "-web.listen-address", f"127.0.0.1:{theirs_port}", "-is-cluster"],
                  tmp_path / "theirs.log")
    try:
        ours.wait_port(ours_port)
        theirs.wait_port(theirs_port)
        yield ours_port, theirs_port, tmp_path
    finally:
        ours.stop()
        theirs.stop()


def urls(ports: tuple[int, int, Path], module: str, target: str, theirs_target: str | None = None
         ) -> tuple[str, str]:
    ours_port, theirs_port, _ = ports
    quoted = urllib.parse.quote(target, safe="")
    return (f"http://127.0.0.1:{ours_port}/probe?module={module}&target={quoted}",
            f"http://127.0.0.1:{theirs_port}/scrape?target=redis://{theirs_target or target}")


def busy(server: RedisServer) -> None:
    """Give every optional section something to show: a TTL key, a command error, a slow log entry
    and a latency spike (DEBUG SLEEP above latency-monitor-threshold)."""
    client = server.client()
    with contextlib.suppress(redis.exceptions.MovedError, redis.exceptions.ReadOnlyError):
        client.set("invoice:1", "x", ex=600)  # not on a replica, nor a cluster node not owning it
    with contextlib.suppress(redis.exceptions.MovedError):
        client.get("missing")
    with pytest.raises(Exception, match="unknown command"):
        client.execute_command("NOSUCHCOMMAND")
    client.config_set("slowlog-log-slower-than", 0)
    client.config_set("latency-monitor-threshold", 1)
    client.execute_command("DEBUG", "SLEEP", "0.01")


def test_master_and_replica_expose_every_redis_exporter_series(
        start_redis: StartRedis, exporters: tuple[int, int, Path]) -> None:
    master = start_redis()
    replica = start_redis("--replicaof", "127.0.0.1", str(master.port))
    busy(master)
    wait_until(lambda: master.client().info("replication")["connected_slaves"] == 1,
               what="replica connected")
    busy(replica)

    for server, role in ((master, "master"), (replica, "slave")):
        ours_url, theirs_url = urls(exporters, "standalone", server.address)
        theirs, ours = scrape(theirs_url), scrape(ours_url)
        assert differences(theirs, ours) == [], (role, differences(theirs, ours))
        assert "redis_commands_total" in ours and "redis_latency_spike_last" in ours, role
    assert "redis_master_last_io_seconds_ago" in ours  # the replica's, with its master's labels
    assert ours["redis_master_last_io_seconds_ago"].labels == {"master_host", "master_port"}
    assert "redis_connected_slave_lag_seconds" in scrape(urls(exporters, "standalone", master.address)[0])


def test_sentinel_exposes_redis_exporters_sentinel_series(
        start_redis: StartRedis, exporters: tuple[int, int, Path]) -> None:
    master = start_redis()
    start_redis("--replicaof", "127.0.0.1", str(master.port))
    tmp = exporters[2]
    port = free_port()
    conf = tmp / "sentinel.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {tmp}\n"
                    f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n"
                    "sentinel down-after-milliseconds mymaster 1000\n", encoding="utf-8")
    sentinel = Proc([require_binary("redis-server"), str(conf), "--sentinel"], tmp / "sentinel.log")
    try:
        sentinel.wait_port(port)
        ours_url, theirs_url = urls(exporters, "sentinel", f"127.0.0.1:{port}")
        wait_until(lambda: 'redis_sentinel_master_slaves{master_address' in _text(theirs_url)
                   and ' 1.0' in _line(ours_url, "redis_sentinel_master_slaves"),
                   timeout=20, what="sentinel to discover the replica")
        theirs, ours = scrape(theirs_url), scrape(ours_url)
        problems = differences(theirs, ours, own_names=SENTINEL_OWN)
        assert problems == [], problems
        assert ours["redis_up"].labels == {"addr"}  # the data instances, one set each
    finally:
        sentinel.stop()


def test_each_cluster_node_exposes_redis_exporter_series(
        tmp_path: Path, exporters: tuple[int, int, Path]) -> None:
    cluster = start_cluster(tmp_path / "cluster")
    try:
        seed = cluster.nodes[0]
        busy(seed)
        ours = scrape(urls(exporters, "cluster", seed.address)[0])
        for node in cluster.nodes:
            theirs = scrape(urls(exporters, "cluster", node.address)[1])
            assert differences(theirs, ours) == [], (node.address, differences(theirs, ours))
        assert "addr" in ours["redis_commands_total"].labels
    finally:
        for node in cluster.nodes:
            node.proc.stop()


def test_readme_gives_a_reason_for_every_exception() -> None:
    text = README.read_text(encoding="utf-8")
    for name in (*NOT_EXPOSED, *COUNTERS_AS_GAUGES):
        assert f"`{name}`" in text, name


def _text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode()


def _line(url: str, name: str) -> str:
    return "\n".join(line for line in _text(url).splitlines() if line.startswith(name + "{"))
