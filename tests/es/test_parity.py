"""Parity with elasticsearch_exporter 1.5 (Debian's prometheus-elasticsearch-exporter, `--es.all`):
both read the same documented responses (the fake server of conftest.py, for 6.8, 7.17 and 8.x) and
every metric name, type and label name it exposes must be in ours, unless tests/community/README.md
gives the reason (the tables below are the ones there)."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from einvoice_exporter.collectors import elasticsearch as es_kind
from einvoice_exporter.exposition import encode
from einvoice_exporter.outcome import merge_families
from prometheus_client.parser import text_string_to_metric_families

from tests.es.conftest import VERSIONS, FakeElasticsearch, _serve
from tests.support.collectors import run_once
from tests.support.procs import Proc, free_port, require_binary, wait_until

README = Path(__file__).resolve().parents[1] / "community" / "README.md"

NOT_EXPOSED: dict[str, str] = {
    **dict.fromkeys((
        "elasticsearch_exporter_build_info", "elasticsearch_scrape_duration_seconds",
        "elasticsearch_scrape_success", "elasticsearch_cluster_health_up",
        "elasticsearch_cluster_health_total_scrapes", "elasticsearch_cluster_health_json_parse_failures",
        "elasticsearch_node_stats_up", "elasticsearch_node_stats_total_scrapes",
        "elasticsearch_node_stats_json_parse_failures", "elasticsearch_clusterinfo_up",
        "elasticsearch_clusterinfo_last_retrieval_success_ts"), "exporter's own"),
    **dict.fromkeys(("elasticsearch_version", "elasticsearch_clusterinfo_version_info"), "GET / not asked"),
    **dict.fromkeys((
        "elasticsearch_indices_filter_cache_memory_size_bytes",
        "elasticsearch_indices_filter_cache_evictions",
        "elasticsearch_os_mem_actual_free_bytes", "elasticsearch_os_mem_actual_used_bytes",
        "elasticsearch_process_mem_resident_size_bytes", "elasticsearch_process_mem_share_size_bytes"),
        "field not in 6.8+ responses"),
    "elasticsearch_indices_store_throttle_time_seconds_total": "field not in 7.x+ responses",
}
LABELS_NOT_EXPOSED = {("elasticsearch_jvm_uptime_seconds", "type")}
"""Upstream labels uptime with the buffer pool type of its last loop iteration (always `mapped`)."""


def exposition_of(text: str) -> dict[str, tuple[str, frozenset[str]]]:
    """Exposed sample name -> (type, label names), from the text format as written (a parser would
    add `_total` to counters named without it)."""
    types: dict[str, str] = {}
    found: dict[str, tuple[str, frozenset[str]]] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, type_ = line.split(" ", 3)
            types[name] = type_
            continue
        if not line.startswith("elasticsearch_"):
            continue
        name, _, rest = line.partition("{")
        labels: frozenset[str] = frozenset()
        if rest:
            body = rest.rsplit("}", 1)[0]
            parsed = next(iter(text_string_to_metric_families(f"x{{{body}}} 1\n"))).samples[0].labels
            labels = frozenset(parsed)
        else:
            name = line.split(" ", 1)[0]
        previous = found.get(name, ("", frozenset()))[1]
        found[name] = (types.get(name, "untyped"), previous | labels)
    return found


@pytest.fixture(params=VERSIONS)
def fake(request: pytest.FixtureRequest) -> Iterator[FakeElasticsearch]:
    yield from _serve(FakeElasticsearch(version=request.param), None)


def test_every_elasticsearch_exporter_series_is_ours(fake: FakeElasticsearch, tmp_path: Path) -> None:
    port = free_port()
    theirs_proc = Proc([require_binary("prometheus-elasticsearch-exporter"), f"--es.uri={fake.url}",
                        "--es.all", f"--web.listen-address=127.0.0.1:{port}"], tmp_path / "theirs.log")
    try:
        theirs_proc.wait_port(port)

        def scraped() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
                return str(answer.read().decode())

        wait_until(lambda: "elasticsearch_indices_docs{" in scraped(), timeout=30,
                   what="elasticsearch_exporter read the node stats")
        theirs = exposition_of(scraped())
    finally:
        theirs_proc.stop()
    outcome = run_once(es_kind, es_kind.Settings(), fake.url, 10)
    assert outcome.success, outcome.failure
    ours = exposition_of(encode(merge_families([({}, outcome.metrics)])).decode())

    problems = []
    for name, (type_, labels) in sorted(theirs.items()):
        if name in NOT_EXPOSED:
            continue
        if name not in ours:
            problems.append(f"{name}: missing")
            continue
        our_type, our_labels = ours[name]
        counter_named_otherwise = type_ == "counter" and not name.endswith("_total") and our_type == "gauge"
        if our_type != type_ and not counter_named_otherwise:
            problems.append(f"{name}: type {our_type}, elasticsearch_exporter {type_}")
        lacking = {label for label in labels - our_labels if (name, label) not in LABELS_NOT_EXPOSED}
        if lacking:
            problems.append(f"{name}: lacks {sorted(lacking)}")
    assert problems == [], problems
    assert ours["elasticsearch_breakers_tripped"][0] == "gauge"  # see tests/community/README.md


def test_readme_gives_a_reason_for_every_exception() -> None:
    text = README.read_text(encoding="utf-8")
    for name in NOT_EXPOSED:
        assert f"`{name}`" in text, name
