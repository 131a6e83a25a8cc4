"""The `nginx` kind against a real nginx (Debian's package) on free ports, writing real access and
error logs under load from a local client, side by side with Debian's prometheus-nginx-exporter
(nginx-prometheus-exporter 0.11) on the same stub_status."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from einvoice_exporter.collectors import nginx
from einvoice_exporter.exposition import encode
from einvoice_exporter.outcome import Outcome, Reason, merge_families
from prometheus_client.parser import text_string_to_metric_families

from tests.support.procs import Proc, free_port, require_binary, wait_until

LOG_FORMAT = ('$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
              '"$http_referer" "$http_user_agent" rt=$request_time urt="$upstream_response_time"')
CONF = """
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 256; }}
http {{
    log_format timed '{log_format}';
    access_log {root}/access.log timed;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    upstream dead {{
        server 127.0.0.1:{dead_port} max_fails=1 fail_timeout=60s;
        server 127.0.0.1:{dead_port2} max_fails=1 fail_timeout=60s;
    }}
    server {{
        listen 127.0.0.1:{port};
        location = /stub_status {{ stub_status; access_log off; }}
        location = /slow {{ proxy_pass http://127.0.0.1:{silent_port}; proxy_read_timeout 200ms; }}
        location = /dead {{ proxy_pass http://dead; }}
        location = /missing {{ return 404; }}
        location / {{ return 200 'ok'; }}
    }}
}}
"""


@dataclass(frozen=True)
class Nginx:
    root: Path
    port: int
    binary: str

    @property
    def stub(self) -> str:
        return f"http://127.0.0.1:{self.port}/stub_status"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Nginx]:
    binary = require_binary("nginx", "/usr/sbin/nginx")
    port, dead_port, dead_port2 = free_port(), free_port(), free_port()
    silent = socket.socket()  # connections wait in its backlog, unanswered: upstream timed out
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    (tmp_path / "nginx.conf").write_text(CONF.format(
        root=tmp_path, port=port, dead_port=dead_port, dead_port2=dead_port2,
        silent_port=silent.getsockname()[1], log_format=LOG_FORMAT))
    proc = Proc([binary, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"],
                log=tmp_path / "stdout.log")
    try:
        proc.wait_port(port)
        yield Nginx(tmp_path, port, binary)
    finally:
        proc.stop()
        silent.close()


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def collector(server: Nginx, **extra: object) -> nginx.Collector:
    return nginx.Collector(nginx.Settings.model_validate({
        "access_log": str(server.root / "access.log"), "log_format": LOG_FORMAT,
        "error_log": str(server.root / "error.log"), "state_file": str(server.root / "state.json"),
        "buckets": [0.1, 0.5, 1.0], **extra}))


def exposition(outcome: Outcome) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples as the exporter exposes them (text format), by name and sorted labels."""
    text = encode(merge_families([({}, outcome.metrics)])).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def class_count(outcome: Outcome, klass: str) -> float:
    return sum(v for name, _t, _d, samples in outcome.metrics.items()
               if name == "einvoice_log_matches_total" for labels, v in samples if labels["class"] == klass)


def test_access_and_error_logs_under_load(server: Nginx):
    check = collector(server, config_test=True, nginx_binary=server.binary,
                      nginx_conf=str(server.root / "nginx.conf"))
    first = check.run(server.stub, 10)
    assert first.success, first.failure
    paths = ["/"] * 300 + ["/missing"] * 40 + ["/dead"] * 12 + ["/slow"] * 4
    with ThreadPoolExecutor(8) as pool:
        seen = Counter(pool.map(lambda p: get(f"http://127.0.0.1:{server.port}{p}"), paths))
    assert seen[502] == 12 and seen[504] == 4
    log = server.root / "access.log"
    wait_until(lambda: log.read_bytes().count(b"\n") >= len(paths), what="nginx wrote the access log")
    outcome = check.run(server.stub, 10)
    assert outcome.success, outcome.failure
    for status, count in seen.items():
        assert outcome.metrics.value("nginx_http_response_count_total", {"status": str(status)}) == count
    assert outcome.metrics.value("nginx_parse_errors_total") == 0
    exposed = exposition(outcome)
    assert exposed[("nginx_http_response_time_seconds_bucket", (("le", "+Inf"),))] == len(paths)
    slow = exposed[("nginx_http_upstream_time_seconds_count", ())]
    assert slow == 12 + 4  # every proxied request, none of the local ones ($upstream_response_time "-")
    assert class_count(outcome, "upstream_timed_out") == 4
    assert class_count(outcome, "connect_failed") >= 1
    assert class_count(outcome, "no_live_upstreams") >= 1
    assert outcome.metrics.value("einvoice_nginx_config_ok") == 1
    assert outcome.metrics.value("nginx_up") == 1
    restarted = collector(server)  # positions and counters from the state file: nothing twice
    again = restarted.run(server.stub, 10)
    assert again.metrics.value("nginx_http_response_count_total", {"status": "200"}) == seen[200]
    assert class_count(again, "upstream_timed_out") == 4


def test_config_test_failure_and_stub_status_down(server: Nginx, tmp_path: Path):
    broken = tmp_path / "broken.conf"
    broken.write_text("events {}\nhttp { server { listen 127.0.0.1:1; bogus_directive on; } }\n")
    check = nginx.Collector(nginx.Settings(config_test=True, nginx_binary=server.binary, nginx_conf=broken))
    outcome = check.run(server.stub, 10)
    assert outcome.metrics.value("einvoice_nginx_config_ok") == 0
    down = check.run(f"http://127.0.0.1:{free_port()}/stub_status", 5)
    assert down.metrics.value("nginx_up") == 0
    assert down.failure is not None and down.failure.reason == Reason.REFUSED
    not_stub = check.run(f"http://127.0.0.1:{server.port}/", 5)
    assert not_stub.failure is not None and not_stub.failure.reason == Reason.BAD_CONTENT


def parse(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line.startswith("nginx_") and "{" not in line:
            name, value = line.split()
            values[name] = float(value)
    return values


def test_same_names_and_values_as_nginx_prometheus_exporter(server: Nginx):
    binary = require_binary("prometheus-nginx-exporter", "/usr/bin/prometheus-nginx-exporter")
    port = free_port()
    exporter = Proc([binary, "-nginx.scrape-uri", server.stub, "-web.listen-address", f"127.0.0.1:{port}"],
                    log=server.root / "exporter.log").wait_port(port)
    try:
        def theirs() -> dict[str, float]:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
                return parse(response.read().decode())

        for _ in range(20):
            get(f"http://127.0.0.1:{server.port}/")
        before = theirs()
        ours_outcome = nginx.Collector(nginx.Settings()).run(server.stub, 10)
        after = theirs()
        ours = {name: value for name, _t, _d, samples in ours_outcome.metrics.items()
                for labels, value in samples if name.startswith("nginx_") and not labels}
        assert set(ours) == set(before)
        # each scrape is one request on stub_status: theirs, ours, theirs
        assert ours["nginx_http_requests_total"] == before["nginx_http_requests_total"] + 1
        assert after["nginx_http_requests_total"] == ours["nginx_http_requests_total"] + 1
        for name in ("nginx_connections_accepted", "nginx_connections_handled"):
            assert before[name] <= ours[name] <= after[name]
        for name in ("nginx_connections_active", "nginx_connections_writing", "nginx_connections_reading",
                     "nginx_connections_waiting"):
            assert abs(ours[name] - before[name]) <= 2
        assert ours["nginx_up"] == before["nginx_up"] == 1
    finally:
        exporter.stop()
