"""Fixtures of the network-probe tests: a test CA with its certificates, TLS server contexts."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.certs import CertFiles, TestCA, self_signed


@dataclass(frozen=True)
class Pki:
    ca: TestCA
    valid: CertFiles
    expired: CertFiles
    wrong_host: CertFiles
    self_signed: CertFiles
    client: CertFiles
    short: CertFiles
    """Valid, but expiring in 5 days."""


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory: Path = tmp_path_factory.mktemp("pki")
    ca = TestCA(directory)
    return Pki(
        ca=ca,
        valid=ca.issue("valid", hosts=("localhost", "127.0.0.1")),
        expired=ca.issue("expired", hosts=("localhost", "127.0.0.1"), days_valid=-2, days_before=30),
        wrong_host=ca.issue("wrong-host", hosts=("portal.example.gov.cn",)),
        self_signed=self_signed(directory, "selfsigned"),
        client=ca.issue("probe-client", hosts=("einvoice-exporter",), client=True),
        short=ca.issue("short", hosts=("localhost", "127.0.0.1"), days_valid=5),
    )


def server_context(cert: CertFiles, client_ca: Path | None = None) -> ssl.SSLContext:
    """A TLS server context; with `client_ca`, a client certificate is required."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert.cert), str(cert.key))
    if client_ca is not None:
        ctx.load_verify_locations(cafile=str(client_ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
