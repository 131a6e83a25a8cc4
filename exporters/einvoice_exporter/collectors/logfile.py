"""Collector of kind `logfile`: count lines matching a pattern library in host logs (items 03, 09
and the transfer logs of 16), following files by glob, the systemd journal or the kernel log.

The target names the source: a path or glob (`/var/log/syslog`, `/u01/ogg/ggserr.log`,
`/data/etl/logs/*.log`), `journal` (this host's journal), `journal:/dir-or-glob` (journal files),
or `kmsg` (the kernel ring buffer). Each run reads what was appended since the last one (up to the
deadline and `max_bytes_per_run`; the rest next time) and serves counters:

    einvoice_log_lines_total{source="/var/log/syslog"} 182331
    einvoice_log_matches_total{source="/var/log/syslog",class="oom",pattern="oom_kill"} 2
    einvoice_log_last_match_timestamp_seconds{class="oom"} 1.76e+09
    einvoice_log_rotations_total{method="rename"} 3
    einvoice_log_long_lines_total{source="/var/log/syslog"} 0
    einvoice_log_read_bytes_total{source="/var/log/syslog"} 2.1e+07
    einvoice_log_files_followed 1
    einvoice_log_behind 0

Labels are bounded: the pattern's class and name come from the library or config, `source` is a
followed path (at most `max_sources`, then `other`), `journal/<unit>` for listed units, or `kmsg`.
A line's text never becomes a label. The last match of each class is kept, redacted as the notifier
redacts, for the local page. The check fails (reason `auth` for permission denied, `error` for
missing files or a broken source) when it cannot read, never because a pattern matched: that is
what the alert rules judge.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from ..fields import StrictModel
from ..outcome import Check, MetricSet, Outcome, Reason
from .logs.library import Pattern, library, select

log = logging.getLogger("einvoice_exporter.logfile")
Engine = Literal["auto", "hyperscan", "re"]
_LAST_MATCH_CHARS = 300


class Settings(StrictModel):
    """Settings of a `logfile` module."""

    pattern_sets: list[str] = Field(default_factory=lambda: ["os"])
    """Sets of the shipped library (patterns.yaml): os, goldengate, etl, nginx_error."""
    patterns: list[Pattern] = Field(default_factory=list)
    """The operator's own patterns: {name, class, regex, ignore_case}."""
    state_file: Path | None = None
    """Positions and counters survive restarts here (one file per module); unset: start at the end
    of each file after a restart."""
    from_start: bool = False
    """On the very first start (no state), read existing files from their start instead of the end."""
    max_line_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    """Longer lines are cut to this many bytes (the rest skipped); also the read size."""
    max_bytes_per_run: Annotated[int, Field(ge=1024 * 1024)] = 1024 * 1024 * 1024
    max_sources: Annotated[int, Field(ge=1, le=1000)] = 64
    """Distinct `source` label values; further files are counted as source `other`."""
    journal_units: list[str] = Field(default_factory=list)
    """Journal units (or syslog identifiers) counted under their own source `journal/<unit>`."""
    missing_ok: bool = False
    """A path or glob that matches no file is not a failure (logs created on first write)."""
    engine: Engine = "auto"
    """`auto`: Hyperscan when installed, else Python's re (same counts, slower)."""

    @field_validator("pattern_sets")
    @classmethod
    def _known_sets(cls, value: list[str]) -> list[str]:
        known = library()
        unknown = [name for name in value if name not in known]
        if unknown:
            raise ValueError(f"unknown pattern set(s) {unknown}; the library has {sorted(known)}")
        return value

    def selected(self) -> list[Pattern]:
        return select(self.pattern_sets, self.patterns)


def validate_target(target: str) -> str:
    if target in ("journal", "kmsg") or target.startswith("journal:/"):
        return target
    if not target.startswith("/"):
        raise ValueError("the target is an absolute path or glob (/var/log/syslog), journal, "
                         "journal:/path or kmsg")
    return target


@dataclass
class _Counters:
    lines: dict[str, int] = field(default_factory=dict)
    read_bytes: dict[str, int] = field(default_factory=dict)
    long_lines: dict[str, int] = field(default_factory=dict)
    matches: dict[tuple[str, int], int] = field(default_factory=dict)
    rotations: dict[str, int] = field(default_factory=lambda: {"rename": 0, "truncate": 0})
    last_match: dict[str, tuple[float, bytes]] = field(default_factory=dict)
    """class -> (unix time, the line's first bytes): kept in memory only, redacted when shown."""

    def to_json(self, names: list[str]) -> dict[str, Any]:
        return {"lines": self.lines, "read_bytes": self.read_bytes, "long_lines": self.long_lines,
                "rotations": self.rotations,
                "matches": [[s, names[i], n] for (s, i), n in self.matches.items()],
                "last_match_time": {c: t for c, (t, _) in self.last_match.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any], names: list[str]) -> _Counters:
        counters = cls(dict(data.get("lines", {})), dict(data.get("read_bytes", {})),
                       dict(data.get("long_lines", {})))
        counters.rotations.update(data.get("rotations", {}))
        index = {name: i for i, name in enumerate(names)}
        for source, name, count in data.get("matches", []):
            if name in index:  # a pattern removed from config is forgotten
                counters.matches[(source, index[name])] = int(count)
        for klass, when in data.get("last_match_time", {}).items():
            counters.last_match[klass] = (float(when), b"")
        return counters


class _Target:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loaded = False
        self.counters = _Counters()
        self.follower: Any = None
        self.position: Any = None
        self.sources: set[str] = set()
        """Followed paths that have their own `source` label (at most max_sources)."""
        self.labels: set[str] = set()
        """Every source label exposed, so a new one appears at 0 before its first match."""


class Collector:
    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic, journalctl: str = "journalctl",
                 kmsg_device: str = "/dev/kmsg") -> None:
        from .logs.engine import Matcher
        from .logs.state import StateFile

        self.settings = settings
        self.patterns = settings.selected()
        self.names = [p.name for p in self.patterns]
        self.matcher = Matcher(self.patterns, settings.engine)
        self.state = StateFile(settings.state_file)
        self.clock = clock
        self.monotonic = monotonic
        self.journalctl = journalctl
        self.kmsg_device = kmsg_device
        self._targets: dict[str, _Target] = {}
        self._lock = threading.Lock()

    # -- the run ----------------------------------------------------------------------------------

    def run(self, target: str, timeout: float) -> Outcome:
        outcome = Outcome()
        with self._lock:
            state = self._targets.setdefault(target, _Target())
        with state.lock:
            deadline = self.monotonic() + max(timeout * 0.8, 0.05)
            self._restore(target, state)
            try:
                validate_target(target)
                self._read(target, state, deadline, outcome)
            except ValueError as exc:
                outcome.fail(Reason.ERROR, f"target {target!r}: {exc}")
            self._save(target, state)
            self._emit(state, outcome.metrics)
        return outcome

    def _read(self, target: str, state: _Target, deadline: float, outcome: Outcome) -> None:
        from .logs.follow import Follower, PollStats
        from .logs.system import JournalPosition, KmsgPosition, SourceError, read_journal, read_kmsg

        metrics = outcome.metrics
        if target == "kmsg" or target.startswith("journal"):
            state.labels.update(["kmsg"] if target == "kmsg" else
                                ["journal", *(f"journal/{unit}" for unit in self.settings.journal_units)])
            try:
                if target == "kmsg":
                    state.position = state.position or KmsgPosition()
                    result = read_kmsg(state.position, self.matcher, self._on_hit(state),
                                       self.settings.from_start, self.kmsg_device)
                    source = "kmsg"
                else:
                    state.position = state.position or JournalPosition()
                    result = read_journal(target, state.position, self.matcher, self._on_hit(state),
                                          frozenset(self.settings.journal_units), self.settings.from_start,
                                          max(deadline - self.monotonic(), 0.1), self.journalctl,
                                          min(self.settings.max_bytes_per_run, 64 * 1024 * 1024))
                    source = "journal"
            except SourceError as exc:
                self._source_error(outcome, target, exc.kind, exc.detail)
                return
            _add(state.counters.lines, source, result.entries)
            _add(state.counters.read_bytes, source, result.bytes_read)
            metrics.gauge("einvoice_log_behind", "1 when the last run stopped before the end of its "
                          "sources (deadline or byte budget)", 0)
            return
        if state.follower is None:
            state.follower = Follower(target, max_line=self.settings.max_line_bytes,
                                      from_start=self.settings.from_start, monotonic=self.monotonic)
        follower: Follower = state.follower
        stats: PollStats = follower.poll(self._consume(state), deadline, self.settings.max_bytes_per_run)
        for path in follower.positions:
            self._label(state, path)
        for method, count in stats.rotations.items():
            state.counters.rotations[method] = state.counters.rotations.get(method, 0) + count
        followed = len(follower.positions)
        metrics.gauge("einvoice_log_files_followed", "Files the glob matches and the scanner follows",
                      followed)
        metrics.gauge("einvoice_log_behind", "1 when the last run stopped before the end of its sources "
                      "(deadline or byte budget)", 1 if stats.behind else 0)
        for path, kind in sorted(stats.errors.items()):
            if kind == "missing" and self.settings.missing_ok:
                continue
            metrics.gauge("einvoice_log_source_error", "1 for a source the scanner cannot read, by error",
                          1, {"source": self._label(state, path), "error": kind})
            self._source_error(outcome, target, kind, f"{kind}: {path}")
        if not followed and not stats.errors and not self.settings.missing_ok:
            metrics.gauge("einvoice_log_source_error", "1 for a source the scanner cannot read, by error",
                          1, {"source": self._label(state, target), "error": "missing"})
            outcome.fail(Reason.ERROR, f"no file matches {target}")

    @staticmethod
    def _source_error(outcome: Outcome, target: str, kind: str, detail: str) -> None:
        reason = Reason.AUTH if kind == "permission" else Reason.ERROR
        outcome.fail(reason, detail if target in detail else f"{target}: {detail}")

    def _label(self, state: _Target, path: str) -> str:
        if path in state.sources:
            return path
        if len(state.sources) < self.settings.max_sources:
            state.sources.add(path)
            label = path
        else:
            label = "other"
        state.labels.add(label)
        return label

    def _consume(self, state: _Target) -> Callable[[str, bytes, int], None]:
        counters = state.counters
        on_hit = self._on_hit(state)
        scan = self.matcher.scan

        def consume(path: str, buffer: bytes, cut: int) -> None:
            source = self._label(state, path)
            _add(counters.lines, source, buffer.count(b"\n"))
            _add(counters.read_bytes, source, len(buffer))
            if cut:
                _add(counters.long_lines, source, cut)
            for line, matched in scan(buffer):
                for index in matched:
                    on_hit(source, index, line)
        return consume

    def _on_hit(self, state: _Target) -> Callable[[str, int, bytes], None]:
        counters = state.counters

        def on_hit(source: str, index: int, line: bytes) -> None:
            key = (source, index)
            counters.matches[key] = counters.matches.get(key, 0) + 1
            counters.last_match[self.patterns[index].class_] = (self.clock(), line[:_LAST_MATCH_CHARS * 4])
        return on_hit

    # -- state ------------------------------------------------------------------------------------

    def _restore(self, target: str, state: _Target) -> None:
        if state.loaded:
            return
        from .logs.follow import Follower, Position
        from .logs.system import JournalPosition, KmsgPosition

        state.loaded = True
        saved = self.state.target(target)
        if saved is None:
            return
        try:
            state.counters = _Counters.from_json(saved.get("counters", {}), self.names)
            state.sources = set(saved.get("sources", []))
            state.labels = set(saved.get("labels", [])) | state.sources
            if "files" in saved:
                positions = {path: Position.from_json(p) for path, p in saved["files"].items()}
                state.follower = Follower(target, max_line=self.settings.max_line_bytes,
                                          from_start=self.settings.from_start, positions=positions,
                                          monotonic=self.monotonic)
            elif "cursor" in saved:
                state.position = JournalPosition(saved["cursor"])
            elif "kmsg" in saved:
                state.position = KmsgPosition(*saved["kmsg"])
        except (TypeError, ValueError, KeyError, AttributeError):
            log.warning("state of %s in %s is unreadable; starting over from the end of its files",
                        target, self.settings.state_file)
            fresh = _Target()
            state.counters, state.sources, state.labels = fresh.counters, fresh.sources, fresh.labels
            state.follower = state.position = None

    def _save(self, target: str, state: _Target) -> None:
        from .logs.system import JournalPosition, KmsgPosition

        data: dict[str, Any] = {"counters": state.counters.to_json(self.names),
                                "sources": sorted(state.sources), "labels": sorted(state.labels)}
        if state.follower is not None:
            data["files"] = {path: p.to_json() for path, p in state.follower.positions.items()}
        elif isinstance(state.position, JournalPosition):
            data["cursor"] = state.position.cursor
        elif isinstance(state.position, KmsgPosition):
            data["kmsg"] = [state.position.boot_id, state.position.seq]
        self.state.save(target, data)

    # -- exposition -------------------------------------------------------------------------------

    def _emit(self, state: _Target, metrics: MetricSet) -> None:
        counters = state.counters
        for source in sorted(state.labels | set(counters.lines)):
            metrics.counter("einvoice_log_lines_total", "Lines read", counters.lines.get(source, 0),
                            {"source": source})
            metrics.counter("einvoice_log_read_bytes_total", "Bytes read", counters.read_bytes.get(source, 0),
                            {"source": source})
        for source in sorted(state.labels | set(counters.lines)):
            metrics.counter("einvoice_log_long_lines_total", "Lines longer than max_line_bytes, cut",
                            counters.long_lines.get(source, 0), {"source": source})
        sources = sorted(state.labels | set(counters.lines) | {source for source, _ in counters.matches})
        for source in sources:  # every pattern, also at 0, so increase() sees the first match
            for index, pattern in enumerate(self.patterns):
                metrics.counter("einvoice_log_matches_total", "Lines matching a pattern, by pattern class",
                                counters.matches.get((source, index), 0),
                                {"source": source, "class": pattern.class_, "pattern": pattern.name})
        for method, count in sorted(counters.rotations.items()):
            metrics.counter("einvoice_log_rotations_total", "Rotations seen, by method", count,
                            {"method": method})
        for klass, (when, _text) in sorted(counters.last_match.items()):
            metrics.gauge("einvoice_log_last_match_timestamp_seconds", "When the last line of the class "
                          "matched (Unix time)", when, {"class": klass})

    def last_matches(self) -> dict[str, dict[str, tuple[float, str]]]:
        """target -> class -> (time, redacted text): the local last-match page. Redacted here, when
        shown, not per match: redaction costs far more than matching."""
        return {target: {klass: (when, _redacted(line)) for klass, (when, line) in
                         state.counters.last_match.items()}
                for target, state in self._targets.items()}

    def close(self) -> None:
        """Nothing held open between runs; the state is saved at the end of every run."""


def _add(counts: dict[str, int], key: str, value: int) -> None:
    counts[key] = counts.get(key, 0) + value


def _redacted(line: bytes) -> str:
    from einvoice_core.redaction import redact

    text = line[:_LAST_MATCH_CHARS * 4].decode("utf-8", "replace")[:_LAST_MATCH_CHARS]
    return redact("".join(ch if ch.isprintable() else " " for ch in text))


def build(settings: Settings) -> Check:
    return Collector(settings)
