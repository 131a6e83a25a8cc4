"""The matcher: Hyperscan and the `re` fallback count the same lines; patterns Hyperscan cannot
compile exactly run as its prefilter and are confirmed by `re`; a match never spans two lines; and a
run that reaches its deadline (an injected clock) stops, says so, and loses nothing."""

from __future__ import annotations

import pytest
from einvoice_exporter.collectors import logfile
from einvoice_exporter.collectors.logs.engine import Matcher
from einvoice_exporter.collectors.logs.library import Pattern, library

from .conftest import NOISE, OOM, SSHD, append, matches

BUFFER = (NOISE * 5 + OOM + b"\x00\xff garbage sshd[1]: Invalid user x from y\n" + SSHD * 2
          + b"Out of memory: Kill\nprocess\n" + b"No space left on device" * 3 + b"\n")


def counts(engine: str, patterns: list[Pattern], buffer: bytes = BUFFER) -> dict[str, int]:
    found: dict[str, int] = {}
    for _line, indexes in Matcher(patterns, engine).scan(buffer):
        for index in indexes:
            found[patterns[index].name] = found.get(patterns[index].name, 0) + 1
    return found


def test_hyperscan_and_re_count_the_same_lines():
    pytest.importorskip("hyperscan")
    patterns = library()["os"]
    assert Matcher(patterns, "hyperscan").engine == "hyperscan"
    expected = {"oom_kill": 1, "sshd_failed": 3, "no_space": 1}
    assert counts("hyperscan", patterns) == counts("re", patterns) == expected


def test_lookaround_runs_as_a_prefilter_and_is_confirmed():
    pytest.importorskip("hyperscan")
    pattern = Pattern.model_validate({"name": "failed_not_root", "class": "auth_failure",
                                      "regex": r"Failed password for (?!root )\S+"})
    buffer = SSHD + SSHD.replace(b"for root", b"for admin") * 2
    assert counts("hyperscan", [pattern], buffer) == counts("re", [pattern], buffer) == {"failed_not_root": 2}


def test_patterns_that_match_an_empty_line_are_refused():
    with pytest.raises(ValueError, match="empty line"):
        Pattern.model_validate({"name": "everything", "class": "x", "regex": ".*"})


class SteppingClock:
    """A monotonic clock that stands still, or advances one second each time it is read."""

    def __init__(self) -> None:
        self.now = 0.0
        self.stepping = False

    def __call__(self) -> float:
        if self.stepping:
            self.now += 1.0
        return self.now


def test_deadline_stops_the_run_and_the_next_run_continues(tmp_path, log):
    clock = SteppingClock()
    check = logfile.Collector(logfile.Settings(state_file=tmp_path / "s.json", max_line_bytes=1024),
                              monotonic=clock)
    check.run(str(log), 5)
    append(log, (NOISE * 20 + OOM) * 50)  # about 80 reads of 1 KiB
    clock.stepping = True  # each read costs a second: the 5 s run (deadline at 80 %) stops early
    first = check.run(str(log), 5)
    assert first.metrics.value("einvoice_log_behind") == 1
    assert 0 < matches(first, "oom") < 50
    clock.stepping = False
    rest = check.run(str(log), 5)
    assert rest.metrics.value("einvoice_log_behind") == 0
    assert matches(rest, "oom") == 50
