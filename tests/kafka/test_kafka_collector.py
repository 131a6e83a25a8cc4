"""The kafka collector against a real Kafka-protocol broker (tansu), with the clock injected."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from einvoice_exporter.collectors import kafka
from einvoice_exporter.outcome import Reason
from einvoice_exporter.schema import ExporterConfig
from pydantic import ValidationError

from tests.support.procs import free_port

from .conftest import Broker, FakeClock, start_tansu

pytestmark = pytest.mark.xdist_group("kafka")


def collector(clock: FakeClock, **settings: object) -> kafka.Collector:
    return kafka.Collector(kafka.Settings.model_validate(settings), clock=clock)


def test_lag_per_partition_with_kafka_exporter_names(broker: Broker, clock: FakeClock) -> None:
    topic = broker.topic("lag-invoices", partitions=3)
    broker.produce(topic, 0, 5)
    broker.produce(topic, 1, 2)
    broker.commit("lag-push", {(topic, 0): 2, (topic, 1): 2})
    check = collector(clock, group_filter="^lag-", topic_filter="^lag-")
    try:
        outcome = check.run(broker.bootstrap, timeout=10)
    finally:
        check.close()
    assert outcome.success, outcome.failure
    ms = outcome.metrics
    p = {"topic": topic}
    assert ms.value("kafka_topic_partition_current_offset", {**p, "partition": "0"}) == 5
    assert ms.value("kafka_topic_partition_current_offset", {**p, "partition": "1"}) == 2
    assert ms.value("kafka_topic_partition_current_offset", {**p, "partition": "2"}) == 0
    assert ms.value("kafka_topic_partitions", p) == 3
    g = {"consumergroup": "lag-push", **p}
    assert ms.value("kafka_consumergroup_current_offset", {**g, "partition": "0"}) == 2
    assert ms.value("kafka_consumergroup_lag", {**g, "partition": "0"}) == 3
    assert ms.value("kafka_consumergroup_lag", {**g, "partition": "1"}) == 0
    assert ms.value("kafka_consumergroup_lag", {**g, "partition": "2"}) is None  # never committed
    assert ms.value("kafka_consumergroup_lag_sum", g) == 3
    assert ms.value("kafka_consumergroup_current_offset_sum", g) == 4
    states = {labels["state"]: v for labels, v in _samples(ms, "einvoice_kafka_consumergroup_state")}
    assert set(states) == set(kafka.GROUP_STATES)
    assert sum(states.values()) == 1
    assert states["Unknown"] == 1  # what tansu's ListGroups reports for a group with no members
    assert ms.value("einvoice_kafka_consumergroup_stalled", {"consumergroup": "lag-push"}) == 0
    # kafka_exporter's broker and placement series (one tansu broker: leader, replica and ISR itself)
    assert ms.value("kafka_brokers") == 1
    info = _samples(ms, "kafka_broker_info")
    assert [labels["address"] for labels, _ in info] == [broker.bootstrap]
    leader = int(info[0][0]["id"])
    for partition in ("0", "1", "2"):
        part = {**p, "partition": partition}
        assert ms.value("kafka_topic_partition_oldest_offset", part) == 0
        assert ms.value("kafka_topic_partition_leader", part) == leader
        assert ms.value("kafka_topic_partition_replicas", part) == 1
        assert ms.value("kafka_topic_partition_in_sync_replica", part) == 1
        assert ms.value("kafka_topic_partition_leader_is_preferred", part) == 1
        assert ms.value("kafka_topic_partition_under_replicated_partition", part) == 0


def test_lag_in_seconds_interpolated_from_offset_history(broker: Broker, clock: FakeClock) -> None:
    topic = broker.topic("secs-invoices")
    check = collector(clock, group_filter="^secs-", topic_filter="^secs-", max_lag_seconds="5s")
    labels = {"consumergroup": "secs-push", "topic": topic, "partition": "0"}
    try:
        broker.produce(topic, 0, 5)
        broker.commit("secs-push", {(topic, 0): 2})
        first = check.run(broker.bootstrap, timeout=10)
        # One history point cannot date offset 2: the series is left out rather than a wrong 0.
        assert first.success, first.failure
        assert first.metrics.value("kafka_consumergroup_group_lag_seconds", labels) is None

        clock.advance(10)
        broker.produce(topic, 0, 5)  # log end 5 at t0, 10 at t0+10
        broker.commit("secs-push", {(topic, 0): 7})
        second = check.run(broker.bootstrap, timeout=10)
        # Log end was 7 at t0 + 2/5*10 = t0+4, so the next message to consume is 6 s old.
        assert second.metrics.value("kafka_consumergroup_group_lag_seconds", labels) == pytest.approx(6)
        assert second.metrics.value("kafka_consumergroup_group_max_lag_seconds",
                                    {"consumergroup": "secs-push"}) == pytest.approx(6)
        assert second.failure is not None and second.failure.reason is Reason.THRESHOLD
        assert "max_lag_seconds" in second.failure.detail

        clock.advance(10)
        broker.commit("secs-push", {(topic, 0): 10})
        third = check.run(broker.bootstrap, timeout=10)
        assert third.metrics.value("kafka_consumergroup_group_lag_seconds", labels) == 0
        assert third.success
    finally:
        check.close()


def test_stalled_consumer_detected_after_stall_after(broker: Broker, clock: FakeClock) -> None:
    topic = broker.topic("stall-invoices")
    broker.produce(topic, 0, 4)
    broker.commit("stall-push", {(topic, 0): 1})
    check = collector(clock, group_filter="^stall-", topic_filter="^stall-", stall_after="1m")
    group = {"consumergroup": "stall-push"}
    try:
        assert check.run(broker.bootstrap, timeout=10).success
        clock.advance(59)
        not_yet = check.run(broker.bootstrap, timeout=10)
        assert not_yet.success
        assert not_yet.metrics.value("einvoice_kafka_consumergroup_stalled", group) == 0
        clock.advance(2)
        stalled = check.run(broker.bootstrap, timeout=10)
        assert stalled.metrics.value("einvoice_kafka_consumergroup_stalled", group) == 1
        assert stalled.failure is not None and stalled.failure.reason is Reason.STATE
        assert "stall-push" in stalled.failure.detail

        broker.commit("stall-push", {(topic, 0): 2})  # moving again, still behind
        clock.advance(5)
        moving = check.run(broker.bootstrap, timeout=10)
        assert moving.success
        assert moving.metrics.value("einvoice_kafka_consumergroup_stalled", group) == 0
    finally:
        check.close()


def test_caught_up_group_is_not_stalled(broker: Broker, clock: FakeClock) -> None:
    topic = broker.topic("idle-invoices")
    broker.produce(topic, 0, 3)
    broker.commit("idle-push", {(topic, 0): 3})
    check = collector(clock, group_filter="^idle-", topic_filter="^idle-", stall_after="1m")
    try:
        check.run(broker.bootstrap, timeout=10)
        clock.advance(3600)
        outcome = check.run(broker.bootstrap, timeout=10)
    finally:
        check.close()
    assert outcome.success
    assert outcome.metrics.value("einvoice_kafka_consumergroup_stalled", {"consumergroup": "idle-push"}) == 0


def test_max_lag_with_per_group_override(broker: Broker, clock: FakeClock) -> None:
    topic = broker.topic("thr-invoices", partitions=2)
    broker.produce(topic, 0, 3)
    broker.produce(topic, 1, 3)
    broker.commit("thr-batch", {(topic, 0): 0, (topic, 1): 0})  # lag 6
    broker.commit("thr-online", {(topic, 0): 2, (topic, 1): 2})  # lag 2
    lenient = collector(clock, group_filter="^thr-", topic_filter="^thr-", max_lag=5,
                        overrides=[{"group": "batch", "max_lag": 100}])
    strict = collector(clock, group_filter="^thr-", topic_filter="^thr-", max_lag=5)
    online_only = collector(clock, group_filter="^thr-", group_exclude="batch", topic_filter="^thr-",
                            max_lag=1)
    try:
        assert lenient.run(broker.bootstrap, timeout=10).success
        failed = strict.run(broker.bootstrap, timeout=10)
        assert failed.failure is not None and failed.failure.reason is Reason.THRESHOLD
        assert "thr-batch" in failed.failure.detail and "6" in failed.failure.detail
        online = online_only.run(broker.bootstrap, timeout=10)
        assert online.failure is not None and "thr-online" in online.failure.detail
    finally:
        for check in (lenient, strict, online_only):
            check.close()


def test_group_and_topic_filters(broker: Broker, clock: FakeClock) -> None:
    kept = broker.topic("flt-invoices")
    dropped = broker.topic("flt-audit")
    for topic in (kept, dropped):
        broker.produce(topic, 0, 2)
    broker.commit("flt-push", {(kept, 0): 1, (dropped, 0): 0})
    broker.commit("flt-push-test", {(kept, 0): 0})
    broker.commit("other-app", {(kept, 0): 0})
    check = collector(clock, group_filter="^flt-", group_exclude="-test$",
                      topic_filter="^flt-", topic_exclude="audit")
    try:
        outcome = check.run(broker.bootstrap, timeout=10)
    finally:
        check.close()
    groups = _values(outcome.metrics, "kafka_consumergroup_lag", "consumergroup")
    topics = _values(outcome.metrics, "kafka_topic_partition_current_offset", "topic")
    assert groups == {"flt-push"}
    assert topics == {kept}
    assert _values(outcome.metrics, "kafka_consumergroup_lag", "topic") == {kept}


def test_internal_topics_excluded_by_default(broker: Broker, clock: FakeClock) -> None:
    internal = broker.topic("__int-offsets")
    broker.produce(internal, 0, 1)
    check = collector(clock)
    try:
        outcome = check.run(broker.bootstrap, timeout=10)
    finally:
        check.close()
    topics = _values(outcome.metrics, "kafka_topic_partition_current_offset", "topic")
    assert internal not in topics
    assert topics  # the other tests' topics are there


def started_and_alive(before: set[threading.Thread]) -> list[str]:
    """Names of the threads started since `before` that are still running."""
    return [thread.name for thread in threading.enumerate() if thread not in before and thread.is_alive()]


def test_refused_port_is_a_reason_not_an_exception(clock: FakeClock) -> None:
    check = collector(clock)
    before = set(threading.enumerate())
    outcome = check.run(f"127.0.0.1:{free_port()}", timeout=2)
    check.close()
    assert outcome.failure is not None and outcome.failure.reason is Reason.REFUSED
    assert started_and_alive(before) == []


def test_silent_server_times_out_within_the_timeout(clock: FakeClock) -> None:
    # Accepts TCP (kernel backlog) but never speaks Kafka.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        check = collector(clock)
        before = set(threading.enumerate())
        started = time.monotonic()
        outcome = check.run(f"127.0.0.1:{silent.getsockname()[1]}", timeout=1.5)
        elapsed = time.monotonic() - started
        check.close()
    assert outcome.failure is not None and outcome.failure.reason is Reason.TIMEOUT
    assert elapsed < 1.5 + 10, "the run ignored its timeout"
    # only the threads this run started count: another test's thread may end meanwhile
    # only the threads this run started count: another test's thread may end meanwhile
    assert started_and_alive(before) == [], "kafka-python's IO thread was not stopped"


def test_unresolvable_host_is_dns(clock: FakeClock) -> None:
    check = collector(clock)
    outcome = check.run("kafka.invalid:9092", timeout=2)
    check.close()
    assert outcome.failure is not None and outcome.failure.reason is Reason.DNS


def test_broker_dying_between_runs(tmp_path, clock: FakeClock) -> None:
    proc, port = start_tansu(tmp_path / "tansu.log")
    check = collector(clock)
    try:
        assert check.run(f"127.0.0.1:{port}", timeout=5).success
        proc.kill()
        outcome = check.run(f"127.0.0.1:{port}", timeout=2)
        assert outcome.failure is not None and outcome.failure.reason is Reason.REFUSED
    finally:
        check.close()
        proc.stop()


def test_second_bootstrap_server_used_when_first_is_down(broker: Broker, clock: FakeClock) -> None:
    check = collector(clock)
    try:
        outcome = check.run(f"127.0.0.1:{free_port()},{broker.bootstrap}", timeout=5)
    finally:
        check.close()
    assert outcome.success, outcome.failure


def test_config_validation_names_the_key(tmp_path) -> None:
    base = {"modules": {"k": {"kind": "kafka", "kafka": {}}},
            "checks": [{"name": "lag", "item": "13", "module": "k", "target": "kafka1:9092,kafka2:9092"}]}
    config = ExporterConfig.model_validate(base)
    assert config.checks[0].target == "kafka1:9092,kafka2:9092"
    with pytest.raises(ValidationError, match="is not host:port"):
        ExporterConfig.model_validate({**base, "checks": [{**base["checks"][0], "target": "kafka1"}]})
    with pytest.raises(ValidationError, match="group_filter"):
        kafka.Settings.model_validate({"group_filter": "(("})
    with pytest.raises(ValidationError, match="password or password_file"):
        kafka.Settings.model_validate({"sasl": {"mechanism": "PLAIN", "username": "mon"}})
    with pytest.raises(ValidationError, match="mechanism"):
        kafka.Settings.model_validate({"sasl": {"mechanism": "GSSAPI", "username": "u", "password": "p"}})
    secret = tmp_path / "kafka-password"
    secret.write_text("s3cret\n")
    settings = kafka.Settings.model_validate(
        {"sasl": {"mechanism": "SCRAM-SHA-512", "username": "mon", "password_file": str(secret)}})
    configs = kafka.AdminSource(settings)._configs(5)
    assert configs["security_protocol"] == "SASL_PLAINTEXT"
    assert configs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert configs["sasl_plain_password"] == "s3cret"
    assert "s3cret" not in repr(settings)


def _samples(ms, name: str) -> list[tuple[dict[str, str], float]]:
    for family, _type, _doc, samples in ms.items():
        if family == name:
            return samples
    return []


def _values(ms, name: str, label: str) -> set[str]:
    return {labels[label] for labels, _ in _samples(ms, name)}
