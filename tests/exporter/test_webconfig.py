"""TLS (incl. client certificates) and basic auth from an exporter-toolkit web-config file."""

from __future__ import annotations

import base64
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest
from einvoice_exporter.config import ConfigError
from einvoice_exporter.runtime import Runtime
from einvoice_exporter.webconfig import BasicAuth, load_web_config

from tests.exporter.conftest import Factory, http_get, make_config, write
from tests.support.certs import TestCA, self_signed


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory):
    directory = tmp_path_factory.mktemp("exporter-pki")
    ca = TestCA(directory)
    return {
        "dir": directory,
        "ca": ca,
        "server": ca.issue("server", hosts=("localhost", "127.0.0.1")),
        "client": ca.issue("prometheus", hosts=("prometheus.example",), client=True),
        "other_client": ca.issue("grafana", hosts=("grafana.example",), client=True),
        "stranger": self_signed(directory, "stranger", hosts=("prometheus.example",)),
    }


def runtime() -> Runtime:
    return Runtime(make_config(["10.0.0.1:80"]), check_factory=Factory())


def tls_get(url: str, ca: Path, cert=None) -> tuple[int, str]:
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(str(cert.cert), str(cert.key))
    with urllib.request.urlopen(url, context=context, timeout=10) as response:
        return response.status, response.read().decode()


def test_tls_serves_metrics_to_a_client_trusting_the_ca(serve, pki, tmp_path: Path):
    web = load_web_config(write(tmp_path / "web.yml", f"""
tls_server_config:
  cert_file: {pki['server'].cert}
  key_file: {pki['server'].key}
"""))
    served = serve(runtime(), web)
    status, body = tls_get(f"{served.url}/metrics", pki["ca"].cert_path)
    assert status == 200 and "einvoice_check_up" in body
    with pytest.raises(OSError):  # URLError or a reset: plain HTTP gets no answer from a TLS port
        urllib.request.urlopen(served.url.replace("https", "http") + "/metrics", timeout=5)


def test_relative_paths_are_relative_to_the_web_config_file(serve, pki):
    web = load_web_config(write(pki["dir"] / "web-relative.yml", """
tls_server_config: {cert_file: server.pem, key_file: server-key.pem}
"""))
    served = serve(runtime(), web)
    assert tls_get(f"{served.url}/-/healthy", pki["ca"].cert_path)[0] == 200


def test_require_and_verify_client_cert(serve, pki, tmp_path: Path):
    web = load_web_config(write(tmp_path / "web.yml", f"""
tls_server_config:
  cert_file: {pki['server'].cert}
  key_file: {pki['server'].key}
  client_ca_file: {pki['ca'].cert_path}
  client_auth_type: RequireAndVerifyClientCert
  min_version: TLS12
"""))
    served = serve(runtime(), web)
    url = f"{served.url}/metrics"
    assert tls_get(url, pki["ca"].cert_path, pki["client"])[0] == 200
    for cert in (None, pki["stranger"]):
        with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
            tls_get(url, pki["ca"].cert_path, cert)


def test_client_allowed_sans(serve, pki, tmp_path: Path):
    web = load_web_config(write(tmp_path / "web.yml", f"""
tls_server_config:
  cert_file: {pki['server'].cert}
  key_file: {pki['server'].key}
  client_ca_file: {pki['ca'].cert_path}
  client_auth_type: RequireAndVerifyClientCert
  client_allowed_sans: [prometheus.example]
"""))
    served = serve(runtime(), web)
    url = f"{served.url}/metrics"
    assert tls_get(url, pki["ca"].cert_path, pki["client"])[0] == 200
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError, http_client_errors())):
        tls_get(url, pki["ca"].cert_path, pki["other_client"])


def http_client_errors() -> type[Exception]:
    import http.client

    return http.client.HTTPException


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def test_basic_auth_on_every_endpoint(serve, tmp_path: Path):
    hashed = bcrypt.hashpw(b"scrape-secret", bcrypt.gensalt(4)).decode()
    web = load_web_config(write(tmp_path / "web.yml", f"basic_auth_users:\n  prometheus: '{hashed}'\n"))
    served = serve(runtime(), web, lifecycle=True)
    for path in ("/", "/metrics", "/probe?module=fake&target=10.0.0.1:80", "/-/healthy"):
        status, _, headers = http_get(served.url + path)
        assert status == 401, path
        assert headers["WWW-Authenticate"].startswith("Basic ")
        assert http_get(served.url + path, headers=basic("prometheus", "wrong"))[0] == 401
        assert http_get(served.url + path, headers=basic("nobody", "scrape-secret"))[0] == 401
        assert http_get(served.url + path, headers=basic("prometheus", "scrape-secret"))[0] == 200
    assert http_get(served.url + "/-/reload", method="POST")[0] == 401, "reload changes state: needs auth"


def test_reload_rotates_basic_auth_users_and_refuses_to_switch_tls(serve, pki, tmp_path: Path):
    def users(password: bytes) -> str:
        return f"basic_auth_users:\n  prometheus: '{bcrypt.hashpw(password, bcrypt.gensalt(4)).decode()}'\n"

    path = write(tmp_path / "web.yml", users(b"old-pass"))
    runtime = Runtime(make_config(["10.0.0.1:80"]), check_factory=Factory(),
                      loader=lambda: make_config(["10.0.0.1:80"]))
    served = serve(runtime, load_web_config(path), lifecycle=True, web_file=path)
    old, new = basic("prometheus", "old-pass"), basic("prometheus", "new-pass")
    assert http_get(f"{served.url}/metrics", headers=old)[0] == 200

    write(path, users(b"new-pass"))
    assert http_get(f"{served.url}/-/reload", method="POST", headers=old)[0] == 200
    assert http_get(f"{served.url}/metrics", headers=old)[0] == 401
    assert http_get(f"{served.url}/metrics", headers=new)[0] == 200

    tls = f"tls_server_config: {{cert_file: {pki['server'].cert}, key_file: {pki['server'].key}}}\n"
    write(path, users(b"third") + tls)
    status, body, _ = http_get(f"{served.url}/-/reload", method="POST", headers=new)
    assert status == 500
    assert f"{path}: switching TLS on or off needs a restart" in body
    _, metrics, _ = http_get(f"{served.url}/metrics", headers=new)
    assert "einvoice_exporter_config_last_reload_successful 0.0" in metrics, "the new users are not in force"


def test_configured_response_headers_are_sent(serve, tmp_path: Path):
    web = load_web_config(write(tmp_path / "web.yml", """
http_server_config:
  headers: {X-Frame-Options: deny, X-Content-Type-Options: nosniff}
"""))
    served = serve(runtime(), web)
    for path in ("/", "/metrics", "/nothing"):
        _, _, headers = http_get(served.url + path)
        assert headers["X-Frame-Options"] == "deny"
        assert headers["X-Content-Type-Options"] == "nosniff"


def test_bcrypt_verdicts_are_cached():
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(4))
    from pydantic import SecretStr

    auth = BasicAuth({"prometheus": SecretStr(hashed.decode())})
    header = basic("prometheus", "pw")["Authorization"]
    assert all(auth.check_header(header) == "prometheus" for _ in range(5))
    assert (auth.misses, auth.hits) == (1, 4)
    assert auth.check_header(basic("prometheus", "other")["Authorization"]) is None
    assert auth.misses == 2
    assert auth.check_header("Basic !!!not-base64") is None
    assert auth.check_header("Bearer abc") is None


@pytest.mark.parametrize(("text", "message"), [
    ("tls_server_config: {cert_file: a.pem, key_file: b.pem, client_auth: x}\n",
     "tls_server_config.client_auth: unknown key"),
    ("tls_server_config: {cert_file: /nonexistent/a.pem, key_file: /nonexistent/b.pem}\n",
     "tls_server_config: [Errno 2] No such file or directory"),
    ("basic_auth_users: {prometheus: plaintext}\n", "basic_auth_users.prometheus: must be a bcrypt hash"),
    ("tls_server_config: {cert_file: a.pem, key_file: b.pem, client_auth_type: Always}\n",
     "tls_server_config.client_auth_type: Input should be 'NoClientCert'"),
    ("tls_server_config: {cert_file: a.pem, key_file: b.pem, client_auth_type: RequireAndVerifyClientCert}\n",
     "needs client_ca_file"),
    ("tls_server_config: {cert_file: a.pem, key_file: b.pem, min_version: TLS13, max_version: TLS12}\n",
     "min_version TLS13 is above max_version TLS12"),
    ("tls_server_config: {cert_file: a.pem, key_file: b.pem, cipher_suites: [X]}\n",
     "cipher_suites: Python's ssl module uses OpenSSL's cipher names"),
    ("rate_limit: {interval: 1s, burst: 5}\n", "rate_limit: not supported"),
    ("tls_config: {}\n", "tls_config: unknown key"),
])
def test_web_config_errors_are_readable(tmp_path: Path, text: str, message: str):
    path = write(tmp_path / "web.yml", text)
    with pytest.raises(ConfigError) as caught:
        load_web_config(path)
    assert any(line.startswith(f"{path}: ") and message in line for line in caught.value.lines), \
        caught.value.lines


def test_plaintext_password_is_never_echoed(tmp_path: Path):
    path = write(tmp_path / "web.yml", "basic_auth_users: {prometheus: hunter2-not-hashed}\n")
    with pytest.raises(ConfigError) as caught:
        load_web_config(path)
    assert "hunter2-not-hashed" not in str(caught.value)
