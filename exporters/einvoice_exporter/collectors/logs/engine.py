"""Multi-pattern matching over whole buffers of complete lines.

`Matcher.scan(buffer)` returns, for each line at least one pattern matched, the line and the indexes
of the patterns it matched. Hyperscan (PyPI `hyperscan`) finds candidates for all patterns in one
pass in C; each candidate line is then confirmed with Python's `re` on that line alone, so the
counts are exactly `re`'s (and grep's) whatever Hyperscan's dialect accepts, and a match can never
span two lines. Without Hyperscan every pattern runs `re.finditer` over the whole buffer (still C,
one pass per pattern): slower, same counts.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any

from .library import Pattern

Hit = tuple[bytes, list[int]]
"""A matching line (without its newline) and the indexes of the patterns that matched it."""


def _line_bounds(buffer: bytes, end: int) -> tuple[int, int]:
    start = buffer.rfind(b"\n", 0, end) + 1
    stop = buffer.find(b"\n", max(end - 1, start))
    return start, (len(buffer) if stop < 0 else stop)


class Matcher:
    """Compiled patterns; `scan` is thread-safe (Hyperscan's scratch space is shared, so scans of one
    matcher take turns)."""

    def __init__(self, patterns: Sequence[Pattern], engine: str = "auto") -> None:
        self.patterns = list(patterns)
        self.regexes = [p.compiled() for p in self.patterns]
        self.engine = "re"
        self._db: Any = None
        self._lock = threading.Lock()
        if engine in ("auto", "hyperscan"):
            try:
                self._db = _hyperscan_database(self.patterns)
                self.engine = "hyperscan"
            except ImportError:
                if engine == "hyperscan":
                    raise ValueError("engine hyperscan requested but the hyperscan package is not "
                                     "installed (pip install hyperscan)") from None

    def scan(self, buffer: bytes) -> list[Hit]:
        """Lines of `buffer` (complete lines, a final newline optional) matched by any pattern."""
        candidates: dict[int, tuple[int, set[int]]] = {}  # line start -> (line end, pattern ids)
        if self._db is not None:
            def on_match(pattern_id: int, _from: int, to: int, _flags: int, _ctx: object) -> None:
                start, stop = _line_bounds(buffer, to)
                found = candidates.get(start)
                if found is None:
                    candidates[start] = (stop, {pattern_id})
                else:
                    found[1].add(pattern_id)
            with self._lock:
                self._db.scan(buffer, match_event_handler=on_match)
        else:
            for pattern_id, regex in enumerate(self.regexes):
                for match in _multiline(regex).finditer(buffer):
                    start, stop = _line_bounds(buffer, match.end() if match.end() > match.start()
                                               else match.start() + 1)
                    candidates.setdefault(start, (stop, set()))[1].add(pattern_id)
        hits: list[Hit] = []
        regexes = self.regexes
        for start in sorted(candidates):
            stop, ids = candidates[start]
            line = buffer[start:stop]
            matched = [index for index in sorted(ids) if regexes[index].search(line)]
            if matched:
                hits.append((line, matched))
        return hits


_MULTILINE_CACHE: dict[re.Pattern[bytes], re.Pattern[bytes]] = {}


def _multiline(regex: re.Pattern[bytes]) -> re.Pattern[bytes]:
    compiled = _MULTILINE_CACHE.get(regex)
    if compiled is None:
        compiled = _MULTILINE_CACHE[regex] = re.compile(regex.pattern, regex.flags | re.MULTILINE)
    return compiled


def _hyperscan_database(patterns: Sequence[Pattern]) -> Any:
    import hyperscan  # lazily: only a built check needs it

    def flags(pattern: Pattern, prefilter: bool) -> int:
        value: int = hyperscan.HS_FLAG_MULTILINE
        if pattern.ignore_case:
            value |= hyperscan.HS_FLAG_CASELESS
        if prefilter:
            value |= hyperscan.HS_FLAG_PREFILTER
        return value

    expressions = [p.regex.encode("utf-8") for p in patterns]
    exact = [True] * len(patterns)
    for index, pattern in enumerate(patterns):  # find the few Hyperscan cannot compile exactly
        probe = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        try:
            probe.compile(expressions=[expressions[index]], ids=[index], elements=1,
                          flags=[flags(pattern, False)])
        except hyperscan.error:
            exact[index] = False
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    try:
        database.compile(expressions=expressions, ids=list(range(len(patterns))), elements=len(patterns),
                         flags=[flags(p, not ok) for p, ok in zip(patterns, exact, strict=True)])
    except hyperscan.error as exc:
        raise ValueError(f"Hyperscan cannot compile the patterns (not even as a prefilter): {exc}") from None
    return database
