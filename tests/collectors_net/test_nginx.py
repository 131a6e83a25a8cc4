"""The http, tcp and tls collectors against a real nginx (Debian's package) on free ports, with a
config written by the test: plain and TLS listeners, an actuator-shaped health answer, redirects."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from einvoice_exporter.collectors import http, tcp, tls
from einvoice_exporter.collectors._net import TlsClientSettings
from einvoice_exporter.outcome import Reason

from tests.support.procs import Proc, free_port, require_binary

from .conftest import Pki

NGINX_CONF = """
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen 127.0.0.1:{http_port};
        listen 127.0.0.1:{https_port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        location = /actuator/health {{
            default_type application/vnd.spring-boot.actuator.v3+json;
            return 200 '{{"status":"UP","components":{{"db":{{"status":"UP"}},"ping":{{"status":"UP"}}}}}}';
        }}
        location = /old-health {{ return 301 /actuator/health; }}
        location = /maintenance {{ return 503 'under maintenance'; }}
        location = /login {{ return 401; }}
        location / {{ default_type text/html; return 200 '<html>广西增值税电子发票公共服务平台</html>'; }}
    }}
}}
"""


@dataclass(frozen=True)
class Nginx:
    http_url: str
    https_url: str
    https_address: str


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Nginx]:
    binary = require_binary("nginx", "/usr/sbin/nginx")
    root: Path = tmp_path_factory.mktemp("nginx")
    http_port, https_port = free_port(), free_port()
    (root / "nginx.conf").write_text(NGINX_CONF.format(
        root=root, http_port=http_port, https_port=https_port, cert=pki.valid.cert, key=pki.valid.key))
    proc = Proc([binary, "-p", str(root), "-c", str(root / "nginx.conf"), "-g", "daemon off;"],
                log=root / "stdout.log")
    try:
        proc.wait_port(http_port)
        proc.wait_port(https_port)
        yield Nginx(f"http://127.0.0.1:{http_port}", f"https://127.0.0.1:{https_port}",
                    f"127.0.0.1:{https_port}")
    finally:
        proc.stop()


def test_actuator_health_over_http(nginx: Nginx):
    settings = http.Settings.model_validate({
        "valid_status_codes": [200],
        "json_expect": [{"path": "status", "equals": "UP"}, {"path": "components.db.status", "equals": "UP"}],
    })
    outcome = http.build(settings).run(f"{nginx.http_url}/actuator/health", 3)
    assert outcome.success, outcome.failure
    assert outcome.metrics.value("probe_http_status_code") == 200
    assert outcome.metrics.value("probe_http_content_length") > 0


def test_redirect_and_body_over_https(nginx: Nginx, pki: Pki):
    settings = http.Settings(tls_config=TlsClientSettings(ca_file=pki.ca.cert_path),
                             fail_if_body_not_matches=["电子发票"], fail_if_not_ssl=True)
    home = http.build(settings).run(f"{nginx.https_url}/", 3)
    assert home.success, home.failure
    assert home.metrics.value("probe_http_ssl") == 1
    moved = http.build(http.Settings(tls_config=TlsClientSettings(ca_file=pki.ca.cert_path))).run(
        f"{nginx.https_url}/old-health", 3)
    assert moved.success, moved.failure
    assert moved.metrics.value("probe_http_redirects") == 1


def test_maintenance_and_login_statuses(nginx: Nginx):
    check = http.build(http.Settings())
    maintenance = check.run(f"{nginx.http_url}/maintenance", 3)
    login = check.run(f"{nginx.http_url}/login", 3)
    assert maintenance.failure is not None and maintenance.failure.reason == Reason.BAD_STATUS
    assert maintenance.metrics.value("probe_http_status_code") == 503
    assert login.failure is not None and login.failure.reason == Reason.AUTH


def test_tls_and_tcp_against_nginx(nginx: Nginx, pki: Pki):
    handshake = tls.build(tls.Settings(ca_file=pki.ca.cert_path)).run(nginx.https_address, 3)
    assert handshake.success, handshake.failure
    assert handshake.metrics.value("probe_ssl_earliest_cert_expiry") == pytest.approx(
        pki.valid.not_after.timestamp(), abs=1)
    port = nginx.http_url.rsplit(":", 1)[1]
    dialogue = tcp.build(tcp.Settings.model_validate({"query_response": [
        {"send": "HEAD / HTTP/1.0\r"}, {"send": "\r"}, {"expect": "^HTTP/1\\.[01] 200"},
    ]})).run(f"127.0.0.1:{port}", 3)
    assert dialogue.success, dialogue.failure
