"""The one way to write a collector: registry, Deadline with an injected clock, CheckError, and the
community series the runtime adds to every check whatever happened."""

from __future__ import annotations

import subprocess
import threading

import pytest
from einvoice_exporter import schema
from einvoice_exporter.collectors import (
    KINDS,
    CheckError,
    Deadline,
    Progress,
    build_check,
    kinds,
    tracking,
)
from einvoice_exporter.config import ConfigError, parse_config
from einvoice_exporter.outcome import Outcome, Reason
from einvoice_exporter.runtime import Runtime

from tests.exporter.conftest import Factory, FakeClock, make_config, sample, scrape
from tests.support.procs import require_binary


def test_every_registered_kind_is_a_module_model_and_nothing_else_is():
    assert tuple(kinds()) == KINDS
    assert tuple(schema.MODULE_MODELS) == KINDS
    for name, kind in kinds().items():
        model = schema.MODULE_MODELS[name]
        assert model.model_fields[name].annotation is kind.settings
    with pytest.raises(ConfigError, match="kind 'ftp' is not known; use one of dns, tcp"):
        parse_config("modules:\n  m: {kind: ftp}\n", "x.yml")


def test_a_registered_kind_validates_targets_and_builds_from_its_own_settings():
    config = parse_config("modules:\n  web: {kind: http, http: {valid_status_codes: [200]}}\n"
                          "checks:\n  - {name: a, item: '05', module: web, target: 'http://127.0.0.1:1/'}\n",
                          "x.yml")
    check = build_check(config.modules["web"])
    assert type(check).__module__ == "einvoice_exporter.collectors.http"
    with pytest.raises(ConfigError, match="the target must be an http:// or https:// URL"):
        parse_config("modules:\n  web: {kind: http}\n"
                     "checks:\n  - {name: a, item: '05', module: web, target: 'ftp://x/'}\n", "x.yml")


def test_deadline_runs_on_the_injected_clock_and_records_the_phase():
    clock = FakeClock(100.0)
    progress = Progress()
    deadline = Deadline(5, clock=clock, progress=progress)
    assert deadline.remaining("connecting") == 5
    assert progress.phase == "connecting"
    clock.advance(3)
    assert deadline.remaining("reading the body") == 2
    assert deadline.elapsed() == 3 and not deadline.expired()
    assert progress.doing() == "reading the body"
    clock.advance(2)
    assert deadline.expired() and deadline.left(0.01) == 0.01
    with pytest.raises(CheckError) as raised:
        deadline.remaining("sending")
    assert raised.value.reason is Reason.TIMEOUT
    assert raised.value.detail == "deadline reached before sending"


def test_a_deadline_reports_to_the_progress_the_runtime_tracks():
    progress = Progress()
    with tracking(progress):
        Deadline(1).phase("waiting for the first byte", "request sent")
    assert progress.doing() == "waiting for the first byte (request sent)"
    outside = Deadline(1)
    outside.phase("connecting")
    assert progress.phase == "waiting for the first byte", "outside tracking a deadline keeps its own"


def test_check_error_escaping_run_is_the_checks_reason_not_a_bug(caplog: pytest.LogCaptureFixture):
    def refused(_target: str, _timeout: float) -> Outcome:
        raise CheckError(Reason.REFUSED, "connection refused during connect")

    runtime = Runtime(make_config(["10.0.0.1:80"]), check_factory=Factory({"10.0.0.1:80": refused}))
    try:
        text = scrape(runtime)
        row = runtime.rows()[0]
    finally:
        runtime.close()
    assert sample(text, "einvoice_check_failures_total", check="c0", reason="refused") == 1
    assert sample(text, "probe_success", check="c0") == 0
    assert sample(text, "probe_duration_seconds", check="c0") is not None
    assert row.last is not None and row.last.outcome.failure is not None
    assert row.last.outcome.failure.detail == "connection refused during connect"
    assert not [r for r in caplog.records if "collector bug" in r.getMessage()]


def test_timed_out_check_in_metrics_has_probe_series_and_says_which_phase_it_was_in():
    entered, release = threading.Event(), threading.Event()

    def stuck_in_body(_target: str, timeout: float) -> Outcome:
        deadline = Deadline(timeout)
        deadline.remaining("connecting")
        deadline.phase("reading the body", "65536 body bytes read")
        entered.set()
        release.wait(60)  # the target never sends the rest; released at teardown
        return Outcome()

    factory = Factory({"10.0.0.1:80": stuck_in_body})
    runtime = Runtime(make_config(["10.0.0.1:80", "10.0.0.2:80"], timeout="300ms"), check_factory=factory)
    try:
        text = scrape(runtime)
        row = runtime.rows()[0]
    finally:
        release.set()
        runtime.close()
    assert sample(text, "einvoice_check_failures_total", check="c0", reason="timeout") == 1
    assert sample(text, "probe_success", check="c0") == 0, "a timeout must still say probe_success 0"
    assert sample(text, "probe_duration_seconds", check="c0") == pytest.approx(0.3)
    assert sample(text, "probe_success", check="c1") == 1
    failure = row.last.outcome.failure if row.last else None
    assert failure is not None
    if entered.is_set():  # on a loaded machine the run may not have started at all: then no phase
        assert failure.detail == "no result within 0.3s (phase: reading the body, 65536 body bytes read)"


def test_cached_and_scripted_results_without_probe_series_get_them():
    def bare(_target: str, _timeout: float) -> Outcome:
        outcome = Outcome()
        outcome.metrics.gauge("redis_up", "Whether the instance answered", 1)
        return outcome

    clock = FakeClock()
    runtime = Runtime(make_config(["10.0.0.1:80"], interval="1m"),
                      check_factory=Factory({"10.0.0.1:80": bare}), clock=clock)
    try:
        first = scrape(runtime)
        clock.advance(10)
        cached = scrape(runtime)
    finally:
        runtime.close()
    for text in (first, cached):
        assert sample(text, "redis_up", check="c0") == 1
        assert sample(text, "probe_success", check="c0") == 1
        assert sample(text, "probe_duration_seconds", check="c0") is not None


def test_the_exposition_with_added_probe_series_passes_promtool():
    def bare(_target: str, _timeout: float) -> Outcome:
        outcome = Outcome()
        outcome.metrics.gauge("redis_up", "Whether the instance answered", 0)
        return outcome.fail(Reason.REFUSED, "connection refused")

    def complete(_target: str, _timeout: float) -> Outcome:
        outcome = Outcome()
        outcome.metrics.gauge("probe_duration_seconds", "How long the probe took in seconds", 0.01)
        outcome.metrics.gauge("probe_success", "Displays whether or not the probe was a success", 1)
        return outcome

    runtime = Runtime(make_config(["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]),
                      check_factory=Factory({"10.0.0.1:80": bare, "10.0.0.2:80": complete}))
    try:
        text = scrape(runtime)
    finally:
        runtime.close()
    assert text.count("# TYPE probe_success gauge") == 1
    assert [sample(text, "probe_success", check=f"c{i}") for i in range(3)] == [0, 1, 1]
    promtool = require_binary("promtool")
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                             timeout=60, check=False)
    assert checked.returncode == 0 and not checked.stdout.strip() and not checked.stderr.strip(), \
        checked.stdout + checked.stderr


def test_a_kinds_own_unanswered_series_is_added_when_the_run_could_not_say_it():
    entered, release = threading.Event(), threading.Event()

    def hung(_target: str, _timeout: float) -> Outcome:
        entered.set()
        release.wait(60)  # released at teardown
        return Outcome()

    config = parse_config("modules:\n  cache: {kind: redis, timeout: 300ms}\n"
                          "checks:\n  - {name: c0, item: '11', module: cache, target: '10.0.0.1:6379'}\n"
                          "  - {name: c1, item: '11', module: cache, target: '10.0.0.2:6379'}\n", "x.yml")
    answered = Outcome()
    answered.metrics.gauge("redis_up", "1 when the instance answered", 1)
    runtime = Runtime(config, check_factory=Factory({"10.0.0.1:6379": hung,
                                                     "10.0.0.2:6379": lambda _t, _s: answered}))
    try:
        text = scrape(runtime)
    finally:
        release.set()
        runtime.close()
    assert sample(text, "redis_up", check="c0") == 0, "a timed-out redis check still says redis_up 0"
    assert sample(text, "probe_success", check="c0") == 0
    assert sample(text, "redis_up", check="c1") == 1
