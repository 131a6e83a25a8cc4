"""The runtime's own behaviour with scripted checks: concurrency, deadlines, caching, retries."""

from __future__ import annotations

import logging
import threading

import pytest
from einvoice_exporter.config import ConfigError, parse_config
from einvoice_exporter.outcome import Outcome, Reason
from einvoice_exporter.runtime import Runtime

from tests.exporter.conftest import (
    Factory,
    FakeClock,
    Gate,
    config_text,
    fail,
    make_config,
    ok,
    sample,
    scrape,
)
from tests.support.procs import wait_until

pytestmark = pytest.mark.xdist_group("exporter-timing")


def targets(n: int) -> list[str]:
    return [f"10.0.0.{i + 1}:80" for i in range(n)]


def test_checks_run_concurrently_so_a_scrape_lasts_about_the_slowest_check():
    # ten checks that can only finish together: run one after another, the barrier breaks
    barrier = threading.Barrier(10)

    def together(target: str, timeout: float) -> Outcome:
        barrier.wait(Gate.SAFETY)
        return ok(target, timeout)

    factory = Factory({t: together for t in targets(10)})
    runtime = Runtime(make_config(targets(10), timeout="5m"), check_factory=factory)
    try:
        text = scrape(runtime)
    finally:
        barrier.abort()
        runtime.close()
    assert all(sample(text, "einvoice_check_up", check=f"c{i}") == 1 for i in range(10))


def test_max_concurrency_bounds_the_checks_running_at_once(gate: Gate):
    config = make_config(targets(6), timeout="5m").model_copy(deep=True)
    config = config.model_copy(update={"global_": config.global_.model_copy(update={"max_concurrency": 2})})
    runtime = Runtime(config, check_factory=Factory({t: gate() for t in targets(6)}))
    texts: list[str] = []
    scraping = threading.Thread(target=lambda: texts.append(scrape(runtime)))
    try:
        scraping.start()
        wait_until(lambda: gate.inside == 2, timeout=30, what="two checks to be running")
        gate.open()
        scraping.join(Gate.SAFETY)
    finally:
        gate.open()
        runtime.close()
    assert gate.peak == 2 and gate.entered == 6
    assert all(sample(texts[0], "einvoice_check_up", check=f"c{i}") == 1 for i in range(6))


def test_check_past_its_timeout_is_reason_timeout_and_the_scrape_still_answers(gate: Gate):
    factory = Factory({"10.0.0.1:80": gate(), "10.0.0.2:80": ok})
    runtime = Runtime(make_config(targets(2), timeout="500ms"), check_factory=factory)
    try:
        text = scrape(runtime)  # returns although the first check never ends by itself
    finally:
        gate.open()
        runtime.close()
    assert sample(text, "einvoice_check_up", check="c0") == 0
    assert sample(text, "einvoice_check_failures_total", check="c0", reason="timeout") == 1
    assert sample(text, "einvoice_check_duration_seconds", check="c0") == pytest.approx(0.5)
    assert sample(text, "einvoice_check_up", check="c1") == 1
    assert sample(text, "einvoice_check_failures_total", check="c1", reason="timeout") == 0


def test_a_hung_run_is_not_started_twice_and_is_counted_while_it_overruns():
    started, release = threading.Event(), threading.Event()

    def hang(_target: str, _timeout: float) -> Outcome:
        started.set()
        release.wait(Gate.SAFETY)
        return Outcome()

    factory = Factory({"10.0.0.1:80": hang})
    runtime = Runtime(make_config(targets(1), timeout="200ms"), check_factory=factory)
    try:
        # on a loaded machine a run may be cancelled before a worker picks it up: scrape until one hangs
        wait_until(lambda: bool(scrape(runtime)) and started.is_set(), timeout=20, what="a run to hang")
        check = factory.built[0]
        second = scrape(runtime)
        third = scrape(runtime)
        assert check.runs_of("10.0.0.1:80") == 1, "a second run started while the first was in flight"
        assert sample(second, "einvoice_check_up", check="c0") == 0
        timeouts = sample(second, "einvoice_check_failures_total", check="c0", reason="timeout")
        assert timeouts is not None and timeouts >= 2
        assert sample(third, "einvoice_check_failures_total", check="c0", reason="timeout") == timeouts + 1
        assert sample(third, "einvoice_exporter_checks_overrunning") == 1
        assert sample(third, "probe_success", check="c0") == 0
        last = runtime.rows()[0].last
        assert last is not None and last.outcome.failure is not None
        detail = last.outcome.failure.detail
        assert detail == "the previous run is still going past its deadline (phase: running)"
        release.set()
        wait_until(lambda: sample(scrape(runtime), "einvoice_exporter_checks_overrunning") == 0, timeout=10,
                   what="the hung run to end")
        assert check.runs_of("10.0.0.1:80") >= 2, "once the hung run ended the check runs again"
    finally:
        release.set()
        runtime.close()


def test_scrape_timeout_header_minus_offset_shortens_the_check_timeout(gate: Gate):
    factory = Factory({"10.0.0.1:80": gate(), "10.0.0.2:80": ok})
    runtime = Runtime(make_config(targets(2), timeout="10s", extra_global="  scrape_timeout_offset: 500ms"),
                      check_factory=factory)
    try:
        text = scrape(runtime, scrape_timeout=1.5)
    finally:
        gate.open()
        runtime.close()
    given = dict(factory.built[0].calls)
    assert given["10.0.0.2:80"] <= 1.0, "the check was given more than scrape timeout minus offset"
    assert given["10.0.0.2:80"] > 0.5
    assert sample(text, "einvoice_check_failures_total", check="c0", reason="timeout") == 1
    assert sample(text, "einvoice_check_duration_seconds", check="c0") == pytest.approx(1.0)


def test_interval_serves_the_cached_result_until_the_next_run_is_due():
    clock = FakeClock()
    factory = Factory({"10.0.0.1:80": [fail(Reason.REFUSED), fail(Reason.REFUSED), ok]})
    runtime = Runtime(make_config(targets(1), interval="1m"), check_factory=factory, clock=clock)
    try:
        first = scrape(runtime)
        clock.advance(30)
        cached = scrape(runtime)
        clock.advance(31)
        second_run = scrape(runtime)
        clock.advance(59)
        cached_again = scrape(runtime)
        clock.advance(2)
        third_run = scrape(runtime)
    finally:
        runtime.close()
    check = factory.built[0]
    assert check.runs_of("10.0.0.1:80") == 3
    start = 1_800_000_000.0
    assert sample(first, "einvoice_check_last_run_timestamp_seconds", check="c0") == start
    assert sample(cached, "einvoice_check_last_run_timestamp_seconds", check="c0") == start
    assert sample(cached, "einvoice_check_failures_total", check="c0", reason="refused") == 1, \
        "serving the cached result must not count the failure again"
    assert sample(second_run, "einvoice_check_last_run_timestamp_seconds", check="c0") == start + 61
    assert sample(second_run, "einvoice_check_failures_total", check="c0", reason="refused") == 2
    assert sample(cached_again, "einvoice_check_up", check="c0") == 0
    assert sample(third_run, "einvoice_check_up", check="c0") == 1
    assert sample(third_run, "einvoice_check_failures_total", check="c0", reason="refused") == 2


def test_exception_escaping_a_check_is_reason_error_and_logged(caplog: pytest.LogCaptureFixture):
    def broken(_target: str, _timeout: float) -> Outcome:
        raise KeyError("bug in collector")

    runtime = Runtime(make_config(targets(2)), check_factory=Factory({"10.0.0.1:80": broken}))
    try:
        with caplog.at_level(logging.ERROR, logger="einvoice_exporter.runtime"):
            text = scrape(runtime)
    finally:
        runtime.close()
    assert sample(text, "einvoice_check_up", check="c0") == 0
    assert sample(text, "einvoice_check_failures_total", check="c0", reason="error") == 1
    assert sample(text, "einvoice_check_up", check="c1") == 1
    record = next(r for r in caplog.records if "raised" in r.getMessage())
    assert record.exc_info is not None and record.exc_info[0] is KeyError


def test_retries_happen_inside_the_timeout_and_show_as_attempts():
    script = {"10.0.0.1:80": [fail(Reason.RESET), fail(Reason.RESET), ok],
              "10.0.0.2:80": [fail(Reason.RESET), fail(Reason.REFUSED), ok]}
    runtime = Runtime(make_config(targets(2), retries=2), check_factory=Factory(script))
    try:
        recovered = scrape(runtime)
    finally:
        runtime.close()
    assert sample(recovered, "einvoice_check_up", check="c0") == 1
    assert sample(recovered, "einvoice_check_attempts", check="c0") == 3

    script = {"10.0.0.1:80": [fail(Reason.RESET), fail(Reason.REFUSED), ok]}
    runtime = Runtime(make_config(targets(1), retries=1), check_factory=Factory(script))
    try:
        exhausted = scrape(runtime)
    finally:
        runtime.close()
    assert sample(exhausted, "einvoice_check_up", check="c0") == 0
    assert sample(exhausted, "einvoice_check_attempts", check="c0") == 2
    assert sample(exhausted, "einvoice_check_failures_total", check="c0", reason="refused") == 1, \
        "the last attempt's reason is the run's reason"
    assert sample(exhausted, "einvoice_check_failures_total", check="c0", reason="reset") == 0


def test_every_reason_is_initialised_at_zero_and_items_are_all_listed():
    runtime = Runtime(make_config(targets(1)), check_factory=Factory())
    try:
        text = scrape(runtime)
    finally:
        runtime.close()
    for reason in Reason:
        assert sample(text, "einvoice_check_failures_total", check="c0", reason=reason.value) == 0
    items = [sample(text, "einvoice_item_info", item=f"{n:02d}") for n in range(1, 21)]
    assert items == [1.0] * 20
    name = "外网受理服务运行健康检查"
    assert sample(text, "einvoice_item_info", item="05", name=name, zone="extranet") == 1


def test_detail_metrics_get_the_identity_labels():
    runtime = Runtime(make_config(targets(1), item="02"), check_factory=Factory())
    try:
        text = scrape(runtime)
    finally:
        runtime.close()
    assert sample(text, "probe_success", item="02", zone="extranet", check="c0", target="10.0.0.1:80") == 1


class _CountingRuntime(Runtime):
    """Counts the scrapes waiting for a run, so a test knows both have joined before it ends."""

    waiting = 0

    def _settle(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        type(self).waiting += 1
        return super()._settle(*args, **kwargs)


def test_concurrent_scrapes_share_a_run_in_flight(gate: Gate):
    factory = Factory({"10.0.0.1:80": gate()})
    _CountingRuntime.waiting = 0
    runtime = _CountingRuntime(make_config(targets(1), timeout="5m"), check_factory=factory)
    texts: list[str] = []
    try:
        threads = [threading.Thread(target=lambda: texts.append(scrape(runtime))) for _ in range(2)]
        for thread in threads:
            thread.start()
        wait_until(lambda: _CountingRuntime.waiting == 2, timeout=30, what="both scrapes to wait for the run")
        gate.open()
        for thread in threads:
            thread.join(Gate.SAFETY)
    finally:
        gate.open()
        runtime.close()
    assert len(texts) == 2
    assert factory.built[0].runs_of("10.0.0.1:80") == 1
    assert all(sample(text, "einvoice_check_up", check="c0") == 1 for text in texts)


def test_reload_swaps_config_keeps_counters_and_closes_old_checks():
    configs = [make_config(targets(2)), make_config(targets(3))]
    factory = Factory({"10.0.0.1:80": fail(Reason.DNS)})
    runtime = Runtime(configs[0], check_factory=factory, loader=lambda: configs[1])
    try:
        scrape(runtime)
        old_check = factory.built[0]
        ok_, message = runtime.reload()
        assert ok_, message
        assert old_check.closed.is_set()
        text = scrape(runtime)
        assert sample(text, "einvoice_check_up", check="c2") == 1
        assert sample(text, "einvoice_check_failures_total", check="c0", reason="dns") == 2
        assert sample(text, "einvoice_exporter_config_last_reload_successful") == 1
    finally:
        runtime.close()


def test_bad_reload_keeps_the_old_config_running():
    def broken_loader():
        raise ConfigError(["new.yml: checks[0] (x).item: item 21 is not one of the contract's items"])

    factory = Factory()
    runtime = Runtime(make_config(targets(2)), check_factory=factory, loader=broken_loader)
    try:
        ok_, message = runtime.reload()
        assert not ok_
        assert "item 21" in message
        text = scrape(runtime)
        assert sample(text, "einvoice_exporter_config_last_reload_successful") == 0
        assert sample(text, "einvoice_check_up", check="c1") == 1
        assert not factory.built[0].closed.is_set()
        assert len(factory.built) == 1
    finally:
        runtime.close()


def test_old_check_is_closed_only_after_its_running_run_ends():
    started, release = threading.Event(), threading.Event()

    def wait_release(_target: str, _timeout: float) -> Outcome:
        started.set()
        release.wait(Gate.SAFETY)
        return Outcome()

    configs = [make_config(targets(1), timeout="200ms"), make_config(targets(1))]
    factory = Factory({"10.0.0.1:80": wait_release})
    runtime = Runtime(configs[0], check_factory=factory, loader=lambda: configs[1])
    try:
        wait_until(lambda: bool(scrape(runtime)) and started.is_set(), timeout=20, what="a run to start")
        assert runtime.reload()[0]
        old = factory.built[0]
        assert not old.closed.is_set(), "closed while a run was still using it"
        release.set()
        assert old.closed.wait(10)
    finally:
        release.set()
        runtime.close()


def test_degraded_follows_the_contract_class_of_the_reason_and_a_configured_override():
    """issue 22: a failing check is down (宕机) or degraded (卡顿); einvoice_check_degraded says which."""
    text = config_text(targets(4)).replace(
        "target: '10.0.0.4:80'}",
        "target: '10.0.0.4:80', failure_class: degraded,"
        " failure_class_reason: 'the target answers slowly under batch load; a timeout is a stall'}")
    script = {"10.0.0.1:80": fail(Reason.REFUSED), "10.0.0.2:80": fail(Reason.THRESHOLD),
              "10.0.0.4:80": fail(Reason.TIMEOUT)}
    runtime = Runtime(parse_config(text, "test.yml"), check_factory=Factory(script))
    try:
        scraped = scrape(runtime)
    finally:
        runtime.close()
    up = [sample(scraped, "einvoice_check_up", check=f"c{i}") for i in range(4)]
    degraded = [sample(scraped, "einvoice_check_degraded", check=f"c{i}") for i in range(4)]
    assert up == [0, 0, 1, 0]
    # refused -> down; threshold -> degraded; passing -> 0; timeout overridden to degraded.
    assert degraded == [0, 1, 0, 1]


def test_failure_class_override_needs_a_reason():
    base = config_text(targets(1))
    with pytest.raises(ConfigError, match="failure_class_reason"):
        parse_config(base.replace("target: '10.0.0.1:80'}",
                                  "target: '10.0.0.1:80', failure_class: degraded}"))
    with pytest.raises(ConfigError, match="failure_class"):
        parse_config(base.replace("target: '10.0.0.1:80'}",
                                  "target: '10.0.0.1:80', failure_class: slow, failure_class_reason: x}"))
    with pytest.raises(ConfigError, match="without failure_class"):
        parse_config(base.replace("target: '10.0.0.1:80'}",
                                  "target: '10.0.0.1:80', failure_class_reason: x}"))
