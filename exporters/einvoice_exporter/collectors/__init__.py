"""Collectors: one file per kind of target, registered by one line in `KINDS` below.

Writing a collector (the whole API)
----------------------------------

A kind is a module `collectors/<kind>.py` plus its name in `KINDS`. The module defines:

* `Settings` — a strict pydantic model (`StrictModel`): the block `<kind>:` of a module config.
  The schema derives the `kind: <kind>` module model from it; nothing else is edited.
* `build(settings) -> Check` — builds the collector (any object with `run(target, timeout)` and
  `close()`, see `outcome.Check`). Import client libraries inside it, never at module level.
* optionally `validate_target(target)` — raise `ValueError` with a sentence for a bad target.
* optionally `unanswered(metrics)` — the kind's own "could not read it" series (`redis_up 0`),
  which the runtime adds when a run timed out or raised before the collector could say so.

Inside `run`, three helpers from this package, and nothing else, carry time and failure:

* `Deadline(timeout)` — the run's time budget, with an injectable `clock`. `deadline.remaining(
  "connecting")` gives the seconds left for a blocking call *and* records "connecting" as the
  phase the run is in, so a run the scheduler has to abandon is reported as e.g. "no result within
  5s (phase: reading the body)"; it raises `CheckError(Reason.TIMEOUT, ...)` when no time is left.
  `deadline.phase("...")` records a phase without asking for time; `deadline.left()` never raises.
* `CheckError(reason, detail)` — the one way to fail: a bounded `Reason` from
  `einvoice_core.contract` and a one-line English detail (no secrets, no taxpayer data). Raise it
  anywhere inside `run`; if it escapes, the runtime turns it into the failed outcome. Catch it
  yourself (`outcome.fail_with(exc)`) only to keep the metrics measured before the failure.
* `Outcome` — what `run` returns: a `MetricSet` (`outcome.metrics.gauge(...)`) and the failure.
  The runtime adds `probe_success`/`probe_duration_seconds` when a kind does not, the identity
  labels and the `einvoice_check_*` series, whatever happened (timeout, exception, cache).

Minimal example (`collectors/echo.py` + `"echo"` in `KINDS`)::

    from ..fields import StrictModel
    from ..outcome import Check, Outcome, Reason
    from . import CheckError, Deadline

    class Settings(StrictModel):
        greeting: str = "ping"

    def validate_target(target: str) -> str:
        if ":" not in target:
            raise ValueError("write the target as host:port")
        return target

    class Collector:
        def __init__(self, settings: Settings) -> None:
            self.settings = settings

        def run(self, target: str, timeout: float) -> Outcome:
            deadline = Deadline(timeout)
            outcome = Outcome()
            reply = talk(target, self.settings.greeting, timeout=deadline.remaining("waiting for the reply"))
            if reply != "pong":
                raise CheckError(Reason.BAD_CONTENT, "the reply is not pong")
            outcome.metrics.gauge("echo_reply_bytes", "Bytes of the reply", len(reply))
            return outcome

        def close(self) -> None:
            pass

    def build(settings: Settings) -> Check:
        return Collector(settings)

Porting a collector written in the previous style: delete the five schema edits (the registry line
replaces them), replace the module's own error class and deadline arithmetic with `CheckError` and
`Deadline`, and keep `Settings`/`build`/`validate_target` as they are.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from einvoice_core.contract import Reason

if TYPE_CHECKING:
    from ..fields import StrictModel
    from ..outcome import Check, MetricSet

KINDS: tuple[str, ...] = (
    "dns",
    "tcp",
    "tls",
    "http",
    "redis",
    "redis_cluster",
    "elasticsearch",
    "kafka",
    "docker",
    "weblogic",
    "json_values",
    "service_registry",
    "logfile",
    "nginx",
    "sql",
    "goldengate",
    "params",
)
"""The registry: a kind's name is the name of its file in this package. One line per kind."""

Clock = Callable[[], float]


class CheckError(Exception):
    """The one way a collector fails: a bounded reason and a one-line English detail."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Progress:
    """What a run is doing right now, written by the collector (through its `Deadline`) and read
    by the runtime when it gives up waiting, to say which phase a timed-out check was in."""

    __slots__ = ("detail", "phase")

    def __init__(self) -> None:
        self.phase = "waiting for a free worker"
        self.detail = ""
        """A short fact about the phase, e.g. "65536 body bytes read"."""

    def doing(self) -> str:
        """The phase and its fact: "reading the body (65536 body bytes read)"."""
        return self.phase + (f" ({self.detail})" if self.detail else "")


_PROGRESS: contextvars.ContextVar[Progress | None] = contextvars.ContextVar("einvoice_check_progress",
                                                                           default=None)


@contextmanager
def tracking(progress: Progress) -> Iterator[Progress]:
    """Used by the runtime around `check.run`: Deadlines created inside report to `progress`."""
    token = _PROGRESS.set(progress)
    try:
        yield progress
    finally:
        _PROGRESS.reset(token)


class Deadline:
    """The time left of one run; every blocking step takes its timeout from here.

    `clock` is injectable (tests drive it by hand); `progress` defaults to the one the runtime
    is tracking for this run, or a private one when the collector runs outside the runtime.
    """

    def __init__(self, timeout: float, *, clock: Clock = time.monotonic,
                 progress: Progress | None = None) -> None:
        self.clock = clock
        self.timeout = max(timeout, 0.0)
        self.start = clock()
        self.end = self.start + self.timeout
        self.progress = progress or _PROGRESS.get() or Progress()

    def phase(self, name: str, detail: str = "") -> None:
        """Record what the run is doing now (a phrase: "connecting", "reading the body")."""
        self.progress.phase = name
        self.progress.detail = detail

    def remaining(self, what: str | None = None) -> float:
        """Seconds left for the next blocking step (`what`, recorded as the phase); raises
        CheckError(timeout) when none are left."""
        if what is not None and what != self.progress.phase:
            self.phase(what)
        left = self.end - self.clock()
        if left <= 0:
            raise CheckError(Reason.TIMEOUT, f"deadline reached before {what or self.progress.phase}")
        return left

    def left(self, floor: float = 0.0) -> float:
        """Seconds left, at least `floor`; never raises (for client libraries that want a number)."""
        return max(self.end - self.clock(), floor)

    def expired(self) -> bool:
        return self.clock() >= self.end

    def elapsed(self) -> float:
        return self.clock() - self.start

    def doing(self) -> str:
        """What the run is doing now, for a failure's detail ("timeout during " + doing())."""
        return self.progress.doing()


# --- the registry ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Kind:
    """A registered kind, read from its module."""

    name: str
    settings: type[StrictModel]
    build: Callable[[Any], Check]
    validate_target: Callable[[str], object] | None
    unanswered: Callable[[MetricSet], None] | None


@functools.cache
def kinds() -> dict[str, Kind]:
    """Every registered kind, in `KINDS` order (imports the collector modules, not their clients)."""
    found: dict[str, Kind] = {}
    for name in KINDS:
        module = importlib.import_module(f"{__name__}.{name}")
        for required in ("Settings", "build"):
            if not hasattr(module, required):
                raise TypeError(f"collector module {module.__name__} has no {required}")
        found[name] = Kind(name, module.Settings, module.build, getattr(module, "validate_target", None),
                           getattr(module, "unanswered", None))
    return found


def validate_target(kind: str, target: str) -> None:
    """Raise ValueError with the kind's sentence when `target` is not usable by `kind`."""
    validate = kinds()[kind].validate_target
    if validate is not None:
        validate(target)


def build_check(module: Any) -> Check:
    """Build the collector of one module config (`module.kind`, settings in `module.<kind>`)."""
    kind = kinds()[module.kind]
    return kind.build(getattr(module, module.kind))
