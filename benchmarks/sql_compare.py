"""Side by side: our exporter (the real CLI, /metrics) and Debian's prometheus-sql-exporter
(justwatchcom/sql_exporter 0.4.5) on the same MariaDB with the same 50 aggregate queries.

Both now schedule alike: prometheus-sql-exporter runs every query of a job in the background each
`interval` and /metrics returns the last results; ours runs every check that has an `interval` in
the background (the exporter's scheduler) and /metrics serves the latest results. Two scenarios,
each for `--seconds` with one scrape per second, as Prometheus does:

- every second: interval 1s for both, so both run the 50 queries once a second. Exporter CPU per
  second is the fair comparison of work; scrape wall time is serving the cache on both sides. A
  third row shows ours without an interval (the queries run inside each scrape, as before the
  background refresh): the cost of choosing that. The last row of each scenario is ours configured
  like their job: one module with all the queries, one check (one run, one connection per interval).
- every 5 s: interval 5s for both; scrapes in between serve the cache on both sides.

The contenders of a scenario run at the same time on the same MariaDB and are scraped in turn
(order rotating) each second on one kept-alive HTTP connection each, as Prometheus scrapes a target
(`--new-connections`: one per scrape), so that the load of a shared machine falls on all of them alike; the
MariaDB server's CPU is therefore theirs together. Each row: scrape wall time (mean, p50, p95 ms)
and exporter CPU (ms per second of the window, from utime+stime in /proc/<pid>/stat). Ratios are
ours / theirs.

    .venv/bin/python benchmarks/sql_compare.py [--seconds 30] [--checks 50] [--new-connections]

Measured 2026-12-06 on the shared 2-core machine (load average ~5), `--seconds 30`, ratios ours /
theirs (mean, p50, p95 scrape wall; exporter CPU):

    every second, 50 checks with interval 1s:    1.00x  1.21x  0.64x  CPU 2.35x
    every second, 50 checks without interval:   39.63x 54.89x 18.92x  CPU 1.96x  (queries in the scrape)
    every second, 1 check of the 50 queries:     0.84x  0.82x  0.86x  CPU 1.35x
    every 5 s, 50 checks with interval 5s:       0.93x  1.15x  0.66x  CPU 1.89x
    every 5 s, 1 check of the 50 queries:        0.72x  0.80x  0.84x  CPU 0.89x

Before the background refresh (old version of this script: windows one after another, a new HTTP
connection per scrape, ours without interval against theirs at 1s): every second 27.01x / 67.87x /
17.51x, CPU 2.69x; every 5 s 22.37x / 7.93x / 70.82x, CPU 3.00x. What is left of the CPU ratio is
per query: pymysql parses the protocol in Python (~0.1 ms a query here), and each check's run
costs ~0.15 ms more (thread hand-off, result, its rendered lines); the Go exporter spends ~0.17 ms
a query in all. Grouping a database's queries in one module (one check) saves the per-check part. The
scrape's own cost is rendering each check's lines once per result (cached) and the HTTP server.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.sql.conftest import MONITOR, MariaDB, start_mariadb
from tests.support.procs import Proc, free_port

TICKS = os.sysconf("SC_CLK_TCK")
SQL_EXPORTER = "/usr/bin/prometheus-sql-exporter"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


_CONNECTIONS: dict[str, http.client.HTTPConnection] = {}
KEEP_ALIVE = True


def fetch(url: str) -> int:
    """GET on a kept-alive connection per host:port, as Prometheus scrapes a target (one connection,
    reused); `--new-connections` opens one per scrape instead."""
    parts = urllib.parse.urlsplit(url)
    connection = _CONNECTIONS.pop(parts.netloc, None) if KEEP_ALIVE else None
    if connection is None:
        connection = http.client.HTTPConnection(parts.netloc, timeout=30)
    connection.request("GET", parts.path)
    response = connection.getresponse()
    body = response.read()
    if response.status != 200:
        raise RuntimeError(f"{url}: HTTP {response.status}")
    if KEEP_ALIVE:
        _CONNECTIONS[parts.netloc] = connection
    else:
        connection.close()
    return len(body)


def query(index: int) -> str:
    return (f"SELECT status, COUNT(*) AS n{index:02d}, COALESCE(MAX(id), 0) AS last{index:02d}"
            f" FROM push_queue WHERE id > {index} GROUP BY status")


@dataclass
class Row:
    name: str
    walls: list[float]
    exporter_cpu: float
    seconds: float
    size: int

    def cells(self) -> tuple[float, float, float, float]:
        n = len(self.walls)
        return (statistics.fmean(self.walls) * 1000, statistics.median(self.walls) * 1000,
                sorted(self.walls)[max(int(n * 0.95) - 1, 0)] * 1000,
                self.exporter_cpu / self.seconds * 1000)


def run_together(contenders: list[tuple[str, str, int]], db_pid: int, seconds: float
                 ) -> tuple[list[Row], float]:
    """Scrape every contender (name, url, pid) once a second, in rotating order; the rows and the
    database's CPU in ms per second."""
    for _, url, _ in contenders:
        for _ in range(3):
            fetch(url)
    rows = [Row(name, [], 0.0, 0.0, 0) for name, _, _ in contenders]
    before = [cpu_seconds(pid) for _, _, pid in contenders]
    db_before = cpu_seconds(db_pid)
    started = time.monotonic()
    tick = started
    turn = 0
    while tick - started < seconds:
        for offset in range(len(contenders)):
            index = (turn + offset) % len(contenders)
            begin = time.perf_counter()
            rows[index].size = fetch(contenders[index][1])
            rows[index].walls.append(time.perf_counter() - begin)
        turn += 1
        tick += 1.0
        time.sleep(max(0.0, tick - time.monotonic()))  # a benchmark's scrape schedule, not a test wait
    elapsed = time.monotonic() - started
    for row, (_, _, pid), cpu in zip(rows, contenders, before, strict=True):
        row.exporter_cpu = cpu_seconds(pid) - cpu
        row.seconds = elapsed
    return rows, (cpu_seconds(db_pid) - db_before) / elapsed * 1000


def start_ours(work: Path, db: MariaDB, checks: int, interval: str | None,
               grouped: bool = False) -> tuple[Proc, int]:
    """`checks` checks of one query each; `grouped`: one check whose module runs all the queries
    on one connection, as a prometheus-sql-exporter job does."""
    every = f", interval: {interval}" if interval else ""
    modules = ["q"] if grouped else [f"q{i:02d}" for i in range(checks)]
    lines = ["modules:"]
    for index, module in enumerate(modules):
        lines += [f"  {module}:", "    kind: sql", "    timeout: 10s", "    sql:", "      driver: mysql",
                  f"      username: {MONITOR[0]}", f"      password: {MONITOR[1]}", "      queries:"]
        for i in range(checks) if grouped else (index,):
            lines += [f"        - {{name: q{i:02d}, labels: [status], values: [n{i:02d}, last{i:02d}],",
                      f"           sql: \"{query(i)}\"}}"]
    lines.append("checks:")
    for module in modules:
        lines.append(f"  - {{name: {module}, item: '14', module: {module}, target: '{db.target}'{every}}}")
    config = work / f"ours-{interval or 'none'}{'-grouped' if grouped else ''}.yml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    port = free_port()
    exe = Path(sys.executable).with_name("einvoice-exporter")
    proc = Proc([str(exe), "--config", str(config), "--web.listen-address", f"127.0.0.1:{port}",
                 "--log.level", "warn"], work / f"ours-{port}.log")
    return proc.wait_port(port), port


def start_theirs(work: Path, db: MariaDB, checks: int, interval: str) -> tuple[Proc, int]:
    dsn = f"mysql://{MONITOR[0]}:{MONITOR[1]}@tcp(127.0.0.1:{db.port})/einv"
    lines = ["jobs:", "- name: bench", f"  interval: '{interval}'", "  connections:", f"  - '{dsn}'",
             "  queries:"]
    for i in range(checks):
        lines += [f"  - name: q{i:02d}", f"    help: query {i}", "    labels: [status]",
                  f"    values: [n{i:02d}, last{i:02d}]", f"    query: \"{query(i)}\""]
    config = work / f"theirs-{interval}.yml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    port = free_port()
    proc = Proc([SQL_EXPORTER, "-config.file", str(config), "-web.listen-address", f"127.0.0.1:{port}"],
                work / f"theirs-{port}.log")
    return proc.wait_port(port), port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--checks", type=int, default=50)
    parser.add_argument("--new-connections", action="store_true",
                        help="open a new HTTP connection per scrape (default: keep-alive, as Prometheus)")
    args = parser.parse_args()
    global KEEP_ALIVE
    KEEP_ALIVE = not args.new_connections
    if not Path(SQL_EXPORTER).exists():
        print("apt-get install prometheus-sql-exporter first", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="sql-bench-") as tmp:
        work = Path(tmp)
        db = start_mariadb(work / "mariadb")
        db.execute("INSERT INTO einv.push_queue (channel, status, created_at)"
                   " SELECT 'bank', ELT(1 + seq % 3, 'PENDING', 'DONE', 'FAILED'), NOW()"
                   " FROM einv.seq_1_to_5000")
        assert db.proc is not None
        db_pid = db.proc.popen.pid
        print(f"{args.checks} checks, MariaDB {db.target}, {args.seconds:.0f} s per window, 1 scrape/s")
        print(f"{'':<52} {'mean ms':>8} {'p50 ms':>8} {'p95 ms':>8} {'cpu ms/s':>9}")
        try:
            scenarios = (("every second", "1s", True), ("every 5 s", "5s", False))
            for label, interval, inline_too in scenarios:
                procs: list[Proc] = []
                contenders: list[tuple[str, str, int]] = []
                try:
                    for who, ours_interval in [("ours", interval), ("theirs", None),
                                               *([("ours, no interval", None)] if inline_too else []),
                                               ("ours, 1 check of all queries", interval)]:
                        if who == "theirs":
                            proc, port = start_theirs(work, db, args.checks, interval)
                        else:
                            proc, port = start_ours(work, db, args.checks, ours_interval,
                                                    grouped=who.endswith("all queries"))
                        procs.append(proc)
                        contenders.append((f"{label}: {who}", f"http://127.0.0.1:{port}/metrics",
                                           proc.popen.pid))
                    time.sleep(2.0)  # let the first background runs finish
                    rows, db_cpu = run_together(contenders, db_pid, args.seconds)
                finally:
                    for proc in procs:
                        proc.stop()
                for row in rows:
                    print(f"{row.name:<52} " + " ".join(f"{c:8.2f}" for c in row.cells())
                          + f"  ({row.size} bytes)")
                theirs = rows[1].cells()
                for row in (rows[0], *rows[2:]):
                    ratios = [o / t if t else float("inf") for o, t in zip(row.cells(), theirs, strict=True)]
                    print(f"{row.name + ' / theirs':<52} " + " ".join(f"{r:7.2f}x" for r in ratios))
                print(f"{label}: MariaDB CPU, all contenders together: {db_cpu:.1f} ms/s")
        finally:
            db.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
