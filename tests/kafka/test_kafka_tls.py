"""TLS settings reach kafka-python: a TLS-terminating relay in front of tansu.

tansu 0.6.0 cannot serve TLS itself (`--cert` and `--key` are rejected together), so the test puts
a small TLS relay (certificate from tests/support/certs.py) in front of a plaintext tansu that
advertises the relay's address; every Kafka request of the collector then crosses TLS.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from einvoice_exporter.collectors import kafka
from einvoice_exporter.outcome import Reason
from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from tests.support.certs import TestCA
from tests.support.procs import Proc, free_port

from .conftest import FakeClock, tansu_binary

pytestmark = pytest.mark.xdist_group("kafka")


class TlsRelay:
    """Accepts TLS on `port`, relays the plaintext to 127.0.0.1:`upstream`."""

    def __init__(self, port: int, upstream: int, cert: Path, key: Path) -> None:
        self.upstream = upstream
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(cert), str(key))
        self.listener = socket.create_server(("127.0.0.1", port))
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.listener.settimeout(0.1)
        while not self.stopped.is_set():
            try:
                raw, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._relay, args=(raw,), daemon=True).start()

    def _relay(self, raw: socket.socket) -> None:
        try:
            raw.settimeout(5)
            client = self.context.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()
            return
        upstream = socket.create_connection(("127.0.0.1", self.upstream))
        client.setblocking(False)
        upstream.setblocking(False)
        with client, upstream, selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ, upstream)
            selector.register(upstream, selectors.EVENT_READ, client)
            while not self.stopped.is_set():
                for key, _ in selector.select(0.1):
                    source = key.fileobj
                    assert isinstance(source, socket.socket)
                    try:
                        data = source.recv(65536)
                    except (ssl.SSLWantReadError, BlockingIOError):
                        continue
                    except OSError:
                        return
                    if not data:
                        return
                    key.data.setblocking(True)
                    key.data.sendall(data)
                    key.data.setblocking(False)
                # TLS may hold decrypted bytes the selector cannot see.
                while isinstance(client, ssl.SSLSocket) and client.pending():
                    with contextlib.suppress(ssl.SSLWantReadError):
                        upstream.setblocking(True)
                        upstream.sendall(client.recv(65536))
                        upstream.setblocking(False)

    def stop(self) -> None:
        self.stopped.set()
        self.listener.close()
        self.thread.join(5)


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int, TestCA]]:
    """(TLS port, plaintext port, CA) of a tansu reachable through the relay."""
    directory = tmp_path_factory.mktemp("kafka-tls")
    ca = TestCA(directory / "ca")
    leaf = ca.issue("kafka-broker", hosts=("127.0.0.1", "localhost"))
    plain, tls = free_port(), free_port()
    proc = Proc([tansu_binary(), "broker", "--listener-url", f"tcp://127.0.0.1:{plain}",
                 "--advertised-listener-url", f"tcp://127.0.0.1:{tls}"], directory / "tansu.log")
    relay = None
    try:
        proc.wait_port(plain)
        relay = TlsRelay(tls, plain, leaf.cert, leaf.key)
        yield tls, plain, ca
    finally:
        if relay is not None:
            relay.stop()
        proc.stop()


def _seed(tls_port: int, ca: TestCA) -> None:
    context = ssl.create_default_context(cafile=str(ca.cert_path))
    common = {"bootstrap_servers": f"127.0.0.1:{tls_port}", "security_protocol": "SSL",
              "ssl_context": context}
    admin = KafkaAdminClient(**common)
    producer = KafkaProducer(linger_ms=0, **common)
    consumer = KafkaConsumer(group_id="tls-push", enable_auto_commit=False, **common)
    try:
        admin.create_topics([NewTopic("tls-invoices", 1, 1)])
        for index in range(4):
            producer.send("tls-invoices", f"m{index}".encode(), partition=0).get(timeout=10)
        consumer.assign([TopicPartition("tls-invoices", 0)])
        consumer.commit({TopicPartition("tls-invoices", 0): OffsetAndMetadata(1, "", -1)})
    finally:
        consumer.close()
        producer.close()
        admin.close()


def test_lag_read_over_tls_with_ca_file(tls_broker: tuple[int, int, TestCA]) -> None:
    tls_port, _, ca = tls_broker
    _seed(tls_port, ca)
    check = kafka.Collector(kafka.Settings.model_validate(
        {"tls": {"ca_file": str(ca.cert_path)}, "group_filter": "^tls-"}), clock=FakeClock())
    try:
        outcome = check.run(f"127.0.0.1:{tls_port}", timeout=10)
    finally:
        check.close()
    assert outcome.success, outcome.failure
    assert outcome.metrics.value("kafka_consumergroup_lag", {
        "consumergroup": "tls-push", "topic": "tls-invoices", "partition": "0"}) == 3


def test_untrusted_certificate_is_tls(tls_broker: tuple[int, int, TestCA], tmp_path) -> None:
    tls_port, _, _ = tls_broker
    other = TestCA(tmp_path / "other-ca")
    check = kafka.Collector(kafka.Settings.model_validate({"tls": {"ca_file": str(other.cert_path)}}),
                            clock=FakeClock())
    try:
        outcome = check.run(f"127.0.0.1:{tls_port}", timeout=3)
    finally:
        check.close()
    assert outcome.failure is not None and outcome.failure.reason is Reason.TLS
    assert "CERTIFICATE_VERIFY_FAILED" in outcome.failure.detail


def test_tls_against_a_plaintext_listener_fails_in_time(tls_broker: tuple[int, int, TestCA]) -> None:
    _, plain_port, ca = tls_broker
    check = kafka.Collector(kafka.Settings.model_validate({"tls": {"ca_file": str(ca.cert_path)}}),
                            clock=FakeClock())
    try:
        outcome = check.run(f"127.0.0.1:{plain_port}", timeout=2)
    finally:
        check.close()
    assert outcome.failure is not None
    assert outcome.failure.reason in (Reason.TLS, Reason.TIMEOUT)
