"""The elasticsearch collector against a local server answering as Elasticsearch 6.8, 7.17 and 8.x."""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Iterator

import pytest
from einvoice_exporter.collectors import elasticsearch as es
from einvoice_exporter.outcome import Outcome, Reason
from einvoice_exporter.schema import ExporterConfig
from pydantic import ValidationError

from tests.support.certs import TestCA
from tests.support.procs import free_port

from .conftest import VERSIONS, FakeElasticsearch, load, serve_tls

HEALTH = "/_cluster/health"
NODES = "/_nodes/stats/jvm,fs,breaker,indices,thread_pool,transport,os,process,http"
PENDING = "/_cluster/pending_tasks"


def run(fake_or_target: FakeElasticsearch | str, timeout: float = 5, **settings: object) -> Outcome:
    target = fake_or_target if isinstance(fake_or_target, str) else fake_or_target.url
    check = es.build(es.Settings.model_validate(settings))
    try:
        return check.run(target, timeout)
    finally:
        check.close()


def with_health(fake: FakeElasticsearch, **fields: object) -> None:
    fixture = fake.body(HEALTH)
    fixture["body"].update(fields)
    fake.set_body(HEALTH, fixture)


@pytest.mark.parametrize("es_server", VERSIONS, indirect=True)
def test_documented_responses_of_each_version(es_server: FakeElasticsearch) -> None:
    outcome = run(es_server)
    assert outcome.success, outcome.failure  # the documented example is yellow: not a failure by default
    ms = outcome.metrics
    c = {"cluster": "testcluster"}
    assert ms.value("elasticsearch_cluster_health_status", {**c, "color": "yellow"}) == 1
    assert ms.value("elasticsearch_cluster_health_status", {**c, "color": "green"}) == 0
    assert ms.value("elasticsearch_cluster_health_status", {**c, "color": "red"}) == 0
    assert ms.value("elasticsearch_cluster_health_number_of_nodes", c) == 1
    assert ms.value("elasticsearch_cluster_health_number_of_data_nodes", c) == 1
    assert ms.value("elasticsearch_cluster_health_active_shards", c) == 1
    assert ms.value("elasticsearch_cluster_health_active_primary_shards", c) == 1
    assert ms.value("elasticsearch_cluster_health_unassigned_shards", c) == 1
    assert ms.value("elasticsearch_cluster_health_relocating_shards", c) == 0
    assert ms.value("elasticsearch_cluster_health_initializing_shards", c) == 0
    assert ms.value("elasticsearch_cluster_health_number_of_pending_tasks", c) == 0

    stats = load(f"{es_server.version}/nodes_stats.json")["body"]
    node = next(iter(stats["nodes"].values()))
    # elasticsearch_exporter's node labels: host, name and the role flags.
    n = {**c, "host": node["host"], "name": node["name"], "es_master_node": "true", "es_data_node": "true",
         "es_ingest_node": "true", "es_client_node": "false"}
    mem = node["jvm"]["mem"]
    assert ms.value("elasticsearch_jvm_memory_used_bytes", {**n, "area": "heap"}) == mem["heap_used_in_bytes"]
    assert ms.value("elasticsearch_jvm_memory_used_bytes", {**n, "area": "non-heap"}) == \
        mem["non_heap_used_in_bytes"]
    assert ms.value("elasticsearch_jvm_memory_max_bytes", {**n, "area": "heap"}) == mem["heap_max_in_bytes"]
    data = node["fs"]["data"][0]
    p = {**n, "mount": data.get("mount", ""), "path": data["path"]}
    assert ms.value("elasticsearch_filesystem_data_size_bytes", p) == data["total_in_bytes"]
    assert ms.value("elasticsearch_filesystem_data_available_bytes", p) == data["available_in_bytes"]
    breakers = {labels["breaker"] for labels, _ in _samples(outcome, "elasticsearch_breakers_tripped")}
    assert breakers == set(node["breakers"])
    assert ms.value("elasticsearch_breakers_tripped", {**n, "breaker": "parent"}) == 0
    indices = node["indices"]
    assert ms.value("elasticsearch_indices_docs", n) == indices["docs"]["count"]
    assert ms.value("elasticsearch_indices_store_size_bytes", n) == indices["store"]["size_in_bytes"]
    assert ms.value("elasticsearch_indices_indexing_index_total", n) == indices["indexing"]["index_total"]
    assert ms.value("elasticsearch_indices_search_query_time_seconds", n) == pytest.approx(
        indices["search"]["query_time_in_millis"] / 1000)
    assert ms.value("elasticsearch_indices_search_fetch_total", n) == indices["search"]["fetch_total"]
    assert ms.value("elasticsearch_thread_pool_rejected_count", {**n, "type": "write"}) == 3
    assert ms.value("elasticsearch_jvm_gc_collection_seconds_sum", {**n, "gc": "young"}) == pytest.approx(
        node["jvm"]["gc"]["collectors"]["young"]["collection_time_in_millis"] / 1000)
    assert ms.value("elasticsearch_transport_tx_size_bytes_total", n) == node["transport"]["tx_size_in_bytes"]
    assert ms.value("elasticsearch_nodes_roles", {**c, "host": node["host"], "name": node["name"],
                                                  "role": "master"}) == 1

    # Pending tasks: two HIGH, one URGENT, the oldest waited 858 ms.
    assert ms.value("einvoice_elasticsearch_pending_tasks", {**c, "priority": "high"}) == 2
    assert ms.value("einvoice_elasticsearch_pending_tasks", {**c, "priority": "urgent"}) == 1
    assert ms.value("einvoice_elasticsearch_pending_tasks", {**c, "priority": "low"}) == 0
    assert ms.value("einvoice_elasticsearch_pending_task_max_wait_seconds", c) == pytest.approx(0.858)
    assert [path for path, _ in es_server.requests] == [HEALTH, PENDING, NODES]


def test_red_fails_with_state(es_server: FakeElasticsearch) -> None:
    with_health(es_server, status="red", active_primary_shards=0, active_shards=0, unassigned_shards=2)
    outcome = run(es_server)
    assert outcome.failure is not None and outcome.failure.reason is Reason.STATE
    assert "red" in outcome.failure.detail
    assert outcome.metrics.value("elasticsearch_cluster_health_status",
                                 {"cluster": "testcluster", "color": "red"}) == 1


def test_yellow_fails_only_when_configured(es_server: FakeElasticsearch) -> None:
    assert run(es_server).success
    outcome = run(es_server, fail_on_yellow=True)
    assert outcome.failure is not None and outcome.failure.reason is Reason.STATE
    assert "yellow" in outcome.failure.detail


def test_green_cluster_passes_all_thresholds(es_server: FakeElasticsearch) -> None:
    with_health(es_server, status="green", number_of_nodes=3, unassigned_shards=0)
    outcome = run(es_server, fail_on_yellow=True, min_nodes=3, max_unassigned_shards=0)
    assert outcome.success, outcome.failure


@pytest.mark.parametrize(("settings", "health", "words"), [
    ({"min_nodes": 3}, {"number_of_nodes": 2}, "fewer than 3"),
    ({"max_unassigned_shards": 0}, {}, "1 unassigned"),
])
def test_node_and_shard_thresholds(es_server: FakeElasticsearch, settings: dict[str, int],
                                   health: dict[str, int], words: str) -> None:
    with_health(es_server, **health)
    outcome = run(es_server, **settings)
    assert outcome.failure is not None and outcome.failure.reason is Reason.THRESHOLD
    assert words in outcome.failure.detail


def test_heap_above_ratio_is_threshold(es_server: FakeElasticsearch) -> None:
    fixture = es_server.body(NODES)
    node = next(iter(fixture["body"]["nodes"].values()))
    node["jvm"]["mem"]["heap_used_in_bytes"] = int(node["jvm"]["mem"]["heap_max_in_bytes"] * 0.95)
    es_server.set_body(NODES, fixture)
    outcome = run(es_server, max_heap_ratio=0.9)
    assert outcome.failure is not None and outcome.failure.reason is Reason.THRESHOLD
    assert "heap 95%" in outcome.failure.detail
    assert run(es_server, max_heap_ratio=0.96).success


def test_disk_above_ratio_is_threshold(es_server: FakeElasticsearch) -> None:
    # The fixture's data path is 45% used (available 57.8 of 105 GB).
    outcome = run(es_server, max_disk_ratio=0.4)
    assert outcome.failure is not None and outcome.failure.reason is Reason.THRESHOLD
    assert "disk" in outcome.failure.detail and "45%" in outcome.failure.detail
    assert run(es_server, max_disk_ratio=0.5).success


def test_basic_auth_accepted_and_refused(es_server: FakeElasticsearch, tmp_path) -> None:
    es_server.username, es_server.password = "monitor", "pa55:word"
    secret = tmp_path / "es-password"
    secret.write_text("pa55:word\n")
    assert run(es_server, username="monitor", password_file=str(secret)).success
    expected = "Basic " + base64.b64encode(b"monitor:pa55:word").decode()
    assert {auth for _, auth in es_server.requests} == {expected}

    wrong = run(es_server, username="monitor", password="nope")
    assert wrong.failure is not None and wrong.failure.reason is Reason.AUTH
    assert "401" in wrong.failure.detail and "security_exception" in wrong.failure.detail
    assert "nope" not in wrong.failure.detail
    missing = run(es_server)
    assert missing.failure is not None and missing.failure.reason is Reason.AUTH


def test_api_key(es_server: FakeElasticsearch, monkeypatch: pytest.MonkeyPatch) -> None:
    key = base64.b64encode(b"VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw").decode()
    es_server.api_key = key
    assert run(es_server, api_key=key).success
    assert es_server.requests[-1][1] == f"ApiKey {key}"
    refused = run(es_server, api_key="d3Jvbmc6a2V5")
    assert refused.failure is not None and refused.failure.reason is Reason.AUTH


def test_403_is_auth(es_server: FakeElasticsearch) -> None:
    es_server.set_body(HEALTH, load("errors/403_unauthorized_action.json"))
    outcome = run(es_server)
    assert outcome.failure is not None and outcome.failure.reason is Reason.AUTH
    assert "403" in outcome.failure.detail


def test_503_master_not_discovered_is_bad_status(es_server: FakeElasticsearch) -> None:
    es_server.set_body(HEALTH, load("errors/503_master_not_discovered.json"))
    outcome = run(es_server)
    assert outcome.failure is not None and outcome.failure.reason is Reason.BAD_STATUS
    assert "503" in outcome.failure.detail and "master_not_discovered_exception" in outcome.failure.detail


def test_body_that_is_not_json_is_bad_content(es_server: FakeElasticsearch) -> None:
    es_server.set_body(HEALTH, load("errors/200_not_json.json"))
    outcome = run(es_server)
    assert outcome.failure is not None and outcome.failure.reason is Reason.BAD_CONTENT
    assert "not JSON" in outcome.failure.detail


def test_an_answer_over_max_body_bytes_is_bad_content_not_memory(es_server: FakeElasticsearch) -> None:
    """A lying endpoint cannot make the exporter hold its answer: past max_body_bytes the read stops."""
    huge = es_server.body(HEALTH)
    huge["body"]["padding"] = "x" * (3 * 1024 * 1024)
    es_server.set_body(HEALTH, huge)
    outcome = run(es_server, max_body_bytes=1024 * 1024)
    assert outcome.failure is not None and outcome.failure.reason is Reason.BAD_CONTENT
    assert "larger than 1048576 bytes" in outcome.failure.detail
    assert run(es_server).success  # the default limit (64 MiB) takes a 3 MB answer


def test_json_without_health_status_is_bad_content(es_server: FakeElasticsearch) -> None:
    es_server.set_body(HEALTH, {"status": 200, "headers": {"content-type": "application/json"},
                                "body": {"name": "node-1", "tagline": "You Know, for Search"}})
    outcome = run(es_server)
    assert outcome.failure is not None and outcome.failure.reason is Reason.BAD_CONTENT


def test_server_holding_the_request_times_out(es_server: FakeElasticsearch) -> None:
    es_server.hold = threading.Event()
    started = time.monotonic()
    outcome = run(es_server, timeout=0.5)
    elapsed = time.monotonic() - started
    assert outcome.failure is not None and outcome.failure.reason is Reason.TIMEOUT
    assert elapsed < 0.5 + 10, "the run ignored its timeout"


def test_refused_and_unresolvable() -> None:
    refused = run(f"http://127.0.0.1:{free_port()}", timeout=2)
    assert refused.failure is not None and refused.failure.reason is Reason.REFUSED
    dns = run("http://es.invalid:9200", timeout=2)
    assert dns.failure is not None and dns.failure.reason is Reason.DNS


def test_next_url_tried_when_first_is_down(es_server: FakeElasticsearch) -> None:
    outcome = run(f"http://127.0.0.1:{free_port()},{es_server.url}")
    assert outcome.success, outcome.failure
    nodes = outcome.metrics.value("elasticsearch_cluster_health_number_of_nodes", {"cluster": "testcluster"})
    assert nodes == 1


def test_all_urls_failing_reports_the_most_telling(es_server: FakeElasticsearch) -> None:
    es_server.set_body(HEALTH, load("errors/503_master_not_discovered.json"))
    outcome = run(f"http://127.0.0.1:{free_port()},{es_server.url}")
    assert outcome.failure is not None and outcome.failure.reason is Reason.BAD_STATUS
    assert "2 URL(s) failed" in outcome.failure.detail


@pytest.fixture
def tls_server(tmp_path) -> Iterator[tuple[FakeElasticsearch, TestCA]]:
    ca = TestCA(tmp_path / "ca")
    leaf = ca.issue("es-node", hosts=("127.0.0.1",))
    fake = FakeElasticsearch(version="8.x", username="elastic", password="changeme")
    for served in serve_tls(fake, leaf.cert, leaf.key):
        yield served, ca


def test_tls_with_ca_file_and_basic_auth(tls_server: tuple[FakeElasticsearch, TestCA], tmp_path) -> None:
    fake, ca = tls_server
    ok = run(fake, ca_file=str(ca.cert_path), username="elastic", password="changeme")
    assert ok.success, ok.failure
    untrusted = run(fake, username="elastic", password="changeme")
    assert untrusted.failure is not None and untrusted.failure.reason is Reason.TLS
    other_ca = TestCA(tmp_path / "other")
    wrong_ca = run(fake, ca_file=str(other_ca.cert_path), username="elastic", password="changeme")
    assert wrong_ca.failure is not None and wrong_ca.failure.reason is Reason.TLS
    skipped = run(fake, insecure_skip_verify=True, username="elastic", password="changeme")
    assert skipped.success, skipped.failure


def test_config_validation_names_the_key(tmp_path) -> None:
    base = {"modules": {"es": {"kind": "elasticsearch", "elasticsearch": {"fail_on_yellow": True}}},
            "checks": [{"name": "es", "item": "12", "module": "es",
                        "target": "https://es1:9200,https://es2:9200"}]}
    assert ExporterConfig.model_validate(base).checks[0].item == "12"
    for target, words in (("es1:9200", "not an http(s) base URL"),
                          ("https://elastic:secret@es1:9200", "credentials do not belong in the URL")):
        with pytest.raises(ValidationError, match=re.escape(words)):
            ExporterConfig.model_validate({**base, "checks": [{**base["checks"][0], "target": target}]})
    with pytest.raises(ValidationError, match="max_heap_ratio"):
        es.Settings.model_validate({"max_heap_ratio": 90})
    with pytest.raises(ValidationError, match="username needs password"):
        es.Settings.model_validate({"username": "monitor"})
    with pytest.raises(ValidationError, match="either username/password or api_key"):
        es.Settings.model_validate({"username": "u", "password": "p", "api_key": "k"})
    with pytest.raises(ValidationError, match="ca_file"):
        es.Settings.model_validate({"ca_file": str(tmp_path / "missing.pem")})
    with pytest.raises(ValidationError, match=r"unknown_key"):
        es.Settings.model_validate({"unknown_key": 1})
    assert "changeme" not in repr(es.Settings.model_validate({"username": "u", "password": "changeme"}))


def _samples(outcome: Outcome, name: str) -> list[tuple[dict[str, str], float]]:
    for family, _type, _doc, samples in outcome.metrics.items():
        if family == name:
            return samples
    return []


def test_environment_proxy_is_not_used(es_server: FakeElasticsearch, monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy variable meant for other software must not reroute the intranet check.
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("NO_PROXY", "")
    outcome = run(es_server)
    assert outcome.success, outcome.failure
