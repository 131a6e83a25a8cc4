"""Parity with blackbox_exporter 0.23 (Debian's prometheus-blackbox-exporter): both probe the same
nginx targets (static file with Last-Modified, HTTPS with a test CA, a redirect, an error status, a
refused port) and every series name and label name blackbox exposes must be in ours, with the same
values where the value is a fact of the target (content length, last-modified, address hash,
certificate fingerprint)."""

from __future__ import annotations

import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from einvoice_exporter.collectors import http
from einvoice_exporter.exposition import encode
from einvoice_exporter.outcome import merge_families
from prometheus_client.parser import text_string_to_metric_families

from tests.support.collectors import run_once
from tests.support.procs import Proc, free_port, require_binary, wait_until

from .conftest import Pki

NGINX_CONF = """
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 64; }}
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
        root {root}/www;
        location = /old {{ return 301 /index.html; }}
        location = /maintenance {{ return 503 'under maintenance'; }}
    }}
}}
"""

NOT_EXPOSED: dict[str, str] = {}
"""blackbox names we do not expose: none for the http prober."""


@dataclass(frozen=True)
class Site:
    http: str
    https: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Site]:
    root: Path = tmp_path_factory.mktemp("nginx-bb")
    (root / "www").mkdir()
    (root / "www" / "index.html").write_text("<html>电子发票</html>", encoding="utf-8")
    # nginx's workers drop root: let them read the file (pytest's temporary directories are 0700)
    top = Path(tempfile.gettempdir())
    for directory in [root / "www", root, *root.parents]:
        if directory == top or top not in directory.parents:
            break
        directory.chmod(0o755)
    (root / "www" / "index.html").chmod(0o644)
    http_port, https_port = free_port(), free_port()
    (root / "nginx.conf").write_text(NGINX_CONF.format(root=root, http_port=http_port, https_port=https_port,
                                                       cert=pki.valid.cert, key=pki.valid.key))
    proc = Proc([require_binary("nginx", "/usr/sbin/nginx"), "-p", str(root), "-c", str(root / "nginx.conf"),
                 "-g", "daemon off;"], log=root / "stdout.log")
    try:
        proc.wait_port(http_port)
        proc.wait_port(https_port)
        yield Site(f"http://127.0.0.1:{http_port}", f"https://127.0.0.1:{https_port}")
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def blackbox(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[str]:
    root: Path = tmp_path_factory.mktemp("blackbox")
    (root / "blackbox.yml").write_text(
        "modules:\n"
        "  http_2xx:\n"
        "    prober: http\n"
        "    timeout: 5s\n"
        "    http:\n"
        "      preferred_ip_protocol: ip4\n"
        f"      tls_config: {{ca_file: '{pki.ca.cert_path}'}}\n", encoding="utf-8")
    port = free_port()
    proc = Proc([require_binary("prometheus-blackbox-exporter"), f"--config.file={root / 'blackbox.yml'}",
                 f"--web.listen-address=127.0.0.1:{port}"], log=root / "blackbox.log")
    try:
        proc.wait_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


def series(text: str) -> dict[str, dict[frozenset[tuple[str, str]], float]]:
    found: dict[str, dict[frozenset[tuple[str, str]], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("probe_"):
                found.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return found


def theirs(blackbox: str, target: str) -> dict[str, dict[frozenset[tuple[str, str]], float]]:
    url = f"{blackbox}/probe?module=http_2xx&target={urllib.parse.quote(target, safe='')}"
    with urllib.request.urlopen(url, timeout=15) as answer:
        return series(answer.read().decode())


def ours(target: str, pki: Pki) -> dict[str, dict[frozenset[tuple[str, str]], float]]:
    settings = http.Settings.model_validate({"tls_config": {"ca_file": str(pki.ca.cert_path)}})
    outcome = run_once(http, settings, target, 5)
    return series(encode(merge_families([({}, outcome.metrics)])).decode())


FACTS = ("probe_http_content_length", "probe_http_last_modified_timestamp_seconds", "probe_ip_addr_hash",
         "probe_http_status_code", "probe_http_redirects", "probe_http_ssl", "probe_success",
         "probe_ssl_earliest_cert_expiry", "probe_http_uncompressed_body_length")


@pytest.mark.parametrize("path", ["/index.html", "/old", "/maintenance", "https:/index.html", "refused"])
def test_every_blackbox_series_with_the_same_facts(site: Site, blackbox: str, pki: Pki, path: str) -> None:
    if path == "refused":
        target = f"http://127.0.0.1:{free_port()}/"
    elif path.startswith("https:"):
        target = site.https + path.removeprefix("https:")
    else:
        target = site.http + path
    wait_until(lambda: bool(theirs(blackbox, site.http + "/index.html")), what="blackbox answers")
    reference, mine = theirs(blackbox, target), ours(target, pki)
    problems = []
    for name, samples in sorted(reference.items()):
        if name in NOT_EXPOSED:
            continue
        if name not in mine:
            problems.append(f"{name}: missing")
            continue
        their_labels = {key for labels in samples for key, _ in labels}
        my_labels = {key for labels in mine[name] for key, _ in labels}
        if their_labels - my_labels:
            problems.append(f"{name}: lacks {sorted(their_labels - my_labels)}")
        if name in FACTS and sorted(samples.values()) != sorted(mine[name].values()):
            problems.append(f"{name}: {sorted(mine[name].values())}, blackbox {sorted(samples.values())}")
    if "probe_ssl_last_chain_info" in reference:
        [their_leaf] = reference["probe_ssl_last_chain_info"]
        [my_leaf] = mine["probe_ssl_last_chain_info"]
        assert dict(my_leaf)["fingerprint_sha256"] == dict(their_leaf)["fingerprint_sha256"]
        assert dict(my_leaf)["subjectalternative"] == dict(their_leaf)["subjectalternative"]
    assert problems == [], problems
    if path == "/index.html":  # a static file: nginx sends Last-Modified
        assert "probe_http_last_modified_timestamp_seconds" in mine
        assert mine["probe_http_status_code"] == {frozenset(): 200.0}
    if path.startswith("https:"):
        assert "probe_ssl_last_chain_info" in reference and "probe_ssl_last_chain_info" in mine
    if path == "refused":
        assert mine["probe_http_content_length"] == {frozenset(): 0.0}

