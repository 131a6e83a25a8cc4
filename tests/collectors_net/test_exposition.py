"""What the network collectors yield is valid Prometheus exposition: `promtool check metrics` finds
nothing wrong with the families of an HTTPS, a TCP and a DNS run merged as the runtime merges them."""

from __future__ import annotations

import subprocess

from einvoice_exporter.collectors import dns, http, tcp, tls
from einvoice_exporter.collectors._net import TlsClientSettings
from einvoice_exporter.outcome import merge_families
from prometheus_client import CollectorRegistry, generate_latest

from tests.support.procs import require_binary

from .conftest import Pki, server_context
from .dns_server import dns_responder
from .http_servers import http_app
from .servers import closed_port, serving, silent


class _Families:
    def __init__(self, results: list) -> None:
        self.results = results

    def collect(self):
        yield from merge_families(self.results)


def test_promtool_accepts_the_collectors_output(pki: Pki):
    promtool = require_binary("promtool")
    results = []
    with http_app(server_context(pki.valid)) as app:
        for name, path in (("ok", "/ok"), ("missing", "/missing")):
            outcome = http.build(http.Settings(tls_config=TlsClientSettings(ca_file=pki.ca.cert_path))).run(
                f"{app.url}{path}", 3)
            identity = {"item": "05", "zone": "extranet", "check": name, "target": app.url}
            results.append((identity, outcome.metrics))
    with serving(silent, tls=server_context(pki.valid)) as server:
        outcome = tls.build(tls.Settings(ca_file=pki.ca.cert_path)).run(server.address, 3)
        results.append(({"item": "01", "zone": "internet", "check": "cert", "target": server.address},
                        outcome.metrics))
    outcome = tcp.build(tcp.Settings(query_response=[tcp.QueryResponse(expect="x")])).run(
        f"127.0.0.1:{closed_port()}", 2)
    identity = {"item": "02", "zone": "extranet", "check": "vip", "target": "127.0.0.1:1"}
    results.append((identity, outcome.metrics))
    with dns_responder() as responder:
        outcome = dns.build(dns.Settings(resolver=responder.address)).run("portal.gx.example", 2)
    results.append(({"item": "01", "zone": "internet", "check": "dns", "target": "portal.gx.example"},
                    outcome.metrics))

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(results))
    text = generate_latest(registry)
    assert b'probe_http_duration_seconds{check="ok",item="05",phase="resolve"' in text
    assert b"probe_ssl_earliest_cert_expiry{" in text and b"probe_dns_answer_rrs{" in text
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip() == b"" and check.stderr.strip() == b""
