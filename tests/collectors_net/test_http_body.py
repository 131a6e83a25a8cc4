"""The http collector streams bodies: bounded memory whatever the size, facts kept when the limit is
exceeded, regexes matched across the pieces the body arrives in."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

import pytest
from einvoice_exporter.collectors import http
from einvoice_exporter.collectors.http import JsonExpect, Settings
from einvoice_exporter.outcome import Outcome, Reason

from tests.support.collectors import reason, run_once

from .http_servers import http_app
from .servers import serving, silent, stalls_mid_body

MIB = 1024 * 1024


def probe(settings: Settings, target: str, timeout: float = 20.0) -> Outcome:
    return run_once(http, settings, target, timeout)


@pytest.fixture(scope="module")
def app() -> Iterator:
    with http_app() as server:
        yield server


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
def test_over_the_limit_reports_what_was_seen_and_fails_with_the_reason(app, framing: str):
    limit = 100_000
    outcome = probe(Settings(body_size_limit=limit), f"{app.url}/stream?size=300000&framing={framing}")
    m = outcome.metrics
    assert reason(outcome) == Reason.BAD_CONTENT
    assert outcome.failure is not None and "exceeds body_size_limit of 100000 bytes" in outcome.failure.detail
    assert m.value("probe_http_status_code") == 200, "a 200 arrived: say so"
    assert m.value("probe_http_version") == 1.1
    if framing == "length":
        # announced too long: not read at all, the announced length is reported
        assert m.value("probe_http_content_length") == 300_000
        assert m.value("probe_http_uncompressed_body_length") == 0
    else:
        assert m.value("probe_http_uncompressed_body_length") == limit
        assert f"stopped after {limit} bytes" in outcome.failure.detail


@pytest.mark.parametrize("framing", ["length", "chunked", "close"])
def test_a_body_exactly_at_the_limit_is_not_over_it(app, framing: str):
    outcome = probe(Settings(body_size_limit=100_000), f"{app.url}/stream?size=100000&framing={framing}")
    assert outcome.success, outcome.failure
    assert outcome.metrics.value("probe_http_uncompressed_body_length") == 100_000


@pytest.mark.parametrize("at", [0, 65_530, 131_070, 299_990])
def test_regexes_match_across_the_pieces_the_body_arrives_in(app, at: int):
    url = f"{app.url}/stream?size=300000&framing=chunked&needle=NEEDLE-42&at={at}"
    found = probe(Settings(fail_if_body_not_matches=[r"NEEDLE-\d+"]), url)
    assert found.success, found.failure
    bad = probe(Settings(fail_if_body_matches=[r"NEEDLE-4\d"]), url)
    assert reason(bad) == Reason.BAD_CONTENT
    assert bad.metrics.value("probe_failed_due_to_regex") == 1
    absent = probe(Settings(fail_if_body_not_matches=[r"NEEDLE-43"]), url)
    assert reason(absent) == Reason.BAD_CONTENT and absent.metrics.value("probe_failed_due_to_regex") == 1


def test_anchors_keep_their_meaning_over_a_streamed_body(app):
    url = f"{app.url}/stream?size=300000&framing=close&needle=MID&at=150000"
    assert probe(Settings(fail_if_body_not_matches=[r"\Axxx", r"xxx\Z", r"xMIDx"]), url).success
    # `^`/`$` must not match where a window was cut, only at the body's start and end
    assert reason(probe(Settings(fail_if_body_not_matches=[r"^MID"]), url)) == Reason.BAD_CONTENT
    assert reason(probe(Settings(fail_if_body_not_matches=[r"MID$"]), url)) == Reason.BAD_CONTENT
    assert probe(Settings(fail_if_body_matches=[r"x$\n?MID"]), url).success


def test_memory_stays_bounded_by_the_chunk_not_by_the_body(app):
    """64 MiB through regexes and a limit of 1 GiB: traced memory grows by well under 2 MiB."""
    settings = Settings(body_size_limit=1024 * MIB, fail_if_body_not_matches=["NEEDLE"],
                        fail_if_body_matches=["java\\.lang\\.\\w+Exception"])
    url = f"{app.url}/stream?size={64 * MIB}&framing=chunked&needle=NEEDLE&at={60 * MIB}"
    check = http.build(settings)
    tracemalloc.start()
    try:
        outcome = check.run(url, 60.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        check.close()
    assert outcome.success, outcome.failure
    assert outcome.metrics.value("probe_http_uncompressed_body_length") == 64 * MIB
    assert peak < 2 * MIB, f"traced peak {peak / MIB:.1f} MiB for a 64 MiB body"


def test_json_expect_keeps_the_body_up_to_its_own_bound(app, monkeypatch: pytest.MonkeyPatch):
    ok = probe(Settings(json_expect=[JsonExpect(path="status", equals="UP")]), f"{app.url}/chunked")
    assert ok.success, ok.failure
    settings = Settings(json_expect=[JsonExpect(path="status", equals="UP")], body_size_limit=10 * MIB)
    monkeypatch.setattr(http, "JSON_MAX", 1000)
    too_long = probe(settings, f"{app.url}/stream?size=5000&framing=length")
    assert reason(too_long) == Reason.BAD_CONTENT
    assert too_long.failure is not None and "too long to parse" in too_long.failure.detail


def test_a_timeout_says_which_phase_the_probe_was_in():
    with serving(silent) as server:
        waiting = probe(Settings(), f"http://127.0.0.1:{server.port}/", timeout=0.5)
    assert reason(waiting) == Reason.TIMEOUT
    assert waiting.failure is not None and "waiting for the first byte" in waiting.failure.detail
    with serving(stalls_mid_body) as server:
        reading = probe(Settings(), f"http://127.0.0.1:{server.port}/", timeout=0.5)
    assert reason(reading) == Reason.TIMEOUT
    assert reading.failure is not None
    assert reading.failure.detail == "timeout during reading the body (10 body bytes read)"
    # what was seen before the stall is reported, not zeroed
    assert reading.metrics.value("probe_http_status_code") == 200
    assert reading.metrics.value("probe_http_content_length") == 1000
    assert reading.metrics.value("probe_http_uncompressed_body_length") == 10
