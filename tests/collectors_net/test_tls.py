"""The tls collector against loopback TLS servers with test-CA, expired, wrong-host and self-signed
certificates, and one that requires a client certificate."""

from __future__ import annotations

import pytest
from einvoice_exporter.collectors import tls
from einvoice_exporter.collectors.tls import Collector, Settings
from einvoice_exporter.outcome import Outcome, Reason

from tests.support.collectors import run_once

from .conftest import Pki, server_context
from .servers import closed_port, serving, silent


def probe(settings: Settings, target: str, timeout: float = 3.0) -> Outcome:
    return run_once(tls, settings, target, timeout)


def test_valid_chain(pki: Pki):
    with serving(silent, tls=server_context(pki.valid)) as server:
        outcome = probe(Settings(ca_file=pki.ca.cert_path), server.address)
    assert outcome.success, outcome.failure
    m = outcome.metrics
    assert m.value("probe_success") == 1
    assert m.value("probe_ssl_earliest_cert_expiry") == pytest.approx(pki.valid.not_after.timestamp(), abs=1)
    assert m.value("probe_ssl_last_chain_expiry_timestamp_seconds") == pytest.approx(
        pki.valid.not_after.timestamp(), abs=1)
    assert m.value("probe_tls_version_info", {"version": "TLS 1.3"}) == 1


def test_tls12_is_reported(pki: Pki):
    ctx = server_context(pki.valid)
    ctx.maximum_version = __import__("ssl").TLSVersion.TLSv1_2
    with serving(silent, tls=ctx) as server:
        outcome = probe(Settings(ca_file=pki.ca.cert_path), server.address)
    assert outcome.metrics.value("probe_tls_version_info", {"version": "TLS 1.2"}) == 1


def test_min_version_refuses_older_servers(pki: Pki):
    ctx = server_context(pki.valid)
    ctx.maximum_version = __import__("ssl").TLSVersion.TLSv1_2
    with serving(silent, tls=ctx) as server:
        outcome = probe(Settings(ca_file=pki.ca.cert_path, min_version="TLS13"), server.address)
    assert outcome.failure is not None and outcome.failure.reason == Reason.TLS


def test_expired_certificate_fails_but_expiry_is_still_measured(pki: Pki):
    with serving(silent, tls=server_context(pki.expired)) as server:
        outcome = probe(Settings(ca_file=pki.ca.cert_path), server.address)
    assert outcome.failure is not None and outcome.failure.reason == Reason.TLS
    assert "expired" in outcome.failure.detail
    assert outcome.metrics.value("probe_success") == 0
    expiry = outcome.metrics.value("probe_ssl_earliest_cert_expiry")
    assert expiry == pytest.approx(pki.expired.not_after.timestamp(), abs=1)
    assert outcome.metrics.value("probe_ssl_last_chain_expiry_timestamp_seconds") is None


def test_wrong_host_name(pki: Pki):
    with serving(silent, tls=server_context(pki.wrong_host)) as server:
        outcome = probe(Settings(ca_file=pki.ca.cert_path), server.address)
        assert outcome.failure is not None and outcome.failure.reason == Reason.TLS
        assert "match" in outcome.failure.detail
        named = probe(Settings(ca_file=pki.ca.cert_path, server_name="portal.example.gov.cn"), server.address)
    assert named.success, named.failure


def test_self_signed_fails_unless_insecure(pki: Pki):
    with serving(silent, tls=server_context(pki.self_signed)) as server:
        strict = probe(Settings(), server.address)  # system trust store
        loose = probe(Settings(insecure_skip_verify=True), server.address)
    assert strict.failure is not None and strict.failure.reason == Reason.TLS
    assert "self-signed" in strict.failure.detail or "issuer" in strict.failure.detail
    assert loose.success, loose.failure


def test_client_certificate(pki: Pki):
    ctx = server_context(pki.valid, client_ca=pki.ca.cert_path)
    with serving(silent, tls=ctx) as server:
        with_cert = probe(Settings(ca_file=pki.ca.cert_path, cert_file=pki.client.cert,
                                   key_file=pki.client.key), server.address)
    assert with_cert.success, with_cert.failure


def test_expiry_threshold_with_injected_clock(pki: Pki):
    settings = Settings(ca_file=pki.ca.cert_path, fail_if_expires_within_days=7)
    with serving(silent, tls=server_context(pki.short)) as server:
        soon = Collector(settings).run(server.address, 3)
        # the same certificate seen from 20 days earlier is far from expiry
        earlier = pki.short.not_after.timestamp() - 20 * 86400
        later = Collector(settings, now=lambda: earlier).run(server.address, 3)
    assert soon.failure is not None and soon.failure.reason == Reason.THRESHOLD
    assert "fail_if_expires_within_days" in soon.failure.detail
    assert later.success, later.failure


def test_plain_tcp_server_is_a_tls_failure_or_timeout(pki: Pki):
    with serving(silent) as server:
        outcome = probe(Settings(ca_file=pki.ca.cert_path), server.address, timeout=0.5)
    assert outcome.failure is not None and outcome.failure.reason == Reason.TIMEOUT


def test_refused():
    outcome = probe(Settings(), f"127.0.0.1:{closed_port()}")
    assert outcome.failure is not None and outcome.failure.reason == Reason.REFUSED


def test_settings_errors():
    with pytest.raises(ValueError, match="fail_if_expires_within_days"):
        Settings.model_validate({"fail_if_expires_within_days": -1})
    with pytest.raises(ValueError, match="Extra inputs"):
        Settings.model_validate({"insecure": True})
