"""The real `einvoice-exporter` process: --check-config, start-up, reload, promtool, real targets."""

from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.exporter.conftest import http_get, sample, write
from tests.support.procs import Proc, free_port, require_binary, wait_until

EXPORTER = [sys.executable, "-m", "einvoice_exporter.cli"]


class _Target(BaseHTTPRequestHandler):
    """A Spring Boot style health endpoint: /actuator/health answers {"status":"UP"}, /down 503."""

    def do_GET(self) -> None:
        if self.path == "/actuator/health":
            status, body = 200, json.dumps({"status": "UP"}).encode()
        else:
            status, body = 503, json.dumps({"status": "DOWN"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def target_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Target)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def config(target_port: int, refused_port: int, extra_check: str = "") -> str:
    return f"""
global: {{scrape_timeout_offset: 500ms}}
modules:
  actuator:
    kind: http
    timeout: 3s
    item: "05"
    http: {{valid_status_codes: [200], json_expect: [{{path: status, equals: UP}}]}}
  port: {{kind: tcp, timeout: 2s}}
checks:
  - {{name: intake-health, item: "05", module: actuator, target: "http://127.0.0.1:{target_port}/actuator/health"}}
  - {{name: intake-down, item: "05", module: actuator, target: "http://127.0.0.1:{target_port}/down"}}
  - {{name: lb-vip, item: "02", module: port, target: "127.0.0.1:{target_port}"}}
  - {{name: lb-refused, item: "02", module: port, target: "127.0.0.1:{refused_port}"}}
{extra_check}"""


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXPORTER, *args], capture_output=True, text=True, timeout=60, check=False)


def test_check_config_ok(tmp_path: Path):
    path = write(tmp_path / "exporter.yml", config(8080, 8081))
    result = run_cli("--config", str(path), "--check-config")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "config OK: 2 modules, 4 checks"
    assert lines[-1].startswith("coverage: 2 of 20 items have checks, 0 monitored elsewhere, "
                                "18 without checks")


def test_check_config_invalid_prints_every_problem_and_exits_1(tmp_path: Path):
    text = config(8080, 8081).replace('item: "02", module: port', 'item: "22", module: port')
    path = write(tmp_path / "exporter.yml", text)
    result = run_cli("--config", str(path), "--check-config")
    assert result.returncode == 1
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.startswith(str(path))]
    sentence = "item 22 is not one of the contract's items 01 to 20"
    assert lines == [f"{path}: checks[2] (lb-vip).item: {sentence}",
                     f"{path}: checks[3] (lb-refused).item: {sentence}"]


def test_check_config_also_validates_the_web_config(tmp_path: Path):
    path = write(tmp_path / "exporter.yml", config(8080, 8081))
    web = write(tmp_path / "web.yml", "basic_auth_users: {prometheus: not-a-hash}\n")
    result = run_cli("--config", str(path), "--web.config.file", str(web), "--check-config")
    assert result.returncode == 1
    assert f"{web}: basic_auth_users.prometheus: must be a bcrypt hash" in result.stderr


def test_invalid_config_stops_the_start(tmp_path: Path):
    path = write(tmp_path / "exporter.yml", "modules: {m: {kind: tcp, timeout: forever}}\n")
    port = free_port()
    result = run_cli("--config", str(path), "--web.listen-address", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert f"{path}: modules.m.timeout: 'forever' is not a duration" in result.stderr


@pytest.fixture
def exporter(tmp_path: Path, target_port: int) -> Iterator[tuple[str, Path, Proc, int]]:
    refused = free_port()
    path = write(tmp_path / "exporter.yml", config(target_port, refused))
    port = free_port()
    proc = Proc([*EXPORTER, "--config", str(path), "--web.listen-address", f"127.0.0.1:{port}",
                 "--web.enable-lifecycle"], tmp_path / "exporter.log")
    try:
        proc.wait_port(port)
        yield f"http://127.0.0.1:{port}", path, proc, refused
    finally:
        proc.stop()


def test_real_exporter_probes_real_targets_and_passes_promtool(exporter, target_port: int):
    url, _, proc, _ = exporter
    status, body, _ = http_get(f"{url}/metrics", headers={"X-Prometheus-Scrape-Timeout-Seconds": "10"})
    assert status == 200
    assert sample(body, "einvoice_check_up", check="intake-health") == 1
    assert sample(body, "probe_http_status_code", check="intake-health", item="05") == 200
    assert sample(body, "einvoice_check_up", check="intake-down") == 0
    assert sample(body, "einvoice_check_failures_total", check="intake-down", reason="bad_status") == 1
    assert sample(body, "einvoice_check_up", check="lb-vip", zone="extranet") == 1
    assert sample(body, "einvoice_check_up", check="lb-refused") == 0
    assert sample(body, "einvoice_check_failures_total", check="lb-refused", reason="refused") == 1

    promtool = require_binary("promtool")
    checked = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True,
                             timeout=60, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "" and checked.stderr.strip() == "", checked.stdout + checked.stderr

    status, probe, _ = http_get(
        f"{url}/probe?module=actuator&target=http://127.0.0.1:{target_port}/actuator/health")
    assert status == 200
    assert "\nprobe_success 1.0\n" in probe
    assert sample(probe, "einvoice_check_up", check="actuator", item="05") == 1
    assert proc.alive()


def _reload_ok(url: str) -> float | None:
    return sample(http_get(f"{url}/metrics")[1], "einvoice_exporter_config_last_reload_successful")


def test_sighup_and_post_reload_with_a_bad_file_keep_the_old_config(exporter, target_port: int):
    url, path, proc, refused = exporter
    good = path.read_text()
    write(path, good.replace("kind: tcp", "kind: tcpp"))
    proc.popen.send_signal(signal.SIGHUP)
    wait_until(lambda: _reload_ok(url) == 0, timeout=20, what="the failed reload to show")
    body = http_get(f"{url}/metrics")[1]
    assert sample(body, "einvoice_check_up", check="lb-vip") == 1, "the old config keeps running"
    assert "reloading the configuration failed" in proc.log_text()
    assert "kind 'tcpp' is not known" in proc.log_text()

    new_check = f'  - {{name: vip-2, item: "02", module: port, target: "127.0.0.1:{target_port}"}}\n'
    write(path, config(target_port, refused, new_check))
    proc.popen.send_signal(signal.SIGHUP)
    wait_until(lambda: _reload_ok(url) == 1, timeout=20, what="the good reload to show")
    assert sample(http_get(f"{url}/metrics")[1], "einvoice_check_up", check="vip-2") == 1

    write(path, "modules: [\n")
    status, text, _ = http_get(f"{url}/-/reload", method="POST")
    assert status == 500
    assert f"{path}:2:1: YAML syntax error" in text
    assert _reload_ok(url) == 0
    write(path, good)
    assert http_get(f"{url}/-/reload", method="POST")[0] == 200
    body = http_get(f"{url}/metrics")[1]
    assert sample(body, "einvoice_exporter_config_last_reload_successful") == 1
    assert sample(body, "einvoice_check_up", check="vip-2") is None
    assert sample(body, "einvoice_exporter_checks_configured") == 4


def test_a_client_resetting_its_connection_is_one_log_line_not_a_traceback(exporter):
    url, _, proc, _ = exporter
    port = int(url.rsplit(":", 1)[1])
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x")  # the request is never finished
            # SO_LINGER 0: close sends a RST, so the server's read fails with ECONNRESET
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    wait_until(lambda: proc.log_text().count("ended before its answer was complete") >= 3, timeout=30,
               what="the resets to be logged")
    status, _, _ = http_get(f"{url}/-/healthy")
    assert status == 200
    log = proc.log_text()
    assert "Traceback" not in log and "Exception occurred during processing" not in log, log
    resets = [line for line in log.splitlines() if "ended before its answer was complete" in line]
    assert all(line.startswith("ts=") and "level=info logger=einvoice_exporter.server" in line
               and "ConnectionResetError" in line for line in resets), resets
