"""The lean encoder says exactly what prometheus_client's reference encoders say."""

from __future__ import annotations

from einvoice_exporter.exposition import encode, wants_openmetrics
from einvoice_exporter.runtime import Runtime
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from tests.exporter.conftest import Factory, make_config


class Families:
    def __init__(self, families):
        self.families = families

    def collect(self):
        return self.families


def tricky_families():
    gauge = GaugeMetricFamily("probe_thing", 'Help with \\ backslash, "quotes"\nand a newline',
                              labels=["target", "phase"])
    gauge.add_metric(['http://x/?a="1"\\b', "connect"], 0.25)
    gauge.add_metric(["line\nbreak", "目标"], float("nan"))
    gauge.add_metric(["inf", "up"], float("inf"))
    gauge.add_metric(["big", "up"], 1.7957722656996903e09)
    gauge.add_metric(["tiny", "up"], 1e-7)
    counter = CounterMetricFamily("einvoice_check_failures", "Failures", labels=["reason"])
    counter.add_metric(["timeout"], 3)
    return [gauge, counter, GaugeMetricFamily("empty_family", "No samples")]


def as_set(families):
    return {(s.name, tuple(sorted(s.labels.items())), "nan" if s.value != s.value else s.value)
            for family in families for s in family.samples}


def test_text_format_matches_prometheus_client():
    families = tricky_families()
    ours = encode(families).decode()
    reference = generate_latest(Families(families)).decode()
    assert as_set(parse_text(ours)) == as_set(parse_text(reference))
    assert "# TYPE einvoice_check_failures_total counter" in ours


def test_openmetrics_matches_prometheus_client():
    families = tricky_families()
    ours = encode(families, openmetrics=True).decode()
    reference = generate_openmetrics(Families(families)).decode()
    assert ours.endswith("# EOF\n")
    assert as_set(parse_openmetrics(ours)) == as_set(parse_openmetrics(reference))


def test_real_scrape_matches_prometheus_client():
    runtime = Runtime(make_config([f"10.0.0.{i}:80" for i in range(1, 30)]), check_factory=Factory())
    try:
        families = list(runtime.collect())
    finally:
        runtime.close()
    assert as_set(parse_text(encode(families).decode())) == \
        as_set(parse_text(generate_latest(Families(families)).decode()))


def test_other_types_fall_back_to_the_reference_encoder():
    info = InfoMetricFamily("einvoice_build", "Build", value={"version": "1"})
    assert encode([info]) == generate_latest(Families([info]))


def test_negotiation_follows_the_clients_preference():
    prometheus = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
                  "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
    assert wants_openmetrics(prometheus)
    assert not wants_openmetrics("")
    assert not wants_openmetrics("text/plain;version=0.0.4")
    assert not wants_openmetrics("text/plain;q=0.9, application/openmetrics-text;q=0.5")
