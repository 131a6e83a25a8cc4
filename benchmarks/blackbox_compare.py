"""Side by side: our exporter (the real CLI) and Debian's prometheus-blackbox-exporter probing the
same 500 HTTP targets, served by one local nginx (one port, 500 paths).

(a) N /probe requests (default 500, one per target) at concurrency 50 against each exporter: wall
    time, CPU seconds per probe of the exporter process (utime+stime from /proc/<pid>/stat before
    and after), peak RSS (VmHWM).
(b) One /metrics scrape of our exporter with the 500 targets configured as checks (the first, cold,
    and a second one), with its CPU.
(c) Where the time goes: the http collector alone (in this process, no server) for the same 500
    targets, its CPU per probe, and the top functions under cProfile.

    .venv/bin/python benchmarks/blackbox_compare.py [--targets 500] [--concurrency 50] [--no-profile]

Aims (issue 2): CPU per probe <= 1.5 x blackbox_exporter's; the 500-check scrape < 2 s; RSS < 80 MB.
Loopback only; every loop is bounded; all processes started here are stopped here.
"""

from __future__ import annotations

import argparse
import cProfile
import http.client
import io
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.procs import Proc, free_port

TICKS = os.sysconf("SC_CLK_TCK")
BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

NGINX_CONF = """
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=1024;
        location ~ ^/svc/(\\d+)/actuator/health$ {{
            default_type application/json;
            return 200 '{{"status":"UP","components":{{"db":{{"status":"UP"}}}},"instance":"$1"}}';
        }}
    }}
}}
"""

BLACKBOX_CONF = """
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Client:
    """One keep-alive connection per thread, as Prometheus keeps one per target."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.local = threading.local()

    def get(self, path: str, timeout: float = 30) -> tuple[int, bytes]:
        for attempt in range(2):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            try:
                conn.request("GET", path, headers={"X-Prometheus-Scrape-Timeout-Seconds": "10"})
                response = conn.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                self.local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")


@dataclass
class ProbeRun:
    name: str
    wall: float
    cpu: float
    probes: int
    ok: int
    peak_rss: float

    @property
    def cpu_per_probe_ms(self) -> float:
        return self.cpu / self.probes * 1000


def probe_run(name: str, pid: int, port: int, paths: list[str], concurrency: int) -> ProbeRun:
    client = Client(port)
    with ThreadPoolExecutor(concurrency) as pool:  # warm-up: threads, connections, first imports
        list(pool.map(client.get, paths[:concurrency]))
    cpu_before = cpu_seconds(pid)
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(client.get, paths))
    wall = time.perf_counter() - started
    cpu = cpu_seconds(pid) - cpu_before
    ok = sum(1 for status, body in results
             if status == 200 and (b"\nprobe_success 1\n" in body or b"\nprobe_success 1.0\n" in body))
    if ok < len(paths):
        status, body = next((s, b) for s, b in results if s != 200 or b"probe_success 1" not in b)
        print(f"{name}: {len(paths) - ok} probes did not succeed, e.g. HTTP {status}: {body[:300]!r}")
    return ProbeRun(name, wall, cpu, len(paths), ok, peak_rss_mb(pid))


def profile_collector(targets: list[str], top: int) -> tuple[float, str]:
    """CPU per probe of the http collector alone, and the top of its cProfile."""
    from einvoice_exporter.collectors import http as http_collector

    check = http_collector.build(http_collector.Settings())
    for target in targets[:20]:
        check.run(target, 5)
    cpu_before = time.process_time()
    for target in targets:
        check.run(target, 5)
    cpu_per_probe = (time.process_time() - cpu_before) / len(targets)
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for target in targets:
        check.run(target, 5)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return cpu_per_probe, _table(out, top)


AREAS = (
    # not CPU of a /probe: idle waits of pool threads, and start-up (config parsing, imports)
    ("SimpleQueue' objects", None), ("acquire' of '_thread", None), ("select.", None),
    ("'poll' of", None), ("'accept' of", None), ("yaml/", None), ("pydantic", None),
    ("<frozen importlib", None), ("importlib/", None),
    ("collectors/", "network collector (einvoice_exporter/collectors)"),
    ("einvoice_exporter/", "exporter runtime and server (einvoice_exporter)"),
    ("prometheus_client/", "prometheus_client (text exposition of the probe's families)"),
    ("http/server.py", "stdlib http.server / socketserver (request line, handler)"),
    ("socketserver.py", "stdlib http.server / socketserver (request line, handler)"),
    ("email/", "stdlib email (header parsing of incoming requests)"),
    ("threading.py", "threads, futures, thread pool"),
    ("concurrent/", "threads, futures, thread pool"),
    ("_socket.socket", "socket calls (connect, send, recv, close)"),
    ("socket.py", "socket calls (connect, send, recv, close)"),
    ("<method '", "built-in str/bytes/dict methods"),
    ("<built-in method", "built-in functions (len, isinstance, ...)"),
)


def _area(key: tuple[str, int, str]) -> str | None:
    filename, _, function = key
    text = f"{filename}:{function}" if filename != "~" else function
    for marker, area in AREAS:
        if marker in text:
            return area
    return "other stdlib Python (urllib.parse, logging, re, ...)"


def profile_exporter(root: Path, paths: list[str], concurrency: int) -> tuple[list[tuple[str, float]], str]:
    """Shares of the exporter's CPU by area during the same /probe run, all threads profiled."""
    port = free_port()
    out = root / "exporter.prof"
    wrapper = Path(__file__).with_name("blackbox_profile_exporter.py")
    proc = Proc([sys.executable, str(wrapper), str(out), "--config", str(root / "exporter.yml"),
                 "--web.listen-address", f"127.0.0.1:{port}", "--log.level", "warn"],
                log=root / "profiled.log")
    try:
        proc.wait_port(port)
        probe_run("profiled", proc.popen.pid, port, paths, concurrency)
    finally:
        proc.stop(timeout=30)
    if not out.exists():
        print(f"the profiled exporter wrote no profile:\n{proc.log_text()}")
        return [], ""
    stats = pstats.Stats(str(out))
    totals: dict[str, float] = {}
    for key, (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        area = _area(key)
        if area is not None:
            totals[area] = totals.get(area, 0.0) + tottime
    whole = sum(totals.values()) or 1.0
    shares = sorted(((area, value / whole) for area, value in totals.items()), key=lambda x: -x[1])
    top = sorted(((tt, nc, key) for key, (_cc, nc, tt, _ct, _c) in stats.stats.items()  # type: ignore[attr-defined]
                  if _area(key) is not None), reverse=True)[:15]
    lines = [f"{'own CPU s':>10} {'calls':>8}  function"]
    lines += [f"{tt:10.3f} {nc:8d}  {pstats.func_std_string(key)}" for tt, nc, key in top]
    return shares, "\n".join(lines)


def _table(text: io.StringIO, rows: int = 15) -> str:
    lines = [line for line in text.getvalue().splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return "\n".join(lines[start:start + rows + 1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()
    for binary in (BLACKBOX, NGINX):
        if not Path(binary).exists():
            print(f"{binary} is not installed (apt-get install prometheus-blackbox-exporter nginx)")
            return 2
    exporter_bin = Path(sys.executable).parent / "einvoice-exporter"

    with tempfile.TemporaryDirectory(prefix="blackbox-compare-") as tmp:
        root = Path(tmp)
        nginx_port, ours_port, bb_port = free_port(), free_port(), free_port()
        (root / "nginx.conf").write_text(NGINX_CONF.format(root=root, port=nginx_port))
        targets = [f"http://127.0.0.1:{nginx_port}/svc/{i}/actuator/health" for i in range(args.targets)]
        checks = "\n".join(
            f'  - {{name: svc-{i:03d}, item: "05", module: http_2xx, target: "{target}"}}'
            for i, target in enumerate(targets))
        (root / "exporter.yml").write_text(
            "global: {max_concurrency: 64}\n"
            "modules:\n  http_2xx: {kind: http, timeout: 5s, item: \"05\"}\n"
            f"checks:\n{checks}\n")
        (root / "blackbox.yml").write_text(BLACKBOX_CONF)

        procs: list[Proc] = []
        try:
            nginx = Proc([NGINX, "-p", str(root), "-c", str(root / "nginx.conf"), "-g", "daemon off;"],
                         log=root / "nginx.log")
            procs.append(nginx)
            nginx.wait_port(nginx_port)
            ours = Proc([str(exporter_bin), "--config", str(root / "exporter.yml"),
                         "--web.listen-address", f"127.0.0.1:{ours_port}", "--log.level", "warn"],
                        log=root / "ours.log")
            procs.append(ours)
            blackbox = Proc([BLACKBOX, f"--config.file={root / 'blackbox.yml'}",
                             f"--web.listen-address=127.0.0.1:{bb_port}", "--log.level=warn"],
                            log=root / "blackbox.log")
            procs.append(blackbox)
            ours.wait_port(ours_port)
            blackbox.wait_port(bb_port)
            rss_idle = rss_mb(ours.popen.pid)

            paths = [f"/probe?module=http_2xx&target={quote(t, safe='')}" for t in targets]
            runs: list[tuple[ProbeRun, ProbeRun]] = []
            for round_ in range(args.rounds):  # alternate who goes first: the machine is shared
                pair = [("blackbox_exporter 0.23", blackbox.popen.pid, bb_port),
                        ("einvoice-exporter", ours.popen.pid, ours_port)]
                done = {name: probe_run(name, pid, port, paths, args.concurrency)
                        for name, pid, port in (pair if round_ % 2 == 0 else pair[::-1])}
                runs.append((done["blackbox_exporter 0.23"], done["einvoice-exporter"]))

            client = Client(ours_port)
            scrapes = []
            for _ in range(2):
                cpu_before = cpu_seconds(ours.popen.pid)
                started = time.perf_counter()
                status, body = client.get("/metrics", timeout=60)
                wall = time.perf_counter() - started
                cpu = cpu_seconds(ours.popen.pid) - cpu_before
                lines = [line for line in body.splitlines() if line.startswith(b"einvoice_check_up{")]
                up = sum(1 for line in lines if line.rsplit(b" ", 1)[1] in (b"1", b"1.0"))
                scrapes.append((wall, cpu, len(lines), up, status))
            ours_peak = peak_rss_mb(ours.popen.pid)
            ours.stop()
            shares = None
            if not args.no_profile:
                shares, exporter_top = profile_exporter(root, paths, args.concurrency)
                per_probe, table = profile_collector(targets, top=12)
        finally:
            for proc in reversed(procs):
                proc.stop()

    print(f"\n{args.targets} HTTP targets on one local nginx; /probe at concurrency {args.concurrency}, "
          f"{args.rounds} rounds\n")
    print(f"{'round':5} {'exporter':24} {'wall s':>8} {'probes/s':>9} {'CPU s':>7} {'CPU ms/probe':>13} "
          f"{'ok':>5} {'peak RSS MB':>12}")
    for n, pair in enumerate(runs, 1):
        for run in pair:
            print(f"{n:<5} {run.name:24} {run.wall:8.2f} {run.probes / run.wall:9.0f} {run.cpu:7.2f} "
                  f"{run.cpu_per_probe_ms:13.2f} {run.ok:5d} {run.peak_rss:12.1f}")
    cpu_ratios = [us.cpu_per_probe_ms / bb.cpu_per_probe_ms for bb, us in runs if bb.cpu_per_probe_ms]
    wall_ratios = [us.wall / bb.wall for bb, us in runs]
    bb, us = runs[-1]
    print(f"\nratios ours/blackbox (median of rounds): CPU per probe {statistics.median(cpu_ratios):.2f}x "
          f"(aim <= 1.5x; rounds {', '.join(f'{r:.2f}' for r in cpu_ratios)}), "
          f"wall {statistics.median(wall_ratios):.2f}x, peak RSS {us.peak_rss / bb.peak_rss:.2f}x")
    print(f"\n/metrics with {args.targets} checks (einvoice-exporter):")
    for n, (wall, cpu, series, up, _status) in enumerate(scrapes, 1):
        print(f"  scrape {n}: {wall:.2f} s wall (aim < 2 s), {cpu:.2f} CPU s, "
              f"{series} einvoice_check_up series, {up} up")
    print(f"  RSS: {rss_idle:.1f} MB idle after start, peak {ours_peak:.1f} MB (aim < 80 MB)")

    if shares is not None:
        print(f"\nwhere a /probe's CPU goes (einvoice-exporter under cProfile in every thread, "
              f"{args.targets} probes; idle waits and start-up left out):")
        for area, share in shares:
            print(f"  {share:6.1%}  {area}")
        print("top functions of the exporter by own CPU time (idle waits and start-up left out):")
        print(exporter_top)
        print(f"the http collector alone (no server) costs {per_probe * 1000:.2f} ms CPU per probe, "
              f"{per_probe * 1000 / statistics.median(r[1].cpu_per_probe_ms for r in runs):.0%} of a /probe; "
              "top of its profile (CPU):")
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
