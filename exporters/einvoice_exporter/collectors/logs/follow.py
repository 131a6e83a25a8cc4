"""Following files by glob: rotation (rename-and-create and copytruncate), truncation, replaced files,
partial last lines, over-long lines, and positions that survive restarts.

Nothing is held open between polls: a poll costs one `stat` per idle file. A position remembers the
file's device and inode, the offset of the first byte not yet counted, and signatures of the bytes
before that offset and at the head of the file, so that:

- rename-and-create (inode at the path changed): the old inode is looked for among the rotated
  siblings (`syslog.1`, `syslog-20261206`), read to its end, then the new file from its start;
- copytruncate (size below the offset, or the bytes before the offset changed): the copy is looked
  for among the siblings by its head and the bytes before the offset, read from the offset to its end,
  then the live file from its start;
- a restart does the same against the positions in the state file, so what was written while the
  exporter was down is read once, within what rotation kept (compressed copies are not read).

Complete lines only are handed on; a last line without its newline waits until it is completed or
its file is rotated away. A line longer than `max_line` is cut to its first `max_line` bytes and the
rest is skipped, so memory stays bounded by the read size whatever the input.
"""

from __future__ import annotations

import errno
import glob
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SIGNATURE = 64
_ROTATED_NAME = re.compile(r"([.-][0-9]{8,10}(\.log)?|\.[0-9]+|\.(gz|xz|bz2|zst|lz4|Z))$")

Consume = Callable[[str, bytes, int], None]
"""(source, buffer of complete lines, number of lines cut because too long)."""


@dataclass(slots=True)
class Position:
    dev: int
    ino: int
    offset: int = 0
    skipping: bool = False
    """Inside a line longer than max_line: bytes up to its newline are skipped."""
    head: str = ""
    """Hex of the file's first bytes (up to SIGNATURE) once that many were read."""
    tail: str = ""
    """Hex of the bytes just before `offset`."""
    size: int = -1
    mtime_ns: int = -1

    def to_json(self) -> list[Any]:
        return [self.dev, self.ino, self.offset, self.skipping, self.head, self.tail, self.size,
                self.mtime_ns]

    @classmethod
    def from_json(cls, data: list[Any]) -> Position:
        return cls(*data)


@dataclass(slots=True)
class PollStats:
    rotations: dict[str, int]
    """`rename` / `truncate` -> how many were seen in this poll."""
    errors: dict[str, str]
    """path (or the glob) -> `missing` / `permission` / `io`."""
    bytes_read: int = 0
    behind: bool = False
    """Stopped at the deadline or the byte budget with more to read."""


class OutOfTimeError(Exception):
    pass


class Follower:
    """The files of one glob. Not thread-safe: the collector runs one poll per target at a time."""

    def __init__(self, pattern: str, *, max_line: int, from_start: bool,
                 positions: dict[str, Position] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.pattern = pattern
        self.max_line = max_line
        self.from_start = from_start
        self.positions: dict[str, Position] = dict(positions or {})
        self._known = positions is not None
        """Positions came from a state file: files found now but not in it are new since then."""
        self._monotonic = monotonic

    def paths(self) -> list[str]:
        if not glob.has_magic(self.pattern):
            return [self.pattern]
        found = sorted(glob.glob(self.pattern))  # noqa: PTH207 (absolute patterns)
        return [p for p in found if not _ROTATED_NAME.search(os.path.basename(p))]  # noqa: PTH119

    def poll(self, consume: Consume, deadline: float, budget: int) -> PollStats:
        stats = PollStats(rotations={"rename": 0, "truncate": 0}, errors={})
        current: dict[str, os.stat_result] = {}
        for path in self.paths():
            try:
                current[path] = os.stat(path)  # noqa: PTH116 (the hot path: no Path objects)
            except FileNotFoundError:
                stats.errors[path] = "missing"
            except PermissionError:
                stats.errors[path] = "permission"
            except OSError:
                stats.errors[path] = "io"
        for path in [p for p in self.positions if p not in current and p not in stats.errors]:
            # gone without a successor (rotated with `nocreate`, or deleted): finish it if kept
            self._finish_rotated(path, self.positions.pop(path), consume, stats, deadline)
        first_sight = not self._known
        self._known = True
        try:
            for path, st in current.items():
                if stats.bytes_read >= budget:
                    stats.behind = True
                    break
                self._poll_one(path, st, first_sight, consume, stats, deadline, budget)
        except OutOfTimeError:
            stats.behind = True
        return stats

    # -- one file ---------------------------------------------------------------------------------

    def _poll_one(self, path: str, st: os.stat_result, first_sight: bool, consume: Consume,
                  stats: PollStats, deadline: float, budget: int) -> None:
        pos = self.positions.get(path)
        if pos is None:
            if not os.access(path, os.R_OK):  # say so now, not one poll later when it is read
                stats.errors[path] = "permission"
                return
            # A new file is only registered in this poll and read from the next one, so that its
            # counters are exposed at 0 first and increase() sees its first matches.
            pos = Position(st.st_dev, st.st_ino)
            if first_sight and not self.from_start:
                pos.offset = st.st_size  # first ever start: history is not news
                self._sign(path, pos)
            self.positions[path] = pos
            return
        if (pos.dev, pos.ino) != (st.st_dev, st.st_ino):
            stats.rotations["rename"] += 1
            self._finish_rotated(path, pos, consume, stats, deadline)
            pos = self.positions[path] = Position(st.st_dev, st.st_ino)
        elif st.st_size == pos.size and st.st_mtime_ns == pos.mtime_ns:
            return  # idle: the common case, one stat
        elif st.st_size < pos.offset or not self._tail_matches(path, pos):
            stats.rotations["truncate"] += 1
            self._finish_rotated(path, pos, consume, stats, deadline)
            pos = self.positions[path] = Position(st.st_dev, st.st_ino)
        try:
            self._read(path, pos, consume, stats, deadline, budget, final=False)
        except PermissionError:
            stats.errors[path] = "permission"
        except OSError as exc:
            stats.errors[path] = "missing" if exc.errno == errno.ENOENT else "io"
        else:
            pos.size, pos.mtime_ns = st.st_size, st.st_mtime_ns

    def _finish_rotated(self, path: str, pos: Position, consume: Consume, stats: PollStats,
                        deadline: float) -> None:
        """Read the rest of a rotated-away file, found among its siblings, to its very end."""
        rotated = self._find_rotated(path, pos)
        if rotated is None:
            return
        try:
            self._read(rotated, pos, consume, stats, deadline, budget=1 << 62, final=True, label=path)
        except OSError:
            stats.errors[path] = "io"

    def _find_rotated(self, path: str, pos: Position) -> str | None:
        directory, base = os.path.split(path)
        try:
            entries = [e for e in os.scandir(directory or ".")
                       if e.name != base and e.name.startswith(base.rsplit(".", 1)[0])
                       and not re.search(r"\.(gz|xz|bz2|zst|lz4|Z)$", e.name)]
        except OSError:
            return None
        for entry in entries:  # rename: the same inode under another name
            try:
                st = entry.stat()
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (pos.dev, pos.ino):
                return entry.path
        if pos.offset == 0:
            return None
        for entry in entries:  # copytruncate: a copy whose bytes before our offset are ours
            try:
                if entry.stat().st_size >= pos.offset and self._tail_matches(entry.path, pos) and \
                        (not pos.head or _read_at(entry.path, 0, len(pos.head) // 2).hex() == pos.head):
                    return entry.path
            except OSError:
                continue
        return None

    def _tail_matches(self, path: str, pos: Position) -> bool:
        if not pos.tail:
            return True
        length = len(pos.tail) // 2
        return _read_at(path, pos.offset - length, length).hex() == pos.tail

    def _sign(self, path: str, pos: Position) -> None:
        try:
            length = min(SIGNATURE, pos.offset)
            pos.tail = _read_at(path, pos.offset - length, length).hex()
            if not pos.head:
                pos.head = _read_at(path, 0, SIGNATURE).hex() if pos.offset >= SIGNATURE else ""
        except OSError:
            pos.tail = ""

    def _read(self, path: str, pos: Position, consume: Consume, stats: PollStats, deadline: float,
              budget: int, final: bool, label: str | None = None) -> None:
        """Hand complete lines from pos.offset on to `consume`, advancing pos past them."""
        source = label or path
        max_line = self.max_line
        with open(path, "rb", buffering=0) as handle:  # noqa: PTH123 (raw, positioned reads)
            st = os.fstat(handle.fileno())
            if not final and (st.st_dev, st.st_ino) != (pos.dev, pos.ino):
                return  # replaced between stat and open: the next poll sees the rename
            handle.seek(pos.offset)
            buffer = bytearray(max_line)
            view = memoryview(buffer)
            while True:
                if self._monotonic() > deadline:
                    raise OutOfTimeError
                if stats.bytes_read >= budget:
                    stats.behind = True
                    break
                filled = handle.readinto(buffer)
                if not filled:
                    break
                chunk = view[:filled]
                start = 0
                if pos.skipping:
                    newline = buffer.find(b"\n", 0, filled)
                    if newline < 0:
                        self._advance(pos, filled, stats)
                        continue
                    pos.skipping = False
                    start = newline + 1
                last = buffer.rfind(b"\n", start, filled)
                if last >= 0:
                    consume(source, bytes(chunk[start:last + 1]), 0)
                    used = last + 1
                elif filled == max_line and start == 0:
                    consume(source, bytes(chunk) + b"\n", 1)  # an over-long line, cut
                    pos.skipping = True
                    used = filled
                else:
                    used = start
                    if final and filled - start and filled < max_line:  # the rotated file's last line
                        consume(source, bytes(chunk[start:filled]) + b"\n", 0)
                        used = filled
                self._advance(pos, used, stats)
                if used < filled:
                    handle.seek(pos.offset)
                    if filled < max_line:
                        break  # only a partial line left at the end: wait for its newline
            view.release()
        if pos.offset and not final:
            self._sign(path, pos)

    @staticmethod
    def _advance(pos: Position, count: int, stats: PollStats) -> None:
        pos.offset += count
        stats.bytes_read += count


def _read_at(path: str, offset: int, length: int) -> bytes:
    if length <= 0:
        return b""
    with open(path, "rb", buffering=0) as handle:  # noqa: PTH123
        return os.pread(handle.fileno(), length, max(offset, 0))
