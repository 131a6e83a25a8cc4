"""The http collector against a loopback HTTP(S) app, a forward proxy and raw misbehaving servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from einvoice_exporter.collectors import http
from einvoice_exporter.collectors._net import TlsClientSettings
from einvoice_exporter.collectors.http import BasicAuth, JsonExpect, Settings
from einvoice_exporter.outcome import Outcome, Reason

from tests.support.collectors import reason, run_once

from .conftest import Pki, server_context
from .http_servers import BASIC_PASSWORD, BASIC_USER, BEARER_TOKEN, ForwardProxy, http_app
from .servers import closed_port, garbage, http_ok, ipv6_available, read_then_reset, serving, silent


def probe(settings: Settings, target: str, timeout: float = 3.0) -> Outcome:
    return run_once(http, settings, target, timeout)


@pytest.fixture(scope="module")
def app() -> Iterator:
    with http_app() as server:
        yield server


@pytest.fixture(scope="module")
def tls_app(pki: Pki) -> Iterator:
    with http_app(server_context(pki.valid)) as server:
        yield server


def test_plain_get_reports_blackbox_series(app):
    outcome = probe(Settings(), f"{app.url}/ok")
    assert outcome.success, outcome.failure
    m = outcome.metrics
    assert m.value("probe_success") == 1
    assert m.value("probe_http_status_code") == 200
    assert m.value("probe_http_content_length") == len("广西电子发票 ok\n".encode())
    assert m.value("probe_http_version") == 1.1
    assert m.value("probe_http_ssl") == 0
    assert m.value("probe_http_redirects") == 0
    phases = {p: m.value("probe_http_duration_seconds", {"phase": p}) for p in http.PHASES}
    assert phases["tls"] == 0
    assert phases["connect"] > 0 and phases["processing"] > 0
    assert sum(phases.values()) <= m.value("probe_duration_seconds")


def test_name_resolved_by_system_resolver(app):
    port = app.url.rsplit(":", 1)[1]
    outcome = probe(Settings(), f"http://localhost:{port}/ok")
    assert outcome.success, outcome.failure
    assert outcome.metrics.value("probe_dns_lookup_time_seconds") > 0


def test_invalid_status_is_bad_status(app):
    outcome = probe(Settings(), f"{app.url}/missing")
    assert reason(outcome) == Reason.BAD_STATUS
    assert outcome.metrics.value("probe_http_status_code") == 404
    assert "404" in outcome.failure.detail


def test_valid_status_codes_are_honoured(app):
    assert probe(Settings(valid_status_codes=[404]), f"{app.url}/missing").success
    assert reason(probe(Settings(valid_status_codes=[201]), f"{app.url}/ok")) == Reason.BAD_STATUS


def test_redirect_followed_and_counted(app):
    outcome = probe(Settings(), f"{app.url}/redirect")
    assert outcome.success, outcome.failure
    assert outcome.metrics.value("probe_http_redirects") == 1
    assert outcome.metrics.value("probe_http_status_code") == 200


def test_redirect_not_followed_when_off(app):
    outcome = probe(Settings(follow_redirects=False), f"{app.url}/redirect")
    assert reason(outcome) == Reason.BAD_STATUS
    assert outcome.metrics.value("probe_http_status_code") == 302
    assert probe(Settings(follow_redirects=False, valid_status_codes=[302]), f"{app.url}/redirect").success


def test_redirect_loop_is_bounded(app):
    outcome = probe(Settings(max_redirects=3), f"{app.url}/loop")
    assert reason(outcome) == Reason.BAD_STATUS
    assert outcome.metrics.value("probe_http_redirects") == 3


def test_303_after_post_becomes_get(app):
    outcome = probe(Settings(method="POST", body="{}", json_expect=[JsonExpect(path="method", equals="GET")]),
                    f"{app.url}/redirect-post")
    assert outcome.success, outcome.failure


def test_actuator_json_expectations(app):
    settings = Settings(json_expect=[
        JsonExpect(path="status", equals="UP"),
        JsonExpect(path="components.db.status", equals="UP"),
        JsonExpect(path="components.redis.details.version", regex=r"^7\."),
        JsonExpect(path="components.diskSpace.details.free", regex=r"^\d+$"),
    ])
    assert probe(settings, f"{app.url}/actuator/health").success


def test_actuator_down_fails_on_status_first(app):
    settings = Settings(json_expect=[JsonExpect(path="status", equals="UP")])
    outcome = probe(settings, f"{app.url}/actuator/health-down")
    assert reason(outcome) == Reason.BAD_STATUS  # actuator answers 503 when DOWN
    relaxed = Settings(valid_status_codes=[200, 503], json_expect=[JsonExpect(path="status", equals="UP")])
    outcome = probe(relaxed, f"{app.url}/actuator/health-down")
    assert reason(outcome) == Reason.BAD_CONTENT
    assert outcome.failure.detail == "json_expect: status is not equal to 'UP'"


@pytest.mark.parametrize("expect, passes", [
    ({"path": "ok", "equals": True}, True),
    ({"path": "ok", "equals": "true"}, True),      # a string matches the JSON text of a boolean
    ({"path": "ok", "equals": 1}, False),          # but 1 is not true
    ({"path": "count", "equals": 3}, True),
    ({"path": "count", "equals": 3.0}, True),
    ({"path": "count", "equals": "3"}, True),
    ({"path": "count", "equals": True}, False),
    ({"path": "ratio", "equals": 1}, True),
    ({"path": "none", "equals": None}, True),
    ({"path": "code", "equals": "0000"}, True),
    ({"path": "code", "equals": 0}, False),        # "0000" the string is not the number 0
    ({"path": "items.1.state", "equals": "IDLE"}, True),
    ({"path": "items.0.state", "regex": "^(RUNNING|IDLE)$"}, True),
    ({"path": "items.2.state", "equals": "IDLE"}, False),
    ({"path": "count", "regex": "^[0-9]+$"}, True),
])
def test_json_expect_types(app, expect: dict, passes: bool):
    outcome = probe(Settings.model_validate({"json_expect": [expect]}), f"{app.url}/json-types")
    assert outcome.success is passes, outcome.failure
    if not passes:
        assert reason(outcome) == Reason.BAD_CONTENT


def test_json_missing_path_and_not_json(app):
    missing = probe(Settings(json_expect=[JsonExpect(path="components.kafka.status", equals="UP")]),
                    f"{app.url}/actuator/health")
    assert reason(missing) == Reason.BAD_CONTENT
    assert "components.kafka.status is missing" in missing.failure.detail
    not_json = probe(Settings(json_expect=[JsonExpect(path="status", equals="UP")]), f"{app.url}/not-json")
    assert reason(not_json) == Reason.BAD_CONTENT and "not JSON" in not_json.failure.detail


def test_json_expect_needs_exactly_one_condition():
    with pytest.raises(ValueError, match="exactly one of equals or regex"):
        JsonExpect(path="status")
    with pytest.raises(ValueError, match="exactly one of equals or regex"):
        JsonExpect(path="status", equals="UP", regex="UP")
    assert JsonExpect(path="enabled", equals=None).equals is None  # an explicit null is a condition


def test_body_regexes(app):
    bad = probe(Settings(fail_if_body_matches=["Exception"]), f"{app.url}/error-page")
    assert reason(bad) == Reason.BAD_CONTENT
    assert bad.metrics.value("probe_failed_due_to_regex") == 1
    missing = probe(Settings(fail_if_body_not_matches=["电子发票"]), f"{app.url}/not-json")
    assert reason(missing) == Reason.BAD_CONTENT
    good = probe(Settings(fail_if_body_not_matches=["电子发票"], fail_if_body_matches=["Exception"]),
                 f"{app.url}/ok")
    assert good.success and good.metrics.value("probe_failed_due_to_regex") == 0


def test_chunked_body_is_decoded(app):
    outcome = probe(Settings(json_expect=[JsonExpect(path="status", equals="UP")]), f"{app.url}/chunked")
    assert outcome.success, outcome.failure
    assert outcome.metrics.value("probe_http_content_length") == -1
    assert outcome.metrics.value("probe_http_uncompressed_body_length") == len(b'{"status":"UP"}')


def test_body_size_limit(app):
    outcome = probe(Settings(body_size_limit=1000), f"{app.url}/big")
    assert reason(outcome) == Reason.BAD_CONTENT and "body_size_limit" in outcome.failure.detail


def test_basic_auth_with_password_file(app, tmp_path: Path):
    secret = tmp_path / "password"
    secret.write_text(BASIC_PASSWORD + "\n")
    ok = probe(Settings(basic_auth=BasicAuth(username=BASIC_USER, password_file=secret)), f"{app.url}/basic")
    assert ok.success, ok.failure
    wrong = probe(Settings(basic_auth=BasicAuth(username=BASIC_USER, password="nope")), f"{app.url}/basic")
    assert reason(wrong) == Reason.AUTH
    for text in (wrong.failure.detail, repr(wrong.metrics.items())):
        assert "nope" not in text and BASIC_PASSWORD not in text


def test_bearer_token(app):
    assert probe(Settings.model_validate({"bearer_token": BEARER_TOKEN}), f"{app.url}/bearer").success
    denied = probe(Settings(), f"{app.url}/bearer")
    assert reason(denied) == Reason.AUTH and "403" in denied.failure.detail


def test_secret_settings_are_not_printed():
    settings = Settings.model_validate({"basic_auth": {"username": "u", "password": "hunter2"}})
    assert "hunter2" not in repr(settings) and "hunter2" not in settings.model_dump_json()


def test_credentials_do_not_follow_a_redirect_to_another_host(app):
    with http_app() as other:
        other_url = other.url.replace("127.0.0.1", "localhost")  # another host name, same machine
        settings = Settings(bearer_token=BEARER_TOKEN)
        outcome = probe(settings, f"{app.url}/redirect-to?to={other_url}/bearer")
        assert reason(outcome) == Reason.AUTH  # the other host got no token, so it said 403
        assert outcome.metrics.value("probe_http_redirects") == 1
        assert [h.get("Authorization") for _, _, h in other.requests] == [None]
    sent = [h.get("Authorization") for _, path, h in app.requests if path.startswith("/redirect-to")]
    assert sent[-1] == f"Bearer {BEARER_TOKEN}"


def test_headers_method_and_body_are_sent(app):
    settings = Settings(method="POST", body='{"ping":1}',
                        headers={"X-Probe": "einvoice", "Host": "intake.gx"},
                        json_expect=[JsonExpect(path="method", equals="POST"),
                                     JsonExpect(path="body", equals='{"ping":1}'),
                                     JsonExpect(path="headers.x-probe", equals="einvoice"),
                                     JsonExpect(path="headers.host", equals="intake.gx")])
    outcome = probe(settings, f"{app.url}/echo")
    assert outcome.success, outcome.failure


def test_response_time_threshold(app):
    ticks = iter(range(1_000_000))

    def clock() -> float:  # every look at the clock is 20 ms later: the answer takes over 50 ms
        return next(ticks) * 0.02

    settings = Settings.model_validate({"max_response_time": "50ms"})
    check = http.Collector(settings, clock=clock)
    outcome = check.run(f"{app.url}/ok", 30)
    assert reason(outcome) == Reason.THRESHOLD and "max_response_time" in outcome.failure.detail
    assert outcome.metrics.value("probe_http_status_code") == 200
    relaxed = Settings.model_validate({"max_response_time": "1h"})
    fast = http.Collector(relaxed, clock=clock).run(f"{app.url}/ok", 30)
    assert fast.success, fast.failure


@pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback on this machine")
def test_ipv6_literal_url_and_http10_body_to_eof():
    with serving(http_ok, host="::1") as server:
        outcome = probe(Settings(fail_if_body_not_matches=[r"^host=\[::1\]:\d+$"]), f"http://{server.address}/")
    assert outcome.success, outcome.failure
    assert outcome.metrics.value("probe_ip_protocol") == 6
    assert outcome.metrics.value("probe_http_version") == 1.0
    assert outcome.metrics.value("probe_http_content_length") == -1  # no Content-Length: read to EOF


def test_timeout_when_server_never_answers():
    with serving(silent) as server:
        outcome = probe(Settings(), f"http://{server.address}/", timeout=0.5)
    assert reason(outcome) == Reason.TIMEOUT
    assert outcome.metrics.value("probe_duration_seconds") < 1.5


def test_refused_and_reset_and_garbage():
    assert reason(probe(Settings(), f"http://127.0.0.1:{closed_port()}/")) == Reason.REFUSED
    with serving(read_then_reset) as server:
        assert reason(probe(Settings(), f"http://{server.address}/")) == Reason.RESET
    with serving(garbage) as server:
        outcome = probe(Settings(), f"http://{server.address}/")
    assert reason(outcome) == Reason.BAD_CONTENT and "not HTTP" in outcome.failure.detail


def test_https_valid_chain_reports_tls_metrics(tls_app, pki: Pki):
    settings = Settings(tls_config=TlsClientSettings(ca_file=pki.ca.cert_path))
    outcome = probe(settings, f"{tls_app.url}/ok")
    assert outcome.success, outcome.failure
    m = outcome.metrics
    assert m.value("probe_http_ssl") == 1
    assert m.value("probe_http_duration_seconds", {"phase": "tls"}) > 0
    assert m.value("probe_ssl_earliest_cert_expiry") == pytest.approx(pki.valid.not_after.timestamp(), abs=1)
    assert m.value("probe_ssl_last_chain_expiry_timestamp_seconds") == pytest.approx(
        pki.valid.not_after.timestamp(), abs=1)
    assert m.value("probe_tls_version_info", {"version": "TLS 1.3"}) == 1


@pytest.mark.parametrize("cert_name, detail", [
    ("expired", "expired"),
    ("wrong_host", "match"),
    ("self_signed", "certificate"),
])
def test_https_bad_certificates_fail_as_tls(pki: Pki, cert_name: str, detail: str):
    with http_app(server_context(getattr(pki, cert_name))) as server:
        outcome = probe(Settings(tls_config=TlsClientSettings(ca_file=pki.ca.cert_path)), f"{server.url}/ok")
        assert reason(outcome) == Reason.TLS
        assert detail in outcome.failure.detail
        insecure = probe(Settings(tls_config=TlsClientSettings(insecure_skip_verify=True)),
                         f"{server.url}/ok")
        assert insecure.success, insecure.failure
        # expiry is still measured when verification is skipped
        expiry = insecure.metrics.value("probe_ssl_earliest_cert_expiry")
        assert expiry == pytest.approx(getattr(pki, cert_name).not_after.timestamp(), abs=1)


def test_server_name_overrides_the_url_host(pki: Pki):
    with http_app(server_context(pki.wrong_host)) as server:
        settings = Settings(tls_config=TlsClientSettings(ca_file=pki.ca.cert_path,
                                                         server_name="portal.example.gov.cn"))
        outcome = probe(settings, f"{server.url}/ok")
    assert outcome.success, outcome.failure


def test_host_header_is_also_the_tls_server_name(pki: Pki):
    with http_app(server_context(pki.wrong_host)) as server:
        settings = Settings(headers={"Host": "portal.example.gov.cn:443"},
                            tls_config=TlsClientSettings(ca_file=pki.ca.cert_path))
        outcome = probe(settings, f"{server.url}/ok")
    assert outcome.success, outcome.failure


def test_client_certificate_required(pki: Pki):
    with http_app(server_context(pki.valid, client_ca=pki.ca.cert_path)) as server:
        without = probe(Settings(tls_config=TlsClientSettings(ca_file=pki.ca.cert_path)), f"{server.url}/ok")
        assert reason(without) in (Reason.TLS, Reason.RESET)
        with_cert = Settings(tls_config=TlsClientSettings(ca_file=pki.ca.cert_path, cert_file=pki.client.cert,
                                                          key_file=pki.client.key))
        outcome = probe(with_cert, f"{server.url}/ok")
    assert outcome.success, outcome.failure


def test_fail_if_not_ssl(app):
    outcome = probe(Settings(fail_if_not_ssl=True), f"{app.url}/ok")
    assert reason(outcome) == Reason.TLS


def test_proxy_plain_and_connect(app, tls_app, pki: Pki):
    proxy = ForwardProxy()
    try:
        plain = probe(Settings(proxy_url=proxy.url), f"{app.url}/ok")
        assert plain.success, plain.failure
        secure = probe(Settings(proxy_url=proxy.url, tls_config=TlsClientSettings(ca_file=pki.ca.cert_path)),
                       f"{tls_app.url}/actuator/health")
        assert secure.success, secure.failure
        assert secure.metrics.value("probe_http_ssl") == 1
    finally:
        proxy.close()
    assert proxy.seen == [f"GET {app.url}/ok", f"CONNECT {tls_app.url.removeprefix('https://')}"]


@pytest.mark.parametrize("target, message", [
    ("intake.example.gov.cn/health", "http:// or https://"),
    ("ftp://intake/", "http:// or https://"),
    ("http://user:pw@intake/", "credentials"),
    ("http://intake:99999/", "valid URL"),
    ("http:///path", "no host"),
    ("http://intake/发票/health", "percent-encode"),
])
def test_bad_targets(target: str, message: str):
    with pytest.raises(ValueError, match=message):
        http.validate_target(target)


def test_internationalised_host_is_accepted():
    assert http.validate_target("https://税务.中国/api/health") == "https://税务.中国/api/health"


@pytest.mark.parametrize("raw, message", [
    ({"basic_auth": {"username": "u", "password": "a", "password_file": "/etc/hostname"}}, "not both"),
    ({"bearer_token": "t", "basic_auth": {"username": "u", "password": "p"}}, "not both"),
    ({"headers": {"Authorization": "x"}, "bearer_token": "t"}, "conflicts"),
    ({"headers": {"Bad Name": "x"}}, "valid HTTP token"),
    ({"headers": {"X": "a\r\nInjected: 1"}}, "line breaks"),
    ({"headers": {"X-Name": "广西"}}, "must be ASCII"),
    ({"fail_if_body_matches": ["("]}, "not a valid regular expression"),
    ({"proxy_url": "socks5://p:1080"}, "http:// URL"),
    ({"tls_config": {"ca_file": "/nonexistent/ca.pem"}}, "ca_file"),
    ({"tls_config": {"cert_file": "/etc/hostname"}}, "go together"),
    ({"max_response_time": "fast"}, "not a duration"),
    ({"valid_status_codes": [700]}, "599"),
    ({"follow_redirect": False}, "Extra inputs"),
])
def test_settings_errors_are_sentences(raw: dict, message: str):
    with pytest.raises(ValueError, match=message):
        Settings.model_validate(raw)
