"""The dns collector against a local dnspython responder (UDP and TCP) and the system resolver
(/etc/hosts: localhost), never the machine's configured DNS servers."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from einvoice_exporter.collectors import dns as dns_collector
from einvoice_exporter.collectors.dns import Settings
from einvoice_exporter.outcome import Outcome, Reason

from tests.support.collectors import reason, run_once

from .dns_server import DnsResponder, dns_responder


@pytest.fixture(scope="module")
def responder() -> Iterator[DnsResponder]:
    with dns_responder() as server:
        yield server


def probe(settings: Settings, target: str, timeout: float = 2.0) -> Outcome:
    return run_once(dns_collector, settings, target, timeout)


def test_a_records_from_a_given_resolver(responder):
    outcome = probe(Settings(resolver=responder.address, expected_answers=["192.0.2.11", "192.0.2.10."]),
                    "portal.gx.example")
    assert outcome.success, outcome.failure
    m = outcome.metrics
    assert m.value("probe_dns_answer_rrs") == 2
    assert m.value("probe_dns_authority_rrs") == 0
    assert m.value("probe_dns_query_succeeded") == 1
    assert 0 < m.value("probe_dns_lookup_time_seconds") <= m.value("probe_duration_seconds")
    assert m.value("probe_success") == 1


def test_unexpected_answers_fail_as_dns(responder):
    settings = Settings(resolver=responder.address, expected_answers=["192.0.2.10"])
    outcome = probe(settings, "portal.gx.example")
    assert reason(outcome) == Reason.DNS and "expected_answers" in outcome.failure.detail
    assert outcome.metrics.value("probe_dns_query_succeeded") == 1  # it answered, just not as expected


def test_answer_regex(responder):
    good = probe(Settings(resolver=responder.address, expected_answer_regex=r"^192\.0\.2\."),
                 "portal.gx.example")
    bad = probe(Settings(resolver=responder.address, expected_answer_regex=r"^10\."), "portal.gx.example")
    assert good.success, good.failure
    assert reason(bad) == Reason.DNS


def test_aaaa_and_cname_and_mx(responder):
    aaaa = probe(Settings(resolver=responder.address, query_type="AAAA", expected_answers=["2001:db8::10"]),
                 "portal.gx.example")
    cname = probe(Settings(resolver=responder.address, query_type="CNAME",
                           expected_answers=["portal.gx.example"]), "www.gx.example")
    mx = probe(Settings(resolver=responder.address, query_type="MX", expected_answer_regex=r"^10 mx1\."),
               "mail.gx.example")
    for outcome in (aaaa, cname, mx):
        assert outcome.success, outcome.failure


def test_a_query_through_a_cname_counts_the_chain(responder):
    outcome = probe(Settings(resolver=responder.address, expected_answers=["192.0.2.10", "192.0.2.11"]),
                    "www.gx.example")
    assert outcome.success, outcome.failure
    assert outcome.metrics.value("probe_dns_answer_rrs") == 3  # CNAME + 2 A, as blackbox counts


def test_nxdomain_servfail_and_empty(responder):
    assert reason(probe(Settings(resolver=responder.address), "nope.gx.example")) == Reason.DNS
    servfail = probe(Settings(resolver=responder.address), "broken.gx.example")
    assert reason(servfail) == Reason.DNS and "SERVFAIL" in servfail.failure.detail
    empty = probe(Settings(resolver=responder.address, query_type="AAAA"), "mail.gx.example")
    assert reason(empty) == Reason.DNS and "no AAAA records" in empty.failure.detail
    assert probe(Settings(resolver=responder.address, query_type="MX", allow_empty=True),
                 "portal.gx.example").success


def test_unanswered_query_times_out(responder):
    outcome = probe(Settings(resolver=responder.address), "slow.gx.example", timeout=0.4)
    assert reason(outcome) == Reason.TIMEOUT
    assert outcome.metrics.value("probe_dns_query_succeeded") == 0
    assert outcome.metrics.value("probe_duration_seconds") < 1.5


def test_truncated_udp_answer_is_retried_over_tcp(responder):
    before = len(responder.queries)
    outcome = probe(Settings(resolver=responder.address), "big.gx.example")
    assert outcome.success, outcome.failure
    assert outcome.metrics.value("probe_dns_answer_rrs") == 60
    assert [q[0] for q in responder.queries[before:]] == ["udp", "tcp"]


def test_tcp_transport(responder):
    before = len(responder.queries)
    assert probe(Settings(resolver=responder.address, transport="tcp"), "portal.gx.example").success
    assert [q[0] for q in responder.queries[before:]] == ["tcp"]


def test_system_resolver_reads_etc_hosts():
    outcome = probe(Settings(expected_answers=["127.0.0.1"]), "localhost")
    assert outcome.success, outcome.failure
    assert outcome.metrics.value("probe_dns_answer_rrs") >= 1
    assert outcome.metrics.value("probe_dns_authority_rrs") is None  # only known with a given resolver


@pytest.mark.parametrize("target, message", [
    ("https://portal.example.gov.cn", "bare DNS name"),
    ("portal.example.gov.cn:443", "bare DNS name"),
    ("bad_label-.example", "not a valid DNS name"),
    ("", "at most 253"),
])
def test_bad_targets(target: str, message: str):
    with pytest.raises(ValueError, match=message):
        dns_collector.validate_target(target)


@pytest.mark.parametrize("raw, message", [
    ({"resolver": "dns.example.gov.cn"}, "must be an IP address"),
    ({"resolver": "127.0.0.1:99999"}, "between 1 and 65535"),
    ({"query_type": "ANY"}, "'A', 'AAAA'"),
    ({"expected_answer_regex": "("}, "not a valid regular expression"),
])
def test_settings_errors(raw: dict, message: str):
    with pytest.raises(ValueError, match=message):
        Settings.model_validate(raw)


def test_internationalised_name_is_queried_in_punycode(responder):
    assert dns_collector.validate_target("税务.中国") == "税务.中国"
    outcome = probe(Settings(resolver=responder.address), "税务.gx.example")
    assert reason(outcome) == Reason.DNS  # NXDOMAIN from the responder, so it was asked
    assert responder.queries[-1][1] == "xn--zfr703g.gx.example."


def test_resolver_forms():
    assert Settings(resolver="[::1]:5353").resolver == "[::1]:5353"
    assert Settings(resolver="::1").resolver == "::1"


def test_validating_settings_does_not_import_dnspython():
    """Config validation must stay light: dnspython is imported only when a check is built."""
    import subprocess

    code = ("import sys; from einvoice_exporter.collectors.dns import Settings; "
            "Settings(resolver='127.0.0.1'); print('dns' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
