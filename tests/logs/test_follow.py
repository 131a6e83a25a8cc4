"""The `logfile` kind on real files: rotation by a real logrotate (create and copytruncate),
truncation, restart-resume from the state file, partial and over-long lines, binary garbage, and
unreadable or missing files as reasons."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import pytest
from einvoice_exporter.outcome import Reason

from .conftest import NOISE, OOM, SSHD, append, collector, lines, matches

LOGROTATE = shutil.which("logrotate") or "/usr/sbin/logrotate"


def rotate(tmp_path: Path, log: Path, method: str) -> None:
    if not Path(LOGROTATE).exists():
        pytest.skip("logrotate is not installed (apt-get install logrotate)")
    conf = tmp_path / "logrotate.conf"
    conf.write_text(f"{log} {{\n  rotate 3\n  {method}\n  missingok\n  nocompress\n}}\n")
    conf.chmod(0o644)
    done = subprocess.run([LOGROTATE, "-f", "-s", str(tmp_path / "logrotate.state"), str(conf)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_counts_by_class_and_never_the_line_text(tmp_path, log):
    check = collector(tmp_path)
    first = check.run(str(log), 5)
    assert first.success, first.failure
    assert matches(first, "oom") == 0  # existing history is not news on the very first start
    append(log, OOM + SSHD + NOISE * 3 + OOM)
    outcome = check.run(str(log), 5)
    assert matches(outcome, "oom", str(log)) == 2
    assert matches(outcome, "auth_failure") == 1
    assert lines(outcome) == 6
    for _name, _type, _doc, samples in outcome.metrics.items():
        for labels, _value in samples:
            assert not any("java" in v or "198.51" in v for v in labels.values())


@pytest.mark.parametrize("method", ["create", "copytruncate"])
def test_logrotate_loses_and_repeats_nothing(tmp_path, log, method):
    check = collector(tmp_path)
    check.run(str(log), 5)
    append(log, OOM * 2)
    assert matches(check.run(str(log), 5), "oom") == 2
    append(log, OOM * 3)  # written, not yet read when logrotate runs
    rotate(tmp_path, log, method)
    append(log, OOM * 5)  # the writer goes on in the new (or truncated) file
    outcome = check.run(str(log), 5)
    assert matches(outcome, "oom") == 10
    assert outcome.metrics.value("einvoice_log_rotations_total",
                                 {"method": "rename" if method == "create" else "truncate"}) == 1
    assert matches(check.run(str(log), 5), "oom") == 10


def test_restart_resumes_without_double_counting(tmp_path, log):
    check = collector(tmp_path)
    check.run(str(log), 5)
    append(log, OOM)
    assert matches(check.run(str(log), 5), "oom") == 1
    append(log, OOM * 2)  # the exporter is down now
    restarted = collector(tmp_path)
    assert matches(restarted.run(str(log), 5), "oom") == 3  # counters continue from the state file
    assert matches(restarted.run(str(log), 5), "oom") == 3


def test_rotation_while_down_is_caught_up_from_the_rotated_file(tmp_path, log):
    check = collector(tmp_path)
    check.run(str(log), 5)
    append(log, OOM)
    check.run(str(log), 5)
    append(log, OOM * 2)
    rotate(tmp_path, log, "create")
    append(log, OOM * 4)
    outcome = collector(tmp_path).run(str(log), 5)
    assert matches(outcome, "oom") == 7


def test_truncation_regrown_past_the_offset(tmp_path, log):
    check = collector(tmp_path)
    check.run(str(log), 5)
    append(log, NOISE * 2)
    check.run(str(log), 5)
    log.write_bytes(OOM * 4)  # truncated and rewritten longer than before, same inode
    assert matches(check.run(str(log), 5), "oom") == 4


def test_a_line_without_its_newline_waits_and_counts_once(tmp_path, log):
    check = collector(tmp_path)
    check.run(str(log), 5)
    append(log, OOM[:30])
    assert matches(check.run(str(log), 5), "oom") == 0
    append(log, OOM[30:])
    assert matches(check.run(str(log), 5), "oom") == 1
    assert matches(check.run(str(log), 5), "oom") == 1


def test_binary_garbage_is_scanned_not_fatal(tmp_path, log):
    check = collector(tmp_path)
    check.run(str(log), 5)
    garbage = bytes(range(256)) * 64 + b"\x00\xff\xfe" + OOM + b"\x00" * 1000 + b"\n" + os.urandom(5000)
    append(log, garbage.replace(b"Out of memory", b"Out of mem0ry", 0) + b"\n" + OOM)
    outcome = check.run(str(log), 5)
    assert outcome.success
    assert matches(outcome, "oom") >= 2  # the line inside garbage and the clean one


def test_a_100_mb_line_is_cut_with_bounded_memory(tmp_path, log):
    check = collector(tmp_path, max_line_bytes=1024 * 1024)
    check.run(str(log), 5)
    with log.open("ab") as handle:
        handle.write(b"Out of memory: Killed process 1 (x) ")
        block = b"A" * (1024 * 1024)
        for _ in range(100):
            handle.write(block)
        handle.write(b"\n" + OOM)
    tracemalloc.start()
    outcome = check.run(str(log), 60)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert outcome.success
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes"
    assert outcome.metrics.value("einvoice_log_long_lines_total", {"source": str(log)}) == 1
    assert matches(outcome, "oom") == 2  # the cut line's head, then the next line
    assert lines(outcome) == 2


def test_missing_file_is_a_reason(tmp_path):
    outcome = collector(tmp_path).run(str(tmp_path / "nope.log"), 5)
    assert outcome.failure is not None and outcome.failure.reason == Reason.ERROR
    assert outcome.metrics.value("einvoice_log_source_error",
                                 {"source": str(tmp_path / "nope.log"), "error": "missing"}) == 1
    assert collector(tmp_path, missing_ok=True).run(str(tmp_path / "*.log"), 5).success


def test_permission_denied_is_reason_auth(tmp_path, log):
    """Run as an unprivileged user (root reads everything), in a child process."""
    if os.geteuid() != 0:
        log.chmod(0)
        outcome = collector(tmp_path).run(str(log), 5)
        assert outcome.failure is not None and outcome.failure.reason == Reason.AUTH
        return
    log.chmod(0o600)
    tmp_path.chmod(0o755)
    script = textwrap.dedent(f"""
        import os
        from einvoice_exporter.collectors import logfile
        from einvoice_exporter.collectors.logs import follow, state, system
        check = logfile.Collector(logfile.Settings())
        os.setgid(65534); os.setuid(65534)
        outcome = check.run({str(log)!r}, 5)
        print(outcome.failure.reason.value if outcome.failure else "ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False,
                          timeout=60)
    assert done.stdout.strip() == "auth", done.stderr


def test_glob_follows_new_files_from_their_start_with_bounded_sources(tmp_path):
    directory = tmp_path / "etl"
    directory.mkdir()
    (directory / "a.log").write_bytes(NOISE)
    check = collector(tmp_path, pattern_sets=["etl"], max_sources=2)
    check.run(str(directory / "*.log"), 5)
    for name in ("b", "c", "d"):
        (directory / f"{name}.log").write_bytes(b"2026-12-06 03:00:00 job load_invoice FAILED\n")
    registered = check.run(str(directory / "*.log"), 5)  # new sources appear at 0 first ...
    assert matches(registered, "etl_failed") == 0
    assert registered.metrics.value("einvoice_log_matches_total", {
        "source": str(directory / "b.log"), "class": "etl_failed", "pattern": "etl_failed"}) == 0
    outcome = check.run(str(directory / "*.log"), 5)  # ... so that increase() sees their first matches
    assert matches(outcome, "etl_failed") == 3
    sources = {labels["source"] for _n, _t, _d, samples in outcome.metrics.items()
               for labels, _v in samples if "source" in labels}
    assert "other" in sources and len(sources) <= 3


@pytest.mark.parametrize("garbage", [
    "not json at all",
    '{"version": 1, "targets": {"%s": {"files": {"x": [1]}}}}',
    '{"version": 1, "targets": {"%s": {"counters": {"matches": 5}}}}',
])
def test_unreadable_state_starts_over_instead_of_failing(tmp_path, log, garbage):
    (tmp_path / "state.json").write_text(garbage.replace("%s", str(log)) if "%s" in garbage else garbage)
    check = collector(tmp_path)
    assert check.run(str(log), 5).success
    append(log, OOM)
    assert matches(check.run(str(log), 5), "oom") == 1
