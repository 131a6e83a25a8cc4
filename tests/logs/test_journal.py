"""Journal and kernel-log sources. This machine runs no journald (no systemd as PID 1), so the
journal tests write real journal files with Debian's systemd-journal-remote (from the journal export
format) and read them with the real journalctl (`journal:/dir`); the kernel log is this machine's
real /dev/kmsg."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import collector, lines, matches

REMOTE = "/lib/systemd/systemd-journal-remote"


def write_journal(path: Path, entries: list[dict[str, str]], start_usec: int) -> None:
    if not Path(REMOTE).exists() or shutil.which("journalctl") is None:
        if os.environ.get("CI"):
            raise RuntimeError("systemd-journal-remote or journalctl is missing; .ci/run must install them")
        pytest.skip("apt-get install systemd-journal-remote (and systemd for journalctl)")
    chunks = []
    for index, fields in enumerate(entries):
        head = {"__REALTIME_TIMESTAMP": str(start_usec + index),
                "__MONOTONIC_TIMESTAMP": str(start_usec - 1_699_000_000_000_000 + index),
                "_BOOT_ID": "ee9cc6ef99ff44fb8e5333d29c4366d3"}
        chunks.append("".join(f"{k}={v}\n" for k, v in {**head, **fields}.items()) + "\n")
    done = subprocess.run([REMOTE, f"--output={path}", "-"], input="".join(chunks).encode(),
                          capture_output=True, check=False)
    assert done.returncode == 0, done.stderr


OOM_ENTRY = {"MESSAGE": "Out of memory: Killed process 4242 (java) total-vm:8388608kB",
             "_TRANSPORT": "kernel", "SYSLOG_IDENTIFIER": "kernel"}


def test_journal_counts_by_unit_and_resumes_after_its_cursor(tmp_path):
    journal = tmp_path / "journal"
    journal.mkdir()
    write_journal(journal / "a.journal", [
        {"MESSAGE": "Started intake.service.", "_SYSTEMD_UNIT": "init.scope"},
        {"MESSAGE": "Failed password for root from 198.51.100.7 port 22 ssh2",
         "_SYSTEMD_UNIT": "ssh.service", "SYSLOG_IDENTIFIER": "sshd"},
    ], 1_700_000_000_000_000)
    check = collector(tmp_path, from_start=True, journal_units=["ssh.service"],
                      patterns=[{"name": "sshd_plain", "class": "auth_failure",
                                 "regex": "Failed password for"}])
    target = f"journal:{journal}"
    first = check.run(target, 20)
    assert first.success, first.failure
    assert lines(first) == 2
    assert matches(first, "auth_failure", "journal/ssh.service") == 1
    other_kill = {**OOM_ENTRY, "MESSAGE": OOM_ENTRY["MESSAGE"].replace("4242", "4343")}
    write_journal(journal / "b.journal", [OOM_ENTRY, other_kill], 1_700_000_100_000_000)
    restarted = collector(tmp_path, from_start=True, journal_units=["ssh.service"],
                          patterns=[{"name": "sshd_plain", "class": "auth_failure",
                                     "regex": "Failed password for"}])
    second = restarted.run(target, 20)
    assert matches(second, "oom", "journal") == 2  # only in the journal: the kernel OOM kill
    assert matches(second, "auth_failure") == 1
    assert lines(second) == 4
    assert matches(restarted.run(target, 20), "oom") == 2


def test_journal_missing_directory_is_a_reason(tmp_path):
    if shutil.which("journalctl") is None:
        if os.environ.get("CI"):
            raise RuntimeError("journalctl is missing; .ci/run must install systemd")
        pytest.skip("journalctl is not installed")
    outcome = collector(tmp_path, from_start=True).run(f"journal:{tmp_path}/none/*.journal", 20)
    assert outcome.failure is not None


def test_kernel_log_resumes_after_the_last_sequence_number(tmp_path):
    if not os.access("/dev/kmsg", os.R_OK):
        pytest.skip("/dev/kmsg is not readable here")
    check = collector(tmp_path, from_start=True)
    first = check.run("kmsg", 5)
    assert first.success, first.failure
    seen = lines(first)
    assert seen > 0  # the boot messages at least
    again = collector(tmp_path, from_start=True).run("kmsg", 5)  # a restart: nothing read twice
    assert seen <= lines(again) < seen + 50


def test_journal_reads_in_bounded_steps_without_loss(tmp_path):
    from einvoice_exporter.collectors.logs.engine import Matcher
    from einvoice_exporter.collectors.logs.library import library
    from einvoice_exporter.collectors.logs.system import JournalPosition, read_journal

    journal = tmp_path / "journal"
    journal.mkdir()
    # More than one pipe buffer (64 KiB) of journalctl output, so that however fast journalctl
    # writes, a read bounded by max_bytes cannot take it all in one step.
    count = 400
    kills = [{**OOM_ENTRY, "MESSAGE": OOM_ENTRY["MESSAGE"].replace("4242", str(10000 + i))}
             for i in range(count)]
    write_journal(journal / "a.journal", kills, 1_700_000_000_000_000)
    matcher = Matcher(library()["os"])
    position = JournalPosition()
    hits: list[bytes] = []
    steps = 0
    while True:
        result = read_journal(f"journal:{journal}", position, matcher, lambda _s, _i, line: hits.append(line),
                              frozenset(), True, 20, max_bytes=1024)
        if not result.entries:
            break
        steps += 1
    assert steps >= 2  # cut after about max_bytes (plus one pipe read), resumed from the cursor
    assert len(hits) == count and len(set(hits)) == count
