"""Side by side: our exporter (the real CLI, /probe) and Debian's prometheus-redis-exporter on the
same Redis, a standalone instance with 100 000 keys and a 3-master/3-replica cluster.

Per scrape: wall time (mean, p50, p95) seen by the scraper, and CPU of the exporter process and of
the Redis server(s), from utime+stime in /proc/<pid>/stat before and after N scrapes. Scrapes run
one after another on one kept-alive HTTP connection per exporter, as Prometheus does for one target
(`--new-connections` opens one per scrape). Both exporters use their defaults (neither scans keys);
ours emits every redis_exporter series it has a name for (tests/redis/test_parity.py).

The cluster is not the same job for both: ours reads all six nodes in one scrape; redis_exporter
reads one node per scrape (its documented multi-target way is /scrape?target=<node> per node), so
it is shown both for one node and for all six (six scrapes, one after another).

    .venv/bin/python benchmarks/redis_compare.py [--scrapes 200] [--keys 100000] [--new-connections]

Measured 2026-12-06 on the shared 2-core machine (load average ~6), `--scrapes 200`: standalone
wall 0.82x (p50 0.76x), exporter CPU 0.58x of redis_exporter, the full set of series, one kept
connection (0.87x with a fresh connection per scrape); cluster, all 6 nodes in one scrape, 0.37x of
redis_exporter's six /scrape calls. Before /probe was written without metric objects: 1.01x
(p50 0.88x), CPU 0.73x (load average 4.9).
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import redis

from tests.redis.conftest import Cluster, redis_argv, start_cluster
from tests.support.procs import Proc, free_port

TICKS = os.sysconf("SC_CLK_TCK")
REDIS_EXPORTER = "/usr/bin/prometheus-redis-exporter"
KEEP_ALIVE = True


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / TICKS


_CONNECTIONS: dict[str, http.client.HTTPConnection] = {}


def fetch(url: str) -> bytes:
    """GET on a kept-alive connection per host:port, as Prometheus scrapes (one connection per
    target, reused); `--new-connections` opens one per scrape instead."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    connection = _CONNECTIONS.get(parts.netloc) if KEEP_ALIVE else None
    if connection is None:
        connection = http.client.HTTPConnection(parts.netloc, timeout=30)
    connection.request("GET", path, headers={
        "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"})
    response = connection.getresponse()
    body = response.read()
    if response.status != 200:
        raise RuntimeError(f"{url}: HTTP {response.status}")
    if KEEP_ALIVE:
        _CONNECTIONS[parts.netloc] = connection
    else:
        connection.close()
    return body


@dataclass
class Result:
    name: str
    walls: list[float]
    exporter_cpu: float
    redis_cpu: float
    size: int

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.walls) * 1000

    def line(self) -> str:
        n = len(self.walls)
        p50 = statistics.median(self.walls) * 1000
        p95 = sorted(self.walls)[int(n * 0.95) - 1] * 1000
        return (f"{self.name:<44} {self.mean_ms:8.2f} {p50:8.2f} {p95:8.2f}"
                f" {self.exporter_cpu / n * 1000:9.2f} {self.redis_cpu / n * 1000:9.2f} {self.size:8d}")


@dataclass
class Contender:
    name: str
    scrape: Callable[[], int]
    exporter_pid: int
    redis_pids: list[int]
    result: Result | None = None


def measure(contenders: list[Contender], scrapes: int, batch: int = 10, warmup: int = 10) -> None:
    """Scrape each contender in turn, `batch` scrapes at a time, so that the load of a shared
    machine falls on all of them alike."""
    for contender in contenders:
        for _ in range(warmup):
            contender.scrape()
        contender.result = Result(contender.name, [], 0.0, 0.0, 0)
    for _ in range(max(scrapes // batch, 1)):
        for contender in contenders:
            result = contender.result
            assert result is not None
            exporter_before = cpu_seconds([contender.exporter_pid])
            redis_before = cpu_seconds(contender.redis_pids)
            for _ in range(batch):
                started = time.perf_counter()
                result.size = contender.scrape()
                result.walls.append(time.perf_counter() - started)
            result.exporter_cpu += cpu_seconds([contender.exporter_pid]) - exporter_before
            result.redis_cpu += cpu_seconds(contender.redis_pids) - redis_before


def in_process(target: str, kind: str, scrapes: int) -> float:
    """Milliseconds per run of the collector alone (no HTTP, no runtime), for reference."""
    from einvoice_exporter.collectors import redis as redis_kind
    from einvoice_exporter.collectors import redis_cluster as cluster_kind

    module = redis_kind if kind == "redis" else cluster_kind
    check = module.build(module.Settings())
    try:
        check.run(target, 10)
        started = time.perf_counter()
        for _ in range(scrapes):
            check.run(target, 10)
        return (time.perf_counter() - started) / scrapes * 1000
    finally:
        check.close()


def start_ours(work: Path, standalone: str, cluster_seed: str) -> tuple[Proc, int]:
    config = work / "einvoice-exporter.yml"
    config.write_text(
        "modules:\n"
        "  standalone: {kind: redis, timeout: 10s, item: '06'}\n"
        "  standalone_fresh: {kind: redis, timeout: 10s, item: '06',\n"
        "                     redis: {persistent_connections: false}}\n"
        "  cluster: {kind: redis_cluster, timeout: 10s, item: '11'}\n"
        "checks:\n"
        f"  - {{name: bench-standalone, item: '06', module: standalone, target: '{standalone}'}}\n"
        f"  - {{name: bench-cluster, item: '11', module: cluster, target: '{cluster_seed}'}}\n",
        encoding="utf-8")
    port = free_port()
    exe = Path(sys.executable).with_name("einvoice-exporter")
    proc = Proc([str(exe), "--config", str(config), "--web.listen-address", f"127.0.0.1:{port}",
                 "--log.level", "warn"], work / "einvoice-exporter.log")
    return proc.wait_port(port), port


def start_redis_exporter(work: Path, addr: str, *extra: str) -> tuple[Proc, int]:
    port = free_port()
    proc = Proc([REDIS_EXPORTER, "-redis.addr", f"redis://{addr}", "-web.listen-address",
                 f"127.0.0.1:{port}", *extra], work / f"redis-exporter-{port}.log")
    return proc.wait_port(port), port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--new-connections", action="store_true",
                        help="open a new HTTP connection per scrape (default: keep-alive, as Prometheus)")
    args = parser.parse_args()
    global KEEP_ALIVE
    KEEP_ALIVE = not args.new_connections
    for binary in ("redis-server", "redis-cli", REDIS_EXPORTER):
        if not shutil.which(binary) and not Path(binary).exists():
            print(f"{binary} is missing (apt-get install redis-server prometheus-redis-exporter)")
            return 2

    procs: list[Proc] = []
    cluster: Cluster | None = None
    with tempfile.TemporaryDirectory(prefix="redis-bench-") as tmp:
        work = Path(tmp)
        try:
            port = free_port()
            (work / "standalone").mkdir()
            standalone = Proc(redis_argv(port, work / "standalone"), work / "standalone" / "redis.log")
            procs.append(standalone.wait_port(port))
            address = f"127.0.0.1:{port}"
            client = redis.Redis(port=port)
            pipe = client.pipeline(transaction=False)
            for start in range(0, args.keys, 1000):
                pipe.mset({f"invoice:{i}": i for i in range(start, min(start + 1000, args.keys))})
            pipe.execute()
            assert client.dbsize() == args.keys

            cluster = start_cluster(work / "cluster")
            seed = cluster.nodes[0]
            cluster_pids = [n.proc.popen.pid for n in cluster.nodes]

            ours, ours_port = start_ours(work, address, seed.address)
            procs.append(ours)
            theirs, theirs_port = start_redis_exporter(work, address)
            procs.append(theirs)
            theirs_c, theirs_c_port = start_redis_exporter(work, seed.address, "-is-cluster")
            procs.append(theirs_c)

            def get(url: str) -> Callable[[], int]:
                return lambda: len(fetch(url))

            def all_nodes() -> int:
                return sum(len(fetch(f"http://127.0.0.1:{theirs_c_port}/scrape?target=redis://{n.address}"))
                           for n in cluster.nodes)  # type: ignore[union-attr]

            n = args.scrapes
            standalone_pair = [
                Contender("standalone, 100k keys: einvoice /probe",
                          get(f"http://127.0.0.1:{ours_port}/probe?module=standalone&target={address}"),
                          ours.popen.pid, [standalone.popen.pid]),
                Contender("standalone: einvoice, fresh connection/scrape",
                          get(f"http://127.0.0.1:{ours_port}/probe?module=standalone_fresh&target={address}"),
                          ours.popen.pid, [standalone.popen.pid]),
                Contender("standalone, 100k keys: redis_exporter",
                          get(f"http://127.0.0.1:{theirs_port}/metrics"),
                          theirs.popen.pid, [standalone.popen.pid]),
            ]
            cluster_trio = [
                Contender("cluster, 6 nodes: einvoice /probe (all 6)",
                          get(f"http://127.0.0.1:{ours_port}/probe?module=cluster&target={seed.address}"),
                          ours.popen.pid, cluster_pids),
                Contender("cluster: redis_exporter -is-cluster (1 node)",
                          get(f"http://127.0.0.1:{theirs_c_port}/metrics"),
                          theirs_c.popen.pid, cluster_pids),
                Contender("cluster: redis_exporter (6 x /scrape)", all_nodes,
                          theirs_c.popen.pid, cluster_pids),
            ]
            measure(standalone_pair, n)
            measure(cluster_trio, n)
            results = [c.result for c in standalone_pair + cluster_trio if c.result is not None]
            reference = (in_process(address, "redis", n), in_process(seed.address, "redis_cluster", n))
        finally:
            for proc in procs:
                proc.stop()
            if cluster is not None:
                for node in cluster.nodes:
                    node.proc.stop()

    print(f"{args.scrapes} sequential scrapes each, contenders alternating every 10 (after 10 warm-up), "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
          f"python {sys.version.split()[0]}, redis-py {redis.__version__}")
    print(f"{'':<44} {'wall ms':>8} {'p50':>8} {'p95':>8} {'cpu ms':>9} {'redis ms':>9} {'bytes':>8}")
    print(f"{'':<44} {'mean':>8} {'':>8} {'':>8} {'exporter':>9} {'server':>9}")
    for result in results:
        print(result.line())
    ours_s, ours_fresh, theirs_s, ours_c, theirs_1, theirs_6 = results
    print(f"{'collector alone, in-process: standalone':<44} {reference[0]:8.2f}")
    print(f"{'collector alone, in-process: cluster (6 nodes)':<44} {reference[1]:8.2f}")
    print()
    print(f"standalone p50 wall ratio ours/redis_exporter: "
          f"{statistics.median(ours_s.walls) / statistics.median(theirs_s.walls):.2f}")
    print(f"standalone wall ratio ours/redis_exporter: {ours_s.mean_ms / theirs_s.mean_ms:.2f} "
          f"(fresh connection per scrape: {ours_fresh.mean_ms / theirs_s.mean_ms:.2f})")
    ours_cpu = ours_s.exporter_cpu / len(ours_s.walls)
    theirs_cpu = theirs_s.exporter_cpu / len(theirs_s.walls)
    print(f"standalone exporter CPU ratio: {ours_cpu / max(theirs_cpu, 1e-9):.2f}")
    print(f"cluster wall ratio ours(6 nodes)/redis_exporter(1 node): "
          f"{ours_c.mean_ms / theirs_1.mean_ms:.2f}")
    print(f"cluster wall ratio ours(6 nodes)/redis_exporter(6 nodes): "
          f"{ours_c.mean_ms / theirs_6.mean_ms:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
