"""The redis kinds through the real exporter CLI: one scrape with a healthy, a wrong-password and an
unreachable target stays a 200 with a bounded reason per check, and the password never shows."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.redis.conftest import StartRedis
from tests.support.procs import Proc, free_port


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text)
            for s in family.samples]


def value(text: str, name: str, **labels: str) -> float | None:
    for sample_name, sample_labels, sample_value in samples(text):
        if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items()):
            return sample_value
    return None


def test_scrape_through_the_exporter(start_redis: StartRedis, tmp_path: Path) -> None:
    server = start_redis("--requirepass", "e2e-secret-pw")
    dead = f"127.0.0.1:{free_port()}"
    config = tmp_path / "exporter.yml"
    config.write_text(
        "modules:\n"
        "  log_redis: {kind: redis, timeout: 3s, item: '06', redis: {password: '${E2E_REDIS_PW}'}}\n"
        "  wrong_pw: {kind: redis, timeout: 3s, redis: {password: not-the-password}}\n"
        "checks:\n"
        f"  - {{name: log-redis, item: '06', module: log_redis, target: '{server.address}'}}\n"
        f"  - {{name: log-redis-badpw, item: '06', module: wrong_pw, target: '{server.address}'}}\n"
        f"  - {{name: log-redis-down, item: '12', module: log_redis, target: '{dead}'}}\n",
        encoding="utf-8")
    port = free_port()
    exe = Path(sys.executable).with_name("einvoice-exporter")
    env = {"E2E_REDIS_PW": "e2e-secret-pw", "PATH": "/usr/bin:/bin"}
    proc = Proc([str(exe), "--config", str(config), "--web.listen-address", f"127.0.0.1:{port}"],
                tmp_path / "exporter.log", env=env)
    try:
        proc.wait_port(port)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
            assert response.status == 200
            text = response.read().decode()
        probe_url = f"http://127.0.0.1:{port}/probe?module=log_redis&target={server.address}"
        with urllib.request.urlopen(probe_url, timeout=30) as response:
            probe = response.read().decode()
    finally:
        proc.stop()

    assert value(text, "einvoice_check_up", check="log-redis", item="06", zone="extranet") == 1
    assert value(text, "redis_up", check="log-redis", target=server.address) == 1
    assert value(text, "redis_memory_used_bytes", check="log-redis") is not None
    assert value(text, "einvoice_check_up", check="log-redis-badpw") == 0
    assert value(text, "einvoice_check_failures_total", check="log-redis-badpw", reason="auth") == 1
    assert value(text, "einvoice_check_up", check="log-redis-down") == 0
    assert value(text, "einvoice_check_failures_total", check="log-redis-down", reason="refused") == 1
    assert value(text, "redis_up", check="log-redis-down") == 0
    assert value(probe, "redis_up") == 1
    log = (tmp_path / "exporter.log").read_text(errors="replace")
    assert "e2e-secret-pw" not in text + probe + log
    assert "not-the-password" not in text + probe + log
