"""The tcp collector against real loopback servers: open, closed, silent, resetting, garbage, TLS."""

from __future__ import annotations

import socket

import pytest
from einvoice_exporter.collectors import tcp
from einvoice_exporter.collectors._net import TlsClientSettings
from einvoice_exporter.collectors.tcp import QueryResponse, Settings
from einvoice_exporter.outcome import Reason

from tests.support.collectors import run_once

from .conftest import Pki, server_context
from .servers import closed_port, garbage, ipv6_available, line_dialogue, resetting, serving, silent


def run(settings: Settings, target: str, timeout: float = 2.0):
    return run_once(tcp, settings, target, timeout)


def test_connect_succeeds_and_reports_probe_series():
    with serving(silent) as server:
        outcome = run(Settings(), server.address)
    assert outcome.success, outcome.failure
    assert outcome.metrics.value("probe_success") == 1
    assert outcome.metrics.value("probe_ip_protocol") == 4
    duration = outcome.metrics.value("probe_duration_seconds")
    assert duration is not None and 0 < duration < 2
    assert outcome.metrics.value("probe_failed_due_to_regex") is None  # no dialogue configured


def test_closed_port_is_refused():
    outcome = run(Settings(), f"127.0.0.1:{closed_port()}")
    assert outcome.failure is not None and outcome.failure.reason == Reason.REFUSED
    assert outcome.metrics.value("probe_success") == 0


def test_silent_server_times_out_waiting_for_expected_line():
    settings = Settings(query_response=[QueryResponse(expect="^SSH-2.0")])
    with serving(silent) as server:
        outcome = run(settings, server.address, timeout=0.5)
    assert outcome.failure is not None and outcome.failure.reason == Reason.TIMEOUT
    assert outcome.metrics.value("probe_failed_due_to_regex") == 0
    assert outcome.metrics.value("probe_duration_seconds") < 1.5


def test_reset_is_reported_as_reset():
    settings = Settings(query_response=[QueryResponse(expect="^OK")])
    with serving(resetting) as server:
        outcome = run(settings, server.address)
    assert outcome.failure is not None and outcome.failure.reason == Reason.RESET


def test_garbage_fails_the_regex_as_bad_content():
    settings = Settings(query_response=[QueryResponse(send="PING"), QueryResponse(expect="^\\+PONG")])
    with serving(garbage) as server:
        outcome = run(settings, server.address)
    assert outcome.failure is not None and outcome.failure.reason == Reason.BAD_CONTENT
    assert outcome.metrics.value("probe_failed_due_to_regex") == 1


def test_dialogue_send_and_expect_in_order():
    handler = line_dialogue(b"220 intake gateway ready\r\n", {b"PING": b"+PONG\r\n"})
    settings = Settings(query_response=[
        QueryResponse(expect="^220 "), QueryResponse(send="PING"), QueryResponse(expect="^\\+PONG$"),
    ])
    with serving(handler) as server:
        outcome = run(settings, server.address)
    assert outcome.success, outcome.failure
    assert outcome.metrics.value("probe_failed_due_to_regex") == 0


def test_tls_connection_reports_certificate_expiry(pki: Pki):
    settings = Settings(tls=True, tls_config=TlsClientSettings(ca_file=pki.ca.cert_path,
                                                               server_name="localhost"))
    with serving(silent, tls=server_context(pki.valid)) as server:
        outcome = run(settings, server.address)
    assert outcome.success, outcome.failure
    expiry = outcome.metrics.value("probe_ssl_earliest_cert_expiry")
    assert expiry == pytest.approx(pki.valid.not_after.timestamp(), abs=1)
    assert outcome.metrics.value("probe_tls_version_info", {"version": "TLS 1.3"}) == 1


def test_tls_with_untrusted_certificate_fails_as_tls(pki: Pki):
    settings = Settings(tls=True, tls_config=TlsClientSettings(ca_file=pki.ca.cert_path))
    with serving(silent, tls=server_context(pki.self_signed)) as server:
        outcome = run(settings, server.address)
    assert outcome.failure is not None and outcome.failure.reason == Reason.TLS
    assert "certificate" in outcome.failure.detail


def test_starttls_dialogue_upgrades_and_reports_the_certificate(pki: Pki):
    tls_ctx = server_context(pki.valid)

    def smtp_like(conn: socket.socket) -> None:
        conn.settimeout(5)
        conn.sendall(b"220 gateway ready\r\n")
        if conn.recv(4096).strip() != b"STARTTLS":
            return
        conn.sendall(b"220 go ahead\r\n")
        secure = tls_ctx.wrap_socket(conn, server_side=True)
        secure.sendall(b"250 secure\r\n")
        secure.recv(1)

    settings = Settings(tls_config=TlsClientSettings(ca_file=pki.ca.cert_path, server_name="localhost"),
                        query_response=[QueryResponse(expect="^220 gateway"), QueryResponse(send="STARTTLS"),
                                        QueryResponse(expect="^220 go", starttls=True),
                                        QueryResponse(expect="^250 secure$")])
    with serving(smtp_like) as server:
        outcome = run(settings, server.address)
    assert outcome.success, outcome.failure
    assert outcome.metrics.value("probe_ssl_earliest_cert_expiry") == pytest.approx(
        pki.valid.not_after.timestamp(), abs=1)


@pytest.mark.parametrize("target, message", [
    ("intake.example.gov.cn", "needs a port"),
    ("intake.example.gov.cn:http", "not a number"),
    ("tcp://intake:80", "without a scheme"),
    ("fe80::1:443", "[address]:port"),
])
def test_bad_targets_are_rejected_with_a_sentence(target: str, message: str):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        tcp.validate_target(target)


def test_ipv6_literal_target_is_accepted():
    assert tcp.validate_target("[::1]:443") == "[::1]:443"


@pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback on this machine")
def test_ipv6_connect_and_ip_protocol_choice():
    with serving(silent, host="::1") as server:
        assert run(Settings(), server.address).metrics.value("probe_ip_protocol") == 6
        wrong_family = run(Settings(ip_protocol="ip4"), server.address)
    assert wrong_family.failure is not None and wrong_family.failure.reason == Reason.DNS


def test_bad_regex_is_a_config_error_naming_the_key():
    with pytest.raises(ValueError, match="expect is not a valid regular expression"):
        Settings.model_validate({"query_response": [{"expect": "(unclosed"}]})
