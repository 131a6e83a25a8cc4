"""Memory of huge response bodies, side by side: our exporter (the real CLI) and Debian's
prometheus-blackbox-exporter probing the same nginx that serves a sparse file of zeros.

(a) 200 scrapes (4 at a time, as an HA pair of Prometheus servers and a few /probe users would)
    of a target whose body is far over the default 4 MiB body_size_limit: ours through /metrics
    (one huge-body check and four small ones), blackbox through /probe. Resident memory (VmRSS)
    after the scrapes and its peak (VmHWM). Aim (issue 10): ours < 80 MB after 200 scrapes.
(b) One probe of a 1 GiB body with body_size_limit raised to 2 GiB: peak resident memory and wall
    time of each exporter (the body must be streamed, never held).

    .venv/bin/python benchmarks/body_memory.py [--scrapes 200] [--huge-mib 1024]
    PYTHONPATH=/work/main/exporters:/work/main .venv/bin/python benchmarks/body_memory.py  # a baseline

Prints both exporters' numbers and ours / blackbox ratios. Loopback only; every loop is bounded;
all processes started here are stopped here. Not a unit test: it takes a minute and measures.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.procs import Proc, free_port

BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
MIB = 1024 * 1024

NGINX_CONF = """
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=256;
        root {root}/www;
        location /small {{ default_type text/plain; return 200 'ok'; }}
        # the same file without Content-Length (sub_filter makes nginx send it chunked), so an
        # exporter has to read up to its limit to know the body is too long
        location /chunked/ {{ alias {root}/www/; sub_filter 'never' 'there'; sub_filter_types *; }}
    }}
}}
"""

BLACKBOX_CONF = """
modules:
  default_limit:
    prober: http
    timeout: 30s
    http: {{preferred_ip_protocol: ip4, ip_protocol_fallback: false, body_size_limit: 4MiB}}
  raised_limit:
    prober: http
    timeout: 120s
    http: {{preferred_ip_protocol: ip4, ip_protocol_fallback: false, body_size_limit: 2GiB}}
"""

OURS_CONF = """
global: {{max_concurrency: 64}}
modules:
  default_limit: {{kind: http, timeout: 30s, item: "05"}}
  raised_limit: {{kind: http, timeout: 120s, item: "05", http: {{body_size_limit: 2147483648}}}}
  raised_limit_regex:
    kind: http
    timeout: 120s
    item: "05"
    http: {{body_size_limit: 2147483648, fail_if_body_not_matches: ["never-there"]}}
checks:
  - {{name: huge, item: "05", module: default_limit, target: "http://127.0.0.1:{port}/chunked/huge.bin"}}
{small}
"""


def status_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def get(port: int, path: str, timeout: float = 180) -> int:
    return fetch(port, path, timeout)[0]


def fetch(port: int, path: str, timeout: float = 180) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def scrapes(port: int, path: str, count: int, concurrency: int) -> float:
    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        statuses = list(pool.map(lambda _: get(port, path), range(count)))
    bad = [s for s in statuses if s != 200]
    if bad:
        raise SystemExit(f"{len(bad)} scrapes of {path} failed: {bad[:5]}")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--huge-mib", type=int, default=1024)
    args = parser.parse_args()
    if not os.access(BLACKBOX, os.X_OK):
        raise SystemExit(f"{BLACKBOX} is missing: apt-get install prometheus-blackbox-exporter")

    with tempfile.TemporaryDirectory(prefix="body-memory-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # nginx's worker runs as another user
        (root / "www").mkdir()
        with (root / "www" / "huge.bin").open("wb") as sparse:
            sparse.truncate(args.huge_mib * MIB)  # zeros on demand, nothing written to disk
        (root / "www" / "huge.bin").chmod(0o644)
        nginx_port, ours_port, bb_port = free_port(), free_port(), free_port()
        (root / "nginx.conf").write_text(NGINX_CONF.format(root=root, port=nginx_port))
        (root / "blackbox.yml").write_text(BLACKBOX_CONF.format())
        small = "\n".join(f'  - {{name: small{i}, item: "05", module: default_limit, '
                          f'target: "http://127.0.0.1:{nginx_port}/small?{i}"}}' for i in range(4))
        (root / "exporter.yml").write_text(OURS_CONF.format(port=nginx_port, small=small))
        procs: list[Proc] = []
        try:
            procs.append(Proc([NGINX, "-c", str(root / "nginx.conf"), "-g", "daemon off;"],
                              root / "nginx.log").wait_port(nginx_port))
            ours = Proc([sys.executable, "-m", "einvoice_exporter.cli",
                         "--config", str(root / "exporter.yml"),
                         "--web.listen-address", f"127.0.0.1:{ours_port}", "--log.level", "warn"],
                        root / "ours.log").wait_port(ours_port)
            procs.append(ours)
            blackbox = Proc([BLACKBOX, f"--config.file={root / 'blackbox.yml'}",
                             f"--web.listen-address=127.0.0.1:{bb_port}", "--log.level=warn"],
                            root / "blackbox.log").wait_port(bb_port)
            procs.append(blackbox)
            pid_ours, pid_bb = ours.popen.pid, blackbox.popen.pid
            huge = quote(f"http://127.0.0.1:{nginx_port}/huge.bin", safe="")
            chunked = quote(f"http://127.0.0.1:{nginx_port}/chunked/huge.bin", safe="")

            print(f"(a) {args.scrapes} scrapes, {args.concurrency} at a time, of a {args.huge_mib} MiB body "
                  "over the 4 MiB default limit")
            start_ours, start_bb = status_mb(pid_ours, "VmRSS"), status_mb(pid_bb, "VmRSS")
            wall_ours = scrapes(ours_port, "/metrics", args.scrapes, args.concurrency)
            wall_bb = scrapes(bb_port, f"/probe?module=default_limit&target={chunked}", args.scrapes,
                              args.concurrency)
            rows = [
                ("RSS at start (MB)", start_ours, start_bb),
                (f"RSS after {args.scrapes} scrapes (MB)", status_mb(pid_ours, "VmRSS"),
                 status_mb(pid_bb, "VmRSS")),
                ("peak RSS (MB)", status_mb(pid_ours, "VmHWM"), status_mb(pid_bb, "VmHWM")),
                ("wall time (s)", wall_ours, wall_bb),
            ]
            after_a = rows[1][1]
            _, text = fetch(ours_port, "/metrics")
            print("    ours, check huge: " + ", ".join(
                line.split("{")[0] + " " + line.rsplit(" ", 1)[1] for line in text.splitlines()
                if 'check="huge"' in line and line.startswith(("probe_http_status_code",
                                                               "probe_http_uncompressed_body_length",
                                                               "probe_success"))))
            print(f"    {'':34} {'ours':>10} {'blackbox':>10} {'ratio':>7}")
            for label, a, b in rows:
                print(f"    {label:34} {a:10.1f} {b:10.1f} {a / b:7.2f}")

            wall = scrapes(ours_port, f"/probe?module=default_limit&target={chunked}", args.scrapes,
                           args.concurrency * 4)
            probe_after = status_mb(pid_ours, "VmRSS")
            print(f"    ours, then {args.scrapes} /probe of it, {args.concurrency * 4} at a time: "
                  f"RSS {probe_after:.1f} MB after, peak {status_mb(pid_ours, 'VmHWM'):.1f} MB, {wall:.1f} s")
            after_a = max(after_a, probe_after)
            print(f"(b) one probe of the {args.huge_mib} MiB body with body_size_limit 2 GiB")
            before_ours, before_bb = status_mb(pid_ours, "VmHWM"), status_mb(pid_bb, "VmHWM")
            started = time.monotonic()
            _, text_ours = fetch(ours_port, f"/probe?module=raised_limit&target={huge}")
            wall_ours = time.monotonic() - started
            started = time.monotonic()
            _, text_bb = fetch(bb_port, f"/probe?module=raised_limit&target={huge}")
            wall_bb = time.monotonic() - started
            for name, text in (("ours", text_ours), ("blackbox", text_bb)):
                print(f"    {name}: " + ", ".join(line for line in text.splitlines() if line.startswith(
                    ("probe_success", "probe_http_uncompressed_body_length", "probe_failed_due_to_regex"))))
            peak_ours, peak_bb = status_mb(pid_ours, "VmHWM"), status_mb(pid_bb, "VmHWM")
            print(f"    {'':34} {'ours':>10} {'blackbox':>10} {'ratio':>7}")
            print(f"    {'peak RSS (MB)':34} {peak_ours:10.1f} {peak_bb:10.1f} {peak_ours / peak_bb:7.2f}")
            grew_ours, grew_bb = peak_ours - before_ours, peak_bb - before_bb
            print(f"    {'peak RSS grew by (MB)':34} {grew_ours:10.1f} {grew_bb:10.1f}")
            print(f"    {'wall time (s)':34} {wall_ours:10.1f} {wall_bb:10.1f} {wall_ours / wall_bb:7.2f}")
            print("(c) ours only: the same probe with a body regex that never matches (blackbox keeps the "
                  "whole body for regexes: 3.4 GB peak for 1 GiB when tried, too much for a shared machine)")
            before = status_mb(pid_ours, "VmHWM")
            started = time.monotonic()
            _, text = fetch(ours_port, f"/probe?module=raised_limit_regex&target={huge}")
            peak = status_mb(pid_ours, "VmHWM")
            facts = ", ".join(line for line in text.splitlines() if line.startswith(
                ("probe_http_uncompressed_body_length", "probe_failed_due_to_regex")))
            print(f"    peak RSS {peak:.1f} MB (grew by {peak - before:.1f}), "
                  f"{time.monotonic() - started:.1f} s; {facts}")
            verdict = "met" if after_a < 80 else "NOT met"
            print(f"aim: RSS < 80 MB after {args.scrapes} scrapes: {verdict} ({after_a:.1f} MB)")
        finally:
            for proc in reversed(procs):
                proc.stop()


if __name__ == "__main__":
    main()
