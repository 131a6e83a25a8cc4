"""Real redis-server processes on free ports, started and stopped by the tests."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.support.procs import Proc, free_port, require_binary, wait_until


@dataclass
class RedisServer:
    proc: Proc
    port: int
    dir: Path
    argv: list[str]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self, **kwargs: object) -> redis.Redis:
        options: dict = {"protocol": 2, "socket_timeout": 5, **kwargs}
        return redis.Redis(host="127.0.0.1", port=self.port, **options)

    def restart(self) -> None:
        """Start the same server again (same dir, same nodes.conf), as an operator would."""
        self.proc = Proc(self.argv, self.dir / "redis.log", cwd=self.dir).wait_port(self.port)


def redis_argv(port: int, directory: Path, *extra: str) -> list[str]:
    binary = require_binary("redis-server")
    return [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(directory), "--enable-debug-command", "local", *extra]


StartRedis = Callable[..., RedisServer]


@pytest.fixture
def start_redis(tmp_path: Path) -> Iterator[StartRedis]:
    """Start a redis-server with extra arguments; `tls=True` puts it on a TLS port only."""
    started: list[RedisServer] = []

    def start(*extra: str, name: str | None = None, tls_args: tuple[str, ...] = ()) -> RedisServer:
        port = free_port()
        directory = tmp_path / (name or f"redis-{len(started)}")
        directory.mkdir()
        if tls_args:
            argv = redis_argv(0, directory, "--tls-port", str(port), *tls_args, *extra)
        else:
            argv = redis_argv(port, directory, *extra)
        server = RedisServer(Proc(argv, directory / "redis.log", cwd=directory).wait_port(port),
                             port, directory, argv)
        started.append(server)
        return server

    yield start
    for server in started:
        server.proc.stop()


def established_to(port: int) -> int:
    """Client-side TCP connections to 127.0.0.1:port in state ESTABLISHED (from /proc/net/tcp)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state = fields[2], fields[3]
        if state == "01" and int(remote.split(":")[1], 16) == port:
            count += 1
    return count


@dataclass
class Cluster:
    nodes: list[RedisServer]

    def roles(self) -> dict[int, tuple[str, int | None]]:
        """port -> (role, master port) from each live node's ROLE reply."""
        result: dict[int, tuple[str, int | None]] = {}
        for node in self.nodes:
            if not node.proc.alive():
                continue
            reply = node.client().execute_command("ROLE")
            role = reply[0].decode()
            result[node.port] = (role, int(reply[2]) if role == "slave" else None)
        return result

    def node(self, port: int) -> RedisServer:
        return next(n for n in self.nodes if n.port == port)

    def healthy(self) -> bool:
        try:
            for node in self.nodes:
                info = node.client().execute_command("CLUSTER", "INFO").decode()
                if "cluster_state:ok" not in info or not re.search(r"cluster_known_nodes:6\b", info):
                    return False
                nodes = node.client().execute_command("CLUSTER", "NODES").decode()
                if "fail" in nodes or nodes.count("slave") != 3:
                    return False
                replication = node.client().info("replication")
                if replication["role"] == "slave" and replication["master_link_status"] != "up":
                    return False
        except redis.RedisError:
            return False
        return True


def start_cluster(directory: Path) -> Cluster:
    """Six nodes, three masters with one replica each, node timeout 1 s so failover is quick."""
    cli = require_binary("redis-cli")
    nodes: list[RedisServer] = []
    taken: set[int] = set()
    try:
        for index in range(6):
            nodes.append(_start_cluster_node(directory / f"node-{index}", taken))
        subprocess.run([cli, "--cluster", "create", *(n.address for n in nodes), "--cluster-replicas", "1",
                        "--cluster-yes"], check=True, capture_output=True, timeout=60)
        cluster = Cluster(nodes)
        wait_until(cluster.healthy, timeout=30, what="cluster healthy on all six nodes")
    except BaseException:
        for node in nodes:
            node.proc.stop()
        raise
    return cluster


def _start_cluster_node(node_dir: Path, taken: set[int], attempts: int = 3) -> RedisServer:
    """One node on two fresh ports; another attempt when a port was grabbed in between (other
    processes on this machine pick free ports too)."""
    node_dir.mkdir(parents=True)
    for attempt in range(attempts):
        port, bus_port = _fresh_port(taken), _fresh_port(taken)
        argv = redis_argv(port, node_dir, "--cluster-enabled", "yes", "--cluster-port", str(bus_port),
                          "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1000",
                          "--repl-diskless-sync-delay", "0")
        proc = Proc(argv, node_dir / "redis.log", cwd=node_dir)
        try:
            return RedisServer(proc.wait_port(port), port, node_dir, argv)
        except RuntimeError:
            proc.stop()
            if attempt == attempts - 1 or "Address already in use" not in proc.log.read_text():
                raise
    raise AssertionError("unreachable")


def _fresh_port(taken: set[int]) -> int:
    while True:
        port = free_port()
        if port not in taken:
            taken.add(port)
            return port
