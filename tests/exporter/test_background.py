"""Checks with an interval, refreshed in the background: scrapes serve, the scheduler runs, a result
too old becomes a stale failure, and the per-result rendering writes what encode(collect()) writes."""

from __future__ import annotations

import pytest
from einvoice_exporter.exposition import encode
from einvoice_exporter.outcome import Outcome, Reason
from einvoice_exporter.runtime import Runtime

from tests.exporter.conftest import Factory, FakeClock, Gate, config_text, make_config, ok, sample, scrape
from tests.support.procs import wait_until

pytestmark = pytest.mark.xdist_group("exporter-timing")
START = 1_800_000_000.0


def recorded(runtime: Runtime, runs: int, factory: Factory, target: str = "10.0.0.1:80") -> None:
    """Wait until `runs` runs of the target have been called and the last one is recorded."""
    def done() -> bool:
        row = runtime.rows()[0]
        return factory.built[0].runs_of(target) >= runs and row.last is not None \
            and not _in_flight(runtime)
    wait_until(done, timeout=30, what=f"run {runs} recorded")


def _in_flight(runtime: Runtime) -> bool:
    state = runtime._generation.states[0]  # the runtime's own state, read-only
    run = state.run
    return run is not None and run.result is None


def test_the_scheduler_runs_due_checks_and_scrapes_only_serve() -> None:
    clock = FakeClock(START)
    factory = Factory()
    runtime = Runtime(make_config(["10.0.0.1:80"], interval="1m"), check_factory=factory, clock=clock,
                      background=True)
    try:
        runtime.refresh()
        recorded(runtime, 1, factory)
        first = scrape(runtime)
        clock.advance(30)
        assert runtime.refresh() == pytest.approx(30, abs=1), "next run is due in 30 s"
        cached = scrape(runtime)
        clock.advance(31)  # due: but a scrape does not run it, the scheduler does
        served_late = scrape(runtime)
        assert factory.built[0].runs_of("10.0.0.1:80") == 1
        runtime.refresh()
        recorded(runtime, 2, factory)
        second = scrape(runtime)
    finally:
        runtime.close()
    for text in (first, cached, served_late):
        assert sample(text, "einvoice_check_last_run_timestamp_seconds", check="c0") == START
        assert sample(text, "einvoice_check_up", check="c0") == 1
    assert sample(second, "einvoice_check_last_run_timestamp_seconds", check="c0") == START + 61


def test_a_scrape_never_waits_for_a_background_run_and_an_old_result_turns_stale(gate: Gate) -> None:
    clock = FakeClock(START)
    factory = Factory({"10.0.0.1:80": [ok, gate(), ok]})
    runtime = Runtime(make_config(["10.0.0.1:80"], interval="1m", timeout="60s"), check_factory=factory,
                      clock=clock, background=True)
    try:
        runtime.refresh()
        recorded(runtime, 1, factory)
        clock.advance(61)
        runtime.refresh()  # the second run hangs at the gate
        wait_until(lambda: gate.inside == 1, timeout=30, what="second run inside the gate")
        during = scrape(runtime)
        clock.advance(3 * 60 - 61 + 1)  # the served result started 181 s ago: > 3 x 60 s
        stale = scrape(runtime)
        stale_again = scrape(runtime)
        row = runtime.rows()[0]
        gate.open()
        recorded(runtime, 2, factory)
        runtime.refresh()  # the second run's result started 120 s ago: stale too; a third is due
        recorded(runtime, 3, factory)
        fresh = scrape(runtime)
    finally:
        gate.open()
        runtime.close()
    assert sample(during, "einvoice_check_up", check="c0") == 1
    assert sample(during, "einvoice_check_last_run_timestamp_seconds", check="c0") == START
    assert sample(stale, "einvoice_check_up", check="c0") == 0
    assert sample(stale, "probe_success", check="c0") == 0
    assert sample(stale, "einvoice_check_last_run_timestamp_seconds", check="c0") == START
    assert sample(stale, "einvoice_check_failures_total", check="c0", reason="timeout") == 1
    assert sample(stale_again, "einvoice_check_failures_total", check="c0", reason="timeout") == 1, \
        "a stale result is counted once, not once per scrape"
    assert row.last is not None and row.last.outcome.failure is not None
    detail = row.last.outcome.failure.detail
    assert detail.startswith("stale: the last result started 181s ago, more than 3 x the interval of 60s")
    assert "a run has been going for" in detail
    assert sample(fresh, "einvoice_check_up", check="c0") == 1
    assert sample(fresh, "einvoice_check_last_run_timestamp_seconds", check="c0") == START + 181


def test_stale_after_intervals_is_configurable() -> None:
    clock = FakeClock(START)
    factory = Factory()
    config = make_config(["10.0.0.1:80"], interval="1m", extra_global="  stale_after_intervals: 10")
    runtime = Runtime(config, check_factory=factory, clock=clock, background=True)
    try:
        runtime.refresh()
        recorded(runtime, 1, factory)
        clock.advance(9 * 60)
        served = scrape(runtime)
        clock.advance(61)
        stale = scrape(runtime)
    finally:
        runtime.close()
    assert sample(served, "einvoice_check_up", check="c0") == 1
    assert sample(stale, "einvoice_check_up", check="c0") == 0


def test_the_first_result_is_awaited_by_the_scrape() -> None:
    factory = Factory()
    runtime = Runtime(make_config(["10.0.0.1:80"], interval="1m"), check_factory=factory,
                      clock=FakeClock(START), background=True)
    try:
        text = scrape(runtime)  # no scheduler pass yet: the scrape runs it and waits
    finally:
        runtime.close()
    assert sample(text, "einvoice_check_up", check="c0") == 1
    assert factory.built[0].runs_of("10.0.0.1:80") == 1


def test_probe_by_check_name_serves_the_background_result() -> None:
    clock = FakeClock(START)
    factory = Factory({"10.0.0.1:80": [lambda _t, _s: Outcome().fail(Reason.REFUSED, "scripted"), ok]})
    runtime = Runtime(make_config(["10.0.0.1:80", "10.0.0.2:80"], interval="1m"), check_factory=factory,
                      clock=clock, background=True)
    try:
        runtime.refresh()
        recorded(runtime, 1, factory)
        wait_until(lambda: all(row.last is not None for row in runtime.rows()), timeout=30,
                   what="both checks recorded")
        probes = [encode(runtime.probe(None, None, check="c0")).decode() for _ in range(3)]
    finally:
        runtime.close()
    assert factory.built[0].runs_of("10.0.0.1:80") == 1, "/probe?check= ran the check again"
    for text in probes:
        assert sample(text, "probe_success") == 0
        assert sample(text, "einvoice_check_up", check="c0") == 0
        assert sample(text, "einvoice_check_failures_total", check="c0", reason="refused") == 1


def test_the_scheduler_thread_refreshes_on_its_own_and_stops_on_close() -> None:
    factory = Factory()
    runtime = Runtime(make_config(["10.0.0.1:80"], interval="50ms"), check_factory=factory, background=True)
    runtime.start()
    try:
        wait_until(lambda: factory.built[0].runs_of("10.0.0.1:80") >= 3, timeout=30,
                   what="three background runs")
    finally:
        runtime.close()
    scheduler = runtime._scheduler
    assert scheduler is not None and not scheduler.is_alive()
    assert factory.built[0].closed.is_set()


def test_render_writes_what_the_generic_encoder_writes() -> None:
    def rich(_target: str, _timeout: float) -> Outcome:
        outcome = Outcome()
        outcome.metrics.gauge("redis_up", "Whether it answered", 1)
        outcome.metrics.counter("redis_commands_total", "Commands", 12, {"cmd": 'get "x"\\'})
        outcome.metrics.summary("redis_latency_percentiles_usec", "Latency", {"0.5": 1.0, "0.99": 2.5},
                                10.0, 4, {"cmd": "get"})
        return outcome.fail(Reason.THRESHOLD, "scripted")

    text = (config_text(["10.0.0.1:80", "10.0.0.2:80"], interval="1m")
            .replace("target: '10.0.0.2:80', interval: 1m}",
                     "target: '10.0.0.2:80', interval: 1m, failure_class: down,"
                     " failure_class_reason: scripted}"))
    from einvoice_exporter.config import parse_config

    factory = Factory({"10.0.0.1:80": rich, "10.0.0.2:80": rich})
    runtime = Runtime(parse_config(text, "test.yml"), check_factory=factory, clock=FakeClock(START),
                      background=True)
    try:
        runtime.refresh()
        wait_until(lambda: all(row.last is not None for row in runtime.rows()), timeout=30,
                   what="both checks recorded")
        for openmetrics in (False, True):
            for _ in range(2):  # the second time from the rendered fragments
                fast = runtime.render(None, openmetrics).decode()
                generic = encode(runtime.collect(None), openmetrics).decode()
                assert _without_scrape_duration(fast) == _without_scrape_duration(generic)
    finally:
        runtime.close()
    assert 'redis_commands_total{item="05",zone="extranet",check="c0",target="10.0.0.1:80",' \
           'system="public_service",cmd="get \\"x\\"\\\\"} 12.0' in fast


def _without_scrape_duration(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("einvoice_exporter_scrape_duration")]


def test_probe_exposition_writes_what_the_generic_encoder_writes() -> None:
    def rich(_target: str, _timeout: float) -> Outcome:
        outcome = Outcome()
        outcome.metrics.gauge("redis_up", "Whether it answered", 1)
        outcome.metrics.gauge("redis_connected_clients", "Clients", 3)
        outcome.metrics.counter("redis_commands_total", "Commands", 12, {"cmd": 'get "x"\\'})
        outcome.metrics.summary("redis_latency_percentiles_usec", "Latency", {"0.5": 1.0}, 10.0, 4,
                                {"cmd": "get"})
        return outcome

    runtime = Runtime(make_config(["10.0.0.1:80"]), check_factory=Factory({"10.0.0.1:80": rich}),
                      clock=FakeClock(START))
    try:
        for openmetrics in (False, True):
            fast = runtime.probe_exposition("fake", "10.0.0.1:80", openmetrics=openmetrics).decode()
            generic = encode(runtime.probe("fake", "10.0.0.1:80"), openmetrics).decode()
            # every probe counts once more and takes its own time: compare all but those values
            assert _shape(fast) == _shape(generic)
    finally:
        runtime.close()
    assert 'redis_commands_total{cmd="get \\"x\\"\\\\"} 12.0' in fast
    assert ('einvoice_check_up{item="05",zone="extranet",check="fake",target="10.0.0.1:80",'
            'system="public_service"} 1.0') in fast


def _shape(text: str) -> list[str]:
    timed = ("probe_duration_seconds", "einvoice_check_duration_seconds")
    return [line.rsplit(" ", 1)[0] if line.startswith(timed) else line for line in text.splitlines()]
