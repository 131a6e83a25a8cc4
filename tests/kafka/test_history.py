"""Lag-in-seconds arithmetic and per-target bookkeeping, without a broker (injected clock and views)."""

from __future__ import annotations

from typing import Any

import pytest
from einvoice_exporter.collectors import CheckError, kafka
from einvoice_exporter.outcome import Outcome

from .conftest import FakeClock

pytestmark = pytest.mark.xdist_group("kafka")


def test_interpolates_between_the_points_around_the_offset() -> None:
    history = kafka.OffsetHistory(10)
    for t, offset in ((100, 0), (110, 100), (120, 300)):
        history.add(t, offset)
    assert history.time_at(50) == pytest.approx(105)
    assert history.time_at(200) == pytest.approx(115)
    assert history.time_at(300) == 120  # caught up with the newest point
    assert history.time_at(400) == 120


def test_flat_stretch_keeps_its_last_time() -> None:
    history = kafka.OffsetHistory(4)
    history.add(0, 10)
    for t in range(10, 1000, 10):
        history.add(t, 10)  # idle topic: only the first and last points of the stretch stay
    history.add(1000, 20)
    assert list(history.points) == [(0, 10), (990, 10), (1000, 20)]
    # A consumer at 10 has everything the log held until t=990.
    assert history.time_at(10) == 990


def test_offset_older_than_history_is_extrapolated_at_the_seen_rate() -> None:
    history = kafka.OffsetHistory(3)
    for t, offset in ((0, 0), (10, 10), (20, 20), (30, 30)):
        history.add(t, offset)  # size 3: (0, 0) falls out
    assert list(history.points) == [(10, 10), (20, 20), (30, 30)]
    assert history.time_at(5) == pytest.approx(5)


def test_single_point_cannot_date_an_older_offset() -> None:
    history = kafka.OffsetHistory(3)
    history.add(0, 10)
    assert history.time_at(5) is None


def test_log_end_going_back_restarts_history() -> None:
    history = kafka.OffsetHistory(5)
    history.add(0, 100)
    history.add(10, 200)
    history.add(20, 5)  # topic deleted and recreated
    assert list(history.points) == [(20, 5)]


class CountingSource(kafka.AdminSource):
    """Stands in for the brokers: one fixed view, counts admin clients opened and closed."""

    def __init__(self, settings: kafka.Settings, view: kafka.ClusterView) -> None:
        super().__init__(settings)
        self.view = view
        self.opened = 0
        self.closed = 0

    def open(self, servers: list[tuple[str, int]], timeout: float, made: list[Any]) -> Any:
        self.opened += 1
        source = self

        class Admin:
            def close(self) -> None:
                source.closed += 1

        return Admin()

    def read(self, admin: Any) -> kafka.ClusterView:
        return self.view

    def reach(self, servers: list[tuple[str, int]], timeout: float) -> None:
        pass


def test_least_recently_used_targets_are_forgotten() -> None:
    view = kafka.ClusterView(groups={}, log_end={("t", 0): 5}, partitions={"t": 1})
    settings = kafka.Settings()
    source = CountingSource(settings, view)
    check = kafka.Collector(settings, clock=FakeClock(), source=source, max_targets=2)
    for target in ("a:9092", "b:9092", "a:9092", "c:9092"):
        assert check.run(target, 1).success
    assert source.opened == 3 and source.closed == 1  # b was the least recently used
    assert check.run("b:9092", 1).success
    assert source.opened == 4 and source.closed == 2
    check.close()
    assert source.closed == 4


def test_committed_offset_beyond_log_end_counts_as_no_lag() -> None:
    # Happens for a moment after a topic is recreated; lag is never negative.
    view = kafka.ClusterView(
        groups={"g": kafka.GroupView("Stable", 2, {("t", 0): 9})},
        log_end={("t", 0): 3}, partitions={"t": 1})
    check = kafka.Collector(kafka.Settings(), clock=FakeClock())
    outcome = Outcome()
    check.judge(view, kafka._TargetState(), outcome)
    labels = {"consumergroup": "g", "topic": "t", "partition": "0"}
    assert outcome.metrics.value("kafka_consumergroup_lag", labels) == 0
    assert outcome.metrics.value("kafka_consumergroup_members", {"consumergroup": "g"}) == 2
    assert outcome.metrics.value("einvoice_kafka_consumergroup_state",
                                 {"consumergroup": "g", "state": "Stable"}) == 1


@pytest.mark.parametrize(("error", "reason"), [
    ("SaslAuthenticationFailedError", "auth"),
    ("GroupAuthorizationFailedError", "auth"),
    ("KafkaTimeoutError", "timeout"),
    ("KafkaConnectionError", "refused"),
    ("UnknownTopicOrPartitionError", "error"),
])
def test_kafka_python_errors_map_to_bounded_reasons(error: str, reason: str) -> None:
    import kafka.errors as kafka_errors  # kafka-python's; `kafka` here is the collector

    failure = kafka._classify(getattr(kafka_errors, error)())
    assert isinstance(failure, CheckError)
    assert failure.reason.value == reason
    assert error in failure.detail
