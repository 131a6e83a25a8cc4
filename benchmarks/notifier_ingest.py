"""Webhook ingest throughput and latency of einvoice-notifier, into SQLite and into MariaDB.

Starts the real notifier (`python -m einvoice_notifier.cli`, its own process) and, for MariaDB, a
throwaway mariadbd on a free port; posts Alertmanager v4 notifications of 50 new alerts each, from
`--concurrency` client threads; prints alerts/s and p50/p99 request latency; then checks that every
alert has its ticket and its outbox message (nothing lost, nothing twice).

    .venv/bin/python benchmarks/notifier_ingest.py [--batches 100] [--concurrency 1] \
        [--backends sqlite,mariadb] [--replicas 1,2,3]

`--replicas 1,2,3` runs MariaDB with one, two and three notifier processes on one database (issue
16), the batches handed out round-robin as a load balancer would; after each run every message must
have been sent once (the senders of all replicas share the outbox through their leases).

Aim (issue 5): ≥ 500 alerts/s on SQLite with p99 < 100 ms. Aim (issue 16): p99 < 100 ms on
MariaDB, throughput growing with replicas (given cores to grow on: see the load average printed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import requests
import yaml
from sqlalchemy import func, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from einvoice_notifier import db  # noqa: E402

from tests.notifier.support import MariaDB  # noqa: E402
from tests.support.procs import Proc, free_port  # noqa: E402

TOKEN = "bench-token"
BATCH = 50


def payload(batch: int, now: str) -> bytes:
    alerts = [{
        "status": "firing",
        "labels": {"alertname": f"EinvoiceBench{batch % 7}", "severity": "critical", "item": "05",
                   "zone": "extranet", "target": f"http://intake-{batch}-{index}:7001/health"},
        "annotations": {"summary": "受理服务健康检查失败", "description": "连续 3 次探测失败"},
        "startsAt": now, "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": f"{batch:08x}{index:08x}",
    } for index in range(BATCH)]
    return json.dumps({"version": "4", "groupKey": f"{{}}:{{batch=\"{batch}\"}}", "truncatedAlerts": 0,
                       "status": "firing", "receiver": "notifier", "groupLabels": {}, "commonLabels": {},
                       "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
                       "alerts": alerts}).encode()


def _conflicts(url: str) -> dict[str, int]:
    """MariaDB's counters of transactions undone (a replica that lost a race retries: work done
    twice) and deadlocks; empty for SQLite."""
    if not url.startswith("mysql"):
        return {}
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SHOW GLOBAL STATUS WHERE Variable_name IN "
                                     "('Com_rollback', 'Innodb_deadlocks', 'Innodb_row_lock_waits')")).all()
    finally:
        engine.dispose()
    return {name.lower(): int(value) for name, value in rows}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (Linux /proc): throughput per CPU-second does not depend on
    how busy the machine is, wall-clock throughput does."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start(backend: str, url: str, work: Path, index: int, messages_too: bool) -> tuple[Proc, str]:
    port = free_port()
    name = f"{backend}-{index}"
    config: dict[str, object] = {
        "listen": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}", "database_url": url,
        "webhook_token": TOKEN, "console_secret_key": "bench-console-secret-key",
        "channels": [{"type": "console", "name": "console", "path": str(work / f"{name}.log"),
                      "stdout": False}],
    }
    if not messages_too:  # diagnosis: tickets only, no rendering and no sender competing
        config["routing"] = {"first_line": [], "second_line": []}
    (work / f"{name}.yml").write_text(yaml.safe_dump(config))
    proc = Proc([sys.executable, "-m", "einvoice_notifier.cli", "--config", str(work / f"{name}.yml"),
                 "--log-level", "warning"], log=work / f"{name}-notifier.log",
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return proc, f"http://127.0.0.1:{port}/api/v1/webhook/alertmanager"


def run(backend: str, url: str, work: Path, batches: int, concurrency: int,
        messages_too: bool = True, replicas: int = 1) -> dict[str, float]:
    """`replicas` notifier processes on one store; batch i goes to replica i mod replicas, as a
    round-robin load balancer would hand them out."""
    started_procs = [_start(backend, url, work, index, messages_too) for index in range(replicas)]
    procs = [proc for proc, _endpoint in started_procs]
    endpoints = [endpoint for _proc, endpoint in started_procs]
    for proc, endpoint in started_procs:
        proc.wait_port(int(endpoint.split(":")[2].split("/")[0]), timeout=60)
    now = datetime.now(UTC).isoformat()
    bodies = [payload(batch, now) for batch in range(batches)]
    sessions: dict[int, requests.Session] = {}
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    def post(index: int) -> float:
        import threading

        session = sessions.setdefault(threading.get_ident(), requests.Session())
        started = time.perf_counter()
        answer = session.post(endpoints[index % replicas], data=bodies[index], headers=headers, timeout=60)
        elapsed = time.perf_counter() - started
        if answer.status_code != 200:
            raise RuntimeError(f"{backend}: HTTP {answer.status_code}: {answer.text[:200]}")
        return elapsed

    warm = 3 * replicas
    try:
        for number in range(warm):  # warm-up: connections, first inserts (not counted, other fingerprints)
            requests.post(endpoints[number % replicas], data=payload(10_000_000 + number, now),
                          headers=headers, timeout=60)
        cpu_before = sum(_cpu_seconds(proc.popen.pid) for proc in procs)
        conflicts_before = _conflicts(url)
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            latencies = list(pool.map(post, range(batches)))
        wall = time.perf_counter() - started
        conflicts = {name: value - conflicts_before.get(name, 0) for name, value in _conflicts(url).items()}
        expected = (batches + warm) * BATCH
        engine = db.make_engine(url)
        if messages_too:  # every message sent once, by whichever replica leased it
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with engine.connect() as conn:
                    sent = conn.execute(select(func.count()).where(db.outbox.c.state == "sent")).scalar()
                if sent == expected:
                    break
                time.sleep(0.2)
        # CPU after the senders are done too: the whole cost of an alert, ticket and message, on
        # however many replicas it was spread (a sender lagging behind the webhook is not free).
        cpu = sum(_cpu_seconds(proc.popen.pid) for proc in procs) - cpu_before
    finally:
        for proc in procs:
            proc.stop()
    with engine.connect() as conn:
        tickets = conn.execute(select(func.count()).select_from(db.tickets)).scalar()
        messages = conn.execute(select(func.count()).select_from(db.outbox)).scalar()
        sent = conn.execute(select(func.count()).where(db.outbox.c.state == "sent")).scalar()
        distinct = conn.execute(select(func.count(func.distinct(db.tickets.c.fingerprint)))).scalar()
    engine.dispose()
    logs = [work / f"{backend}-{index}.log" for index in range(replicas)]
    written = sum(len(re.findall(r"^=== \S+ console \[", log.read_text(encoding="utf-8"), re.MULTILINE))
                  for log in logs if log.exists())
    latencies.sort()
    result = {
        "alerts_per_s": batches * BATCH / wall,
        "p50_ms": statistics.median(latencies) * 1000,
        "p90_ms": latencies[int(len(latencies) * 0.9)] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "max_ms": latencies[-1] * 1000,
        "tickets": float(tickets or 0), "expected": float(expected),
        "alerts_per_cpu_s": batches * BATCH / cpu if cpu > 0 else 0.0,
    }
    lost = expected - (tickets or 0)
    print(f"{backend:8s} x{replicas} {batches} batches x {BATCH} alerts, {concurrency} clients: "
          f"{result['alerts_per_s']:.0f} alerts/s, p50 {result['p50_ms']:.1f} ms, "
          f"p90 {result['p90_ms']:.1f} ms, "
          f"p99 {result['p99_ms']:.1f} ms, max {result['max_ms']:.1f} ms; "
          f"notifier CPU {cpu:.1f} s = {result['alerts_per_cpu_s']:.0f} alerts per CPU-second "
          f"(load average {os.getloadavg()[0]:.1f}); "
          f"tickets {tickets}/{expected}, messages {messages} ({sent} sent, {written} written by the "
          f"senders), distinct alerts {distinct}, lost {lost}"
          + (f"; server: {', '.join(f'{k} {v}' for k, v in conflicts.items())}" if conflicts else ""),
          flush=True)
    if tickets != expected or messages != (expected if messages_too else 0) or distinct != expected:
        raise SystemExit(f"{backend}: alerts lost or duplicated")
    if messages_too and (sent != expected or written != expected):
        raise SystemExit(f"{backend}: messages not sent exactly once ({sent} sent, {written} written)")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--backends", default="sqlite,mariadb")
    parser.add_argument("--replicas", default="1",
                        help="notifier processes on the MariaDB store, one run per count: e.g. 1,2,3 "
                             "(SQLite is the one-process store: always 1)")
    parser.add_argument("--tickets-only", action="store_true",
                        help="route no messages (diagnosis: the cost of rendering and sending)")
    args = parser.parse_args()
    counts = [int(count) for count in args.replicas.split(",")]
    with tempfile.TemporaryDirectory(prefix="notifier-bench-") as tmp:
        work = Path(tmp)
        results: dict[str, dict[str, float]] = {}
        for backend in args.backends.split(","):
            if backend == "sqlite":
                results[backend] = run(backend, f"sqlite:///{work / 'bench.db'}", work, args.batches,
                                       args.concurrency, not args.tickets_only)
            elif backend == "mariadb":
                server = MariaDB(work / "mariadb").start()
                try:
                    for count in counts:
                        results[f"mariadb x{count}"] = run(f"mariadb{count}", server.new_database(), work,
                                                           args.batches, args.concurrency,
                                                           not args.tickets_only, count)
                finally:
                    server.stop()
            else:
                raise SystemExit(f"unknown backend {backend!r}")
        sqlite = results.get("sqlite")
        if sqlite is not None:
            verdict = "met" if sqlite["alerts_per_s"] >= 500 and sqlite["p99_ms"] < 100 else "NOT met"
            print(f"aim (SQLite ≥ 500 alerts/s, p99 < 100 ms): {verdict}")
        one = results.get("mariadb x1")
        for count in counts:
            found = results.get(f"mariadb x{count}")
            if found is None:
                continue
            ratio = f", {found['alerts_per_s'] / one['alerts_per_s']:.2f}x the throughput of 1" if one else ""
            verdict = "met" if found["p99_ms"] < 100 else "NOT met"
            print(f"mariadb, {count} replica(s): {found['alerts_per_s']:.0f} alerts/s{ratio}, "
                  f"p99 {found['p99_ms']:.1f} ms (aim p99 < 100 ms: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
