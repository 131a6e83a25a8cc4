"""Community dashboards keep their data on our exporter: every panel of redis_exporter's grafana.com
dashboard 763 and of the redis-mixin overview (expressions in fixtures/, source named there; a panel
that is empty with redis_exporter too says so), evaluated in a real Prometheus that scrapes our
exporter through the documented `einvoice-probe` job (one `instance` per check) while two real Redis
servers and a replica are busy, must return data for each server chosen by its `instance`, and the
`instance` variable must list every server (no mixing: issue 15's "Clients 5 = 4 + 1")."""

from __future__ import annotations

import json
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from einvoice_exporter.config import load_config
from einvoice_exporter.coverage import file_sd

from tests.community.test_instance_per_target import documented_probe_job, query, ready
from tests.es.conftest import FakeElasticsearch
from tests.redis.conftest import StartRedis
from tests.support.procs import Proc, free_port, require_binary, wait_until

FIXTURES = Path(__file__).parent / "fixtures"


def panels(name: str) -> list[dict[str, Any]]:
    dashboard = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    assert dashboard["source"].startswith("https://github.com/")
    result: list[dict[str, Any]] = dashboard["panels"]
    return result


def label_values(base: str, metric: str, label: str) -> set[str]:
    url = f"{base}/api/v1/series?" + urllib.parse.urlencode({"match[]": metric})
    with urllib.request.urlopen(url, timeout=10) as answer:
        return {s[label] for s in json.load(answer)["data"] if label in s}


def test_redis_dashboard_763_panels_have_data_per_instance(start_redis: StartRedis, tmp_path: Path) -> None:
    servers = [start_redis("--maxmemory", "64mb"), start_redis("--maxmemory", "32mb")]
    servers.append(start_redis("--maxmemory", "32mb", "--replicaof", "127.0.0.1", str(servers[0].port)))
    config_path = tmp_path / "exporter.yml"
    config_path.write_text(
        "modules:\n"
        "  redis: {kind: redis, timeout: 5s, item: '12'}\n"
        "checks:\n" + "".join(
            f"  - {{name: redis-{i}, item: '12', module: redis, target: '{s.address}'}}\n"
            for i, s in enumerate(servers)), encoding="utf-8")
    exporter_port, port = free_port(), free_port()
    exe = Path(sys.executable).with_name("einvoice-exporter")
    exporter = Proc([str(exe), "--config", str(config_path), "--web.listen-address",
                     f"127.0.0.1:{exporter_port}", "--log.level", "warn"], tmp_path / "exporter.log")
    sd = tmp_path / "checks.json"
    sd.write_text(file_sd(load_config(config_path), f"127.0.0.1:{exporter_port}"), encoding="utf-8")
    job = documented_probe_job()
    job["file_sd_configs"] = [{"files": [str(sd)]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"}, "scrape_configs": [job]}),
        encoding="utf-8")
    prometheus = Proc([require_binary("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
                       f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                      tmp_path / "prometheus.log")
    base = f"http://127.0.0.1:{port}"
    try:
        exporter.wait_port(exporter_port)
        wait_until(lambda: ready(base), timeout=60, what="prometheus ready")
        for server in servers[:2]:
            client = server.client()
            client.set("invoice:1", "x", ex=600)
            client.set("invoice:2", "y")
            client.get("invoice:1")
            client.get("missing")

        def traffic() -> None:
            for server in servers:
                server.client().get("invoice:1")

        wait_until(lambda: label_values(base, "redis_up", "instance") == {s.address for s in servers},
                   timeout=60, what="the instance variable lists both servers")

        def empty_panels(instance: str, dashboard: str = "redis_exporter_763.json") -> list[str]:
            traffic()
            missing = []
            for panel in panels(dashboard):
                if "no_data_with_reference" in panel:
                    continue
                exprs = [e.replace("$instance", instance).replace("$__interval", "1m")
                         .replace("$__rate_interval", "1m") for e in panel["exprs"]]
                if not any(query(base, expr) for expr in exprs):
                    missing.append(panel["title"])
            return missing

        def all_panels(address: str) -> bool:
            return not empty_panels(address)

        for server in servers:
            wait_until(lambda address=server.address: all_panels(address),  # type: ignore[misc]
                       timeout=90, interval=1.0,
                       what=f"every panel of dashboard 763 has data for {server.address}")
        every = "|".join(s.address for s in servers)  # the mixin's multi-valued $instance
        wait_until(lambda: not empty_panels(every, "redis_mixin_overview.json"), timeout=90, interval=1.0,
                   what="every panel of the redis-mixin overview that has data with redis_exporter")
        # One server per instance: the Clients panel of one instance is that server's own count.
        clients = [float(query(base, f'sum(redis_connected_clients{{instance=~"{s.address}"}})')[0]
                         ["value"][1]) for s in servers]
        assert all(count >= 1 for count in clients)
        memory = query(base, f'sum(100 * (redis_memory_used_bytes{{instance=~"{servers[1].address}"}} / '
                             f'redis_memory_max_bytes{{instance=~"{servers[1].address}"}}))')
        assert 0 < float(memory[0]["value"][1]) < 100  # finite: not two servers mixed (+Inf)
    finally:
        prometheus.stop()
        exporter.stop()


def test_elasticsearch_exporter_example_dashboard_panels_have_data(es_server: FakeElasticsearch,
                                                                   tmp_path: Path) -> None:
    """The same through the documented `einvoice-probe` job, against the Elasticsearch that answers
    with the documented 7.17 responses (tests/es/fixtures)."""
    config_path = tmp_path / "exporter.yml"
    config_path.write_text(
        "modules:\n"
        "  es: {kind: elasticsearch, timeout: 5s, item: '12'}\n"
        "checks:\n"
        f"  - {{name: es, item: '12', module: es, target: '{es_server.url}'}}\n", encoding="utf-8")
    exporter_port, port = free_port(), free_port()
    exe = Path(sys.executable).with_name("einvoice-exporter")
    exporter = Proc([str(exe), "--config", str(config_path), "--web.listen-address",
                     f"127.0.0.1:{exporter_port}", "--log.level", "warn"], tmp_path / "exporter.log")
    sd = tmp_path / "checks.json"
    sd.write_text(file_sd(load_config(config_path), f"127.0.0.1:{exporter_port}"), encoding="utf-8")
    job = documented_probe_job()
    job["file_sd_configs"] = [{"files": [str(sd)]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"}, "scrape_configs": [job]}),
        encoding="utf-8")
    prometheus = Proc([require_binary("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
                       f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                      tmp_path / "prometheus.log")
    base = f"http://127.0.0.1:{port}"
    try:
        exporter.wait_port(exporter_port)
        wait_until(lambda: ready(base), timeout=60, what="prometheus ready")
        wait_until(lambda: label_values(base, "elasticsearch_cluster_health_status", "cluster")
                   == {"testcluster"}, timeout=60, what="the cluster variable lists the cluster")

        def empty_panels() -> list[str]:
            missing = []
            for panel in panels("elasticsearch_exporter_example.json"):
                if "no_data_with_reference" in panel:
                    continue
                exprs = [e.replace("$cluster", "testcluster") for e in panel["exprs"]]
                if not any(query(base, expr) for expr in exprs):
                    missing.append(panel["title"])
            return missing

        wait_until(lambda: not empty_panels(), timeout=90, interval=1.0,
                   what="every panel of elasticsearch_exporter's example dashboard has data")
    finally:
        prometheus.stop()
        exporter.stop()
