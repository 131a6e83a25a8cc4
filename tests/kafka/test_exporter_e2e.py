"""Items 12 and 13 through the real exporter CLI: Elasticsearch (fake 7.17 with basic auth) and Kafka
(tansu), healthy and unreachable, in one scrape that stays a 200 with a bounded reason per check."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.es.conftest import FakeElasticsearch, serve_plain
from tests.support.procs import Proc, free_port

from .conftest import Broker

pytestmark = pytest.mark.xdist_group("kafka")


def value(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


def test_scrape_through_the_exporter(broker: Broker, tmp_path: Path) -> None:
    topic = broker.topic("e2e-invoices")
    broker.produce(topic, 0, 3)
    broker.commit("e2e-push", {(topic, 0): 1})
    fake = FakeElasticsearch(version="7.17", username="monitor", password="e2e-es-secret")
    dead_es, dead_kafka = f"http://127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    for es in serve_plain(fake):
        config = tmp_path / "exporter.yml"
        config.write_text(
            "modules:\n"
            "  es: {kind: elasticsearch, timeout: 3s, elasticsearch:"
            " {username: monitor, password: '${E2E_ES_PW}', max_unassigned_shards: 5}}\n"
            "  lag: {kind: kafka, timeout: 5s, kafka: {group_filter: '^e2e-', max_lag: 1}}\n"
            "checks:\n"
            f"  - {{name: es-main, item: '12', module: es, target: '{es.url}'}}\n"
            f"  - {{name: es-down, item: '12', module: es, target: '{dead_es}'}}\n"
            f"  - {{name: kafka-push, item: '13', module: lag, target: '{broker.bootstrap}'}}\n"
            f"  - {{name: kafka-down, item: '13', module: lag, target: '{dead_kafka}'}}\n",
            encoding="utf-8")
        port = free_port()
        exe = Path(sys.executable).with_name("einvoice-exporter")
        proc = Proc([str(exe), "--config", str(config), "--web.listen-address", f"127.0.0.1:{port}"],
                    tmp_path / "exporter.log", env={"E2E_ES_PW": "e2e-es-secret", "PATH": "/usr/bin:/bin"})
        try:
            proc.wait_port(port)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
                assert response.status == 200
                text = response.read().decode()
        finally:
            proc.stop()
        log = proc.log.read_text(errors="replace")

    assert value(text, "einvoice_check_up", check="es-main", item="12", zone="intranet") == 1
    assert value(text, "elasticsearch_cluster_health_status", check="es-main", color="yellow",
                 target=es.url) == 1
    assert value(text, "einvoice_check_up", check="es-down") == 0
    assert value(text, "einvoice_check_failures_total", check="es-down", reason="refused") == 1

    assert value(text, "einvoice_check_up", check="kafka-push", item="13") == 0
    assert value(text, "einvoice_check_failures_total", check="kafka-push", reason="threshold") == 1
    assert value(text, "kafka_consumergroup_lag", check="kafka-push", consumergroup="e2e-push",
                 topic=topic, partition="0") == 2
    assert value(text, "einvoice_check_failures_total", check="kafka-down", reason="refused") == 1
    assert "e2e-es-secret" not in text and "e2e-es-secret" not in log
