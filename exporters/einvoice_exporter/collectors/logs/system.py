"""The systemd journal and the kernel ring buffer as sources of the same engine.

Journal: `journalctl -o json` after the last cursor (the system journal, or `--directory`/`--file`
for journal files copied or written by systemd-journal-remote). journalctl does the reading, so
every journal format and compression the host's systemd knows is supported, and the exporter needs
only read access (group `systemd-journal` or `adm`). Entries are counted in C (newlines); the engine
looks for candidates in the JSON text and only candidate entries are decoded, their MESSAGE
confirmed with the pattern, their unit taken from `_SYSTEMD_UNIT` (or the syslog identifier).

Kernel log: `/dev/kmsg`, one record per read, resumed after the last sequence number of the same
boot (`/proc/sys/kernel/random/boot_id`); records the ring buffer overwrote meanwhile are gone.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .engine import Matcher

Hit = Callable[[str, int, bytes], None]
"""(source label, pattern index, matched text) for each confirmed match."""


class SourceError(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        """`missing`, `permission` or `io`."""
        self.detail = detail


@dataclass(slots=True)
class JournalPosition:
    cursor: str | None = None


@dataclass(slots=True)
class JournalResult:
    entries: int = 0
    bytes_read: int = 0
    units: dict[str, int] = field(default_factory=dict)


def journal_argv(location: str, journalctl: str = "journalctl") -> list[str]:
    """`journal` is the host's journal; `journal:/dir` a directory of journal files;
    `journal:/path/*.journal` journal files by glob."""
    argv = [journalctl, "--no-pager", "-q"]
    where = location.partition(":")[2]
    if where:
        argv.append(f"--directory={where}" if Path(where).is_dir() else f"--file={where}")
    return argv


def read_journal(location: str, position: JournalPosition, matcher: Matcher, on_hit: Hit,
                 units: frozenset[str], from_start: bool, timeout: float,
                 journalctl: str = "journalctl", max_bytes: int = 64 * 1024 * 1024) -> JournalResult:
    """Entries after `position` (at most about `max_bytes` of journalctl's JSON per call: the rest
    comes next time, after the cursor of the last complete entry read)."""
    base = journal_argv(location, journalctl)
    result = JournalResult()
    if position.cursor is None and not from_start:
        last = _run([*base, "-o", "json", "--output-fields=__CURSOR", "-n", "1"], timeout)
        lines = last.strip().splitlines()
        position.cursor = json.loads(lines[-1])["__CURSOR"] if lines else ""
        return result
    argv = [*base, "-o", "json", "--output-fields=MESSAGE,_SYSTEMD_UNIT,SYSLOG_IDENTIFIER"]
    if position.cursor:
        argv.append(f"--after-cursor={position.cursor}")
    output = _run_bounded(argv, timeout, max_bytes)
    if not output:
        return result
    result.entries = output.count(b"\n")
    result.bytes_read = len(output)
    for line, _candidates in matcher.scan(output):
        entry = json.loads(line)
        message = _field_bytes(entry.get("MESSAGE"))
        unit = str(entry.get("_SYSTEMD_UNIT") or entry.get("SYSLOG_IDENTIFIER") or "")
        label = f"journal/{unit}" if unit in units else "journal"
        for index, regex in enumerate(matcher.regexes):
            if regex.search(message):
                on_hit(label, index, message)
    last_line = output.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    position.cursor = json.loads(last_line)["__CURSOR"]
    return result


def _run_bounded(argv: list[str], timeout: float, max_bytes: int) -> bytes:
    """journalctl's output up to its last complete line within `max_bytes`, or all of it."""
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError:
        raise SourceError("missing", f"{argv[0]} is not installed") from None
    assert proc.stdout is not None and proc.stderr is not None
    chunks: list[bytes] = []
    size = 0
    cut = False
    watchdog = threading.Timer(max(timeout, 0.1), proc.kill)  # a hung journalctl cannot hold the run
    watchdog.start()
    try:
        while size < max_bytes:
            chunk = os.read(proc.stdout.fileno(), 1024 * 1024)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        else:
            cut = True
            proc.kill()
        try:
            _out, errors = proc.communicate(timeout=max(timeout, 0.1))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise SourceError("io", "journalctl did not finish in time") from None
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = b"".join(chunks)
    if cut:
        return output[:output.rfind(b"\n") + 1]
    if proc.returncode != 0:
        _raise_for(argv, proc.returncode, errors)
    return output


def _raise_for(argv: list[str], returncode: int, stderr: bytes) -> None:
    text = stderr.decode("utf-8", "replace").strip().splitlines()
    first = text[0][:200] if text else f"exit status {returncode}"
    kind = "permission" if "ermission" in first or "No journal files were opened" in first else "io"
    if "No such file" in first or "No journal files were found" in first:
        kind = "missing"
    raise SourceError(kind, f"{argv[0]}: {first}")


def _field_bytes(value: object) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, list):  # journalctl writes non-UTF-8 fields as arrays of byte values
        return bytes(v for v in value if isinstance(v, int) and 0 <= v < 256)
    return b""


def _run(argv: list[str], timeout: float) -> bytes:
    try:
        done = subprocess.run(argv, capture_output=True, timeout=max(timeout, 0.1), check=False)
    except FileNotFoundError:
        raise SourceError("missing", f"{argv[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise SourceError("io", "journalctl did not finish in time") from None
    if done.returncode != 0:
        _raise_for(argv, done.returncode, done.stderr)
    return done.stdout


@dataclass(slots=True)
class KmsgPosition:
    boot_id: str = ""
    seq: int = -1


def read_kmsg(position: KmsgPosition, matcher: Matcher, on_hit: Hit, from_start: bool,
              device: str = "/dev/kmsg",
              boot_id_path: str = "/proc/sys/kernel/random/boot_id") -> JournalResult:
    """Read the kernel records after `position` (all of them after a reboot or on first start with
    `from_start`); the kernel's own sequence numbers make resuming exact."""
    try:
        boot_id = Path(boot_id_path).read_text().strip()
        fd = os.open(device, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise SourceError("missing", f"{device} does not exist") from None
    except PermissionError:
        raise SourceError("permission", f"{device} is not readable by this user") from None
    fresh = position.boot_id != boot_id
    records: list[bytes] = []
    last_seq = -1 if fresh else position.seq
    try:
        while True:
            try:
                record = os.read(fd, 16384)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # overwritten while we read: continue with the next
                    continue
                raise SourceError("io", f"{device}: {exc.strerror}") from None
            prefix, _, message = record.partition(b";")
            fields = prefix.split(b",")
            seq = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else -1
            if seq <= last_seq:
                continue
            last_seq = seq
            records.append(message.split(b"\n", 1)[0].replace(b"\r", b" "))
    finally:
        os.close(fd)
    result = JournalResult()
    if fresh and position.boot_id == "" and not from_start:
        records = []  # first start ever: what is already in the ring buffer is history
    position.boot_id, position.seq = boot_id, last_seq
    if records:
        buffer = b"\n".join(records) + b"\n"
        result.entries, result.bytes_read = len(records), len(buffer)
        for line, matched in matcher.scan(buffer):
            for index in matched:
                on_hit("kmsg", index, line)
    return result
