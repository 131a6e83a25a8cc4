"""Through the real exporter CLI: one kept connection per Redis target across /metrics and /probe
scrapes (redis-server's own counters say so), a restarted Redis reconnected within one scrape, the
kept connection closed on reload and on shutdown. (The cluster's kept connections through the CLI:
tests/redis/test_cluster.py.)"""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

from tests.exporter.conftest import sample
from tests.redis.conftest import StartRedis
from tests.support.procs import Proc, free_port, wait_until


def get(url: str, method: str = "GET") -> str:
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        return response.read().decode()


def start_exporter(tmp_path: Path, text: str) -> tuple[Proc, str]:
    config = tmp_path / "exporter.yml"
    config.write_text(text, encoding="utf-8")
    port = free_port()
    exe = Path(sys.executable).with_name("einvoice-exporter")
    proc = Proc([str(exe), "--config", str(config), "--web.listen-address", f"127.0.0.1:{port}",
                 "--web.enable-lifecycle"], tmp_path / "exporter.log")
    return proc.wait_port(port), f"http://127.0.0.1:{port}"


def test_one_kept_connection_across_scrapes_restart_reload_and_shutdown(start_redis: StartRedis,
                                                                       tmp_path: Path) -> None:
    server = start_redis("--requirepass", "reuse-pw")
    proc, base = start_exporter(tmp_path, (
        "modules:\n"
        "  log_redis: {kind: redis, timeout: 5s, item: '06', redis: {password: reuse-pw}}\n"
        "checks:\n"
        f"  - {{name: log-redis, item: '06', module: log_redis, target: '{server.address}'}}\n"))
    admin = server.client(password="reuse-pw")
    probe = f"{base}/probe?module=log_redis&target={server.address}"
    try:
        assert sample(get(f"{base}/metrics"), "redis_up", check="log-redis") == 1
        accepted = admin.info("stats")["total_connections_received"]
        clients = admin.info("clients")["connected_clients"]
        assert clients == 2  # the admin client and the exporter's kept connection
        for _ in range(5):
            assert sample(get(f"{base}/metrics"), "redis_up", check="log-redis") == 1
            assert sample(get(probe), "redis_up") == 1
        assert admin.info("stats")["total_connections_received"] == accepted, "a scrape opened a connection"
        assert admin.info("clients")["connected_clients"] == clients

        server.proc.stop()
        server.restart()  # same port: the kept connection is dead now
        text = get(f"{base}/metrics")
        assert sample(text, "redis_up", check="log-redis") == 1, "the restarted Redis was not reconnected"
        assert sample(text, "einvoice_check_up", check="log-redis") == 1
        assert (sample(text, "redis_uptime_in_seconds", check="log-redis") or 0) < 60
        admin = server.client(password="reuse-pw")
        accepted = admin.info("stats")["total_connections_received"]
        for _ in range(3):
            get(f"{base}/metrics")
        assert admin.info("stats")["total_connections_received"] == accepted

        get(f"{base}/-/reload", method="POST")  # the old checks close their connections
        wait_until(lambda: admin.info("clients")["connected_clients"] == 1, timeout=30,
                   what="the kept connection closed by the reload")
        get(f"{base}/metrics")
        assert admin.info("clients")["connected_clients"] == 2
    finally:
        proc.stop()
    wait_until(lambda: admin.info("clients")["connected_clients"] == 1, timeout=30,
               what="the kept connection closed at shutdown")
