"""Run the configured checks: concurrency, deadlines, retries, background refresh, reload.

One `Check` is built per module. A /metrics scrape starts every check without an `interval` in a
bounded thread pool and waits for each until its own deadline, so such a scrape lasts about as long
as the slowest check. Checks with an `interval` are run by the background scheduler (`start()`)
once per interval, and a scrape serves their latest result without waiting (only a check's very
first result is awaited); a served result older than `stale_after_intervals` intervals becomes a
failure (reason timeout, `stale: ...`). A run still going at its deadline is reported as a timeout
and is not started again until it ends, so a hung target cannot pile up threads. Concurrent scrapes
(an HA pair of Prometheus servers) share a run that is in flight instead of starting a second one.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from importlib import metadata

from prometheus_client.core import Metric

from einvoice_core.catalogue import ITEMS, get_item, normalize_item_id
from einvoice_core.contract import REASON_FAILURE_CLASS, FailureClass
from einvoice_core.thresholds import shipped

from . import selfmetrics as sm
from .collectors import CheckError, Progress, build_check, kinds, tracking, validate_target
from .exposition import encode, family_header, is_simple, label_text, sample_line
from .outcome import _SUFFIX, IDENTITY_LABELS, Check, MetricSet, Outcome, Reason, merge_families
from .schema import KIND_NAMES, CheckConfig, ExporterConfig, Module

log = logging.getLogger("einvoice_exporter.runtime")

CheckFactory = Callable[[Module], Check]
Clock = Callable[[], float]

PROBE_COUNTERS_MAX = 10_000
"""Distinct module/target/item triples whose /probe failure counters are remembered."""
_MIN_TIMEOUT = 0.1
_GRACE = 0.05
"""A run returning this much after its deadline still counts (thread wake-up jitter)."""
_SCHEDULER_MAX_SLEEP = 1.0
"""The scheduler looks at least this often (clock jumps, runs overrunning their deadline)."""


@functools.cache
def version() -> str:
    try:
        return metadata.version("einvoice-monitoring")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True, slots=True)
class Result:
    """The result of one run of a check, as served until the next run."""

    outcome: Outcome
    attempts: int
    duration: float
    started: float
    """Wall-clock time (the injected clock) when the run started."""

    @property
    def up(self) -> bool:
        return self.outcome.success

    @property
    def reason(self) -> Reason | None:
        return self.outcome.failure.reason if self.outcome.failure else None


def _timeout_outcome(seconds: float, detail: str = "", progress: Progress | None = None) -> Outcome:
    """A timeout decided by the scheduler; `progress` says which phase the abandoned run was in."""
    detail = detail or f"no result within {seconds:.3g}s"
    if progress is not None:
        fact = f", {progress.detail}" if progress.detail else ""
        detail += f" (phase: {progress.phase}{fact})"
    return Outcome().fail(Reason.TIMEOUT, detail)


class _Handle:
    """A built Check and how many runs use it, so that a reload closes it only once they end."""

    def __init__(self, name: str, check: Check) -> None:
        self.name = name
        self.check = check
        self._lock = threading.Lock()
        self._active = 0
        self._retired = False

    def enter(self) -> None:
        with self._lock:
            self._active += 1

    def leave(self) -> None:
        with self._lock:
            self._active -= 1
            close_now = self._retired and self._active == 0
        if close_now:
            self._close()

    def retire(self) -> None:
        with self._lock:
            self._retired = True
            close_now = self._active == 0
        if close_now:
            self._close()

    def _close(self) -> None:
        try:
            self.check.close()
        except Exception:
            log.exception("closing the check of module %s failed", self.name)


class _Run:
    """One execution of a check (all its attempts); awaited by one or more scrapes."""

    def __init__(self, started: float, started_mono: float, timeout: float) -> None:
        self.started = started
        self.started_mono = started_mono
        self.timeout = timeout
        self.deadline = started_mono + timeout
        self.attempts = 0
        self.finished = float("inf")
        """Monotonic time the last attempt returned."""
        self.future: Future[Outcome] | None = None
        self.progress = Progress()
        """The phase the collector is in, written by its Deadline; read at the deadline."""
        self.result: Result | None = None
        """Set once, by whichever scrape settles the run first."""


def execute(handle: _Handle, target: str, retries: int, run: _Run,
            monotonic: Clock = time.monotonic) -> Outcome:
    """All attempts of one run, before its deadline; an escaping exception becomes reason `error`.

    The deadline counts from submission, so time spent queued for a worker is part of it."""
    deadline, timeout = run.deadline, run.timeout
    handle.enter()
    try:
        while True:
            remaining = deadline - monotonic()
            if remaining <= 0:
                return _timeout_outcome(timeout, "waited for a free worker past the deadline")
            run.attempts += 1
            try:
                run.progress.phase, run.progress.detail = "running", ""
                with tracking(run.progress):
                    outcome = handle.check.run(target, remaining)
            except CheckError as exc:
                outcome = Outcome().fail_with(exc)
            except Exception as exc:
                log.exception("check of module %s raised on target %s (a collector bug)", handle.name, target)
                return Outcome().fail(Reason.ERROR, f"collector raised {type(exc).__name__}")
            remaining = deadline - monotonic()
            if outcome.success or run.attempts > retries or remaining <= 0.05 * timeout:
                return outcome
            log.debug("module %s target %s attempt %d failed (%s), retrying", handle.name, target,
                      run.attempts, outcome.failure.reason if outcome.failure else "")
    finally:
        run.finished = monotonic()
        handle.leave()


_UNIFORM = (sm.CHECK_UP, sm.CHECK_DEGRADED, sm.CHECK_DURATION, sm.CHECK_FAILURES, sm.CHECK_ATTEMPTS,
            sm.CHECK_LAST_RUN)
"""The uniform series in the order uniform_families() yields them."""


@dataclass(frozen=True, slots=True)
class _Fragment:
    """One check's share of a /metrics exposition, rendered once per served result: the sample lines
    of each uniform family, and of each of its own families (name, type, help, lines)."""

    result: Result
    failures: tuple[int, ...]
    uniform: tuple[str, ...]
    details: tuple[tuple[str, str, str, str], ...]
    simple: bool
    """Every family is of a type the lean encoder writes (else the scrape takes the generic path)."""


def _render_fragment(state: _CheckState, result: Result, failures: dict[Reason, int]) -> _Fragment:
    """The lines encode(collect()) writes for this check, identity labels first, as
    uniform_families() and merge_families() build them."""
    ident = state.identity_text
    (up, degraded_, duration, _failures, attempts, last_run) = (b.name for b in _UNIFORM)
    uniform = (
        sample_line(up, ident, 1 if result.up else 0),
        sample_line(degraded_, ident, degraded(result, state.config.failure_class)),
        sample_line(duration, ident, result.duration),
        state.failure_lines(failures),
        sample_line(attempts, ident, result.attempts),
        sample_line(last_run, ident, result.started),
    )
    details, simple = _detail_lines(with_basics(result, state.module.kind), ident)
    return _Fragment(result, tuple(failures.values()), uniform, details, simple)


def _detail_lines(metrics: MetricSet, ident: str) -> tuple[tuple[tuple[str, str, str, str], ...], bool]:
    """(name, type, help, sample lines) per family of `metrics`, `ident` (rendered identity labels,
    possibly empty) first in every sample, as merge_families() orders them; and whether every
    family is of a type the lean encoder writes."""
    details = []
    simple = True
    prefix = ident + "," if ident else ""
    for name, type_, documentation, samples in metrics.items():
        simple = simple and is_simple(type_)
        lines = []
        for own, value in samples:
            suffix = own.get(_SUFFIX, "")
            if suffix:
                own = {k: v for k, v in own.items() if k != _SUFFIX}
            labels = prefix + label_text(own) if own else ident
            lines.append(sample_line(name + suffix, labels, value))
        details.append((name, type_, documentation, "".join(lines)))
    return tuple(details), simple


@dataclass(eq=False)
class _CheckState:
    config: CheckConfig
    module: Module
    zone: str
    failures: dict[Reason, int] = field(default_factory=lambda: dict.fromkeys(Reason, 0))
    last: Result | None = None
    run: _Run | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    stale: Result | None = None
    """The failure served while `last` is too old (counted once per episode); cleared by record."""
    fragment: _Fragment | None = None
    """The exposition lines of the result last rendered, reused while it is served."""
    identity_text: str = ""
    _failure_lines: tuple[tuple[int, ...], str] = ((), "")

    @property
    def identity(self) -> dict[str, str]:
        return dict(zip(IDENTITY_LABELS, self.label_values(), strict=True))

    def label_values(self) -> tuple[str, str, str, str, str]:
        return (self.config.item, self.zone, self.config.name, self.config.target,
                self.config.resolved_system)

    def __post_init__(self) -> None:
        self.identity_text = label_text(self.identity)

    def failure_lines(self, failures: dict[Reason, int]) -> str:
        """The einvoice_check_failures_total lines for these counts (they rarely change)."""
        counts = tuple(failures.values())
        cached = self._failure_lines
        if cached[0] != counts:
            name = sm.CHECK_FAILURES.name
            text = "".join(sample_line(name, f'{self.identity_text},reason="{reason.value}"', count)
                           for reason, count in failures.items())
            cached = self._failure_lines = (counts, text)
        return cached[1]

    def record(self, result: Result) -> Result:
        self.last = result
        self.stale = None
        if result.reason is not None:
            self.failures[result.reason] += 1
        return result


class _Generation:
    """Everything built from one configuration; retired after a reload once no scrape uses it."""

    def __init__(self, config: ExporterConfig, factory: CheckFactory, loaded_at: float) -> None:
        self.config = config
        self.loaded_at = loaded_at
        self.handles: dict[str, _Handle] = {}
        try:
            for name, module in config.modules.items():
                self.handles[name] = _Handle(name, factory(module))
        except BaseException:
            for handle in self.handles.values():
                handle.retire()
            raise
        self.states: list[_CheckState] = [
            _CheckState(check, config.modules[check.module], get_item(check.item).zone.value)
            for check in config.checks
        ]
        workers = config.global_.max_concurrency
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="check")
        self.probe_pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe")
        self._lock = threading.Lock()
        self._users = 0
        self._retired = False

    def try_enter(self) -> bool:
        """Start using this generation, unless a reload has already retired it."""
        with self._lock:
            if self._retired:
                return False
            self._users += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self._users -= 1
            done = self._retired and self._users == 0
        if done:
            self._shutdown()

    def retire(self) -> None:
        with self._lock:
            self._retired = True
            done = self._users == 0
        if done:
            self._shutdown()

    def _shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.probe_pool.shutdown(wait=False, cancel_futures=True)
        for handle in self.handles.values():
            handle.retire()

    def adopt(self, old: _Generation) -> None:
        """Keep counters (and cached results of unchanged checks) across a reload."""
        previous = {state.config.name: state for state in old.states}
        for state in self.states:
            before = previous.get(state.config.name)
            if before is None or before.label_values() != state.label_values():
                continue
            with before.lock:
                state.failures = dict(before.failures)
                if before.config == state.config and before.module == state.module:
                    state.last = before.last


@dataclass(frozen=True, slots=True)
class CheckRow:
    """What the landing page shows of one check."""

    name: str
    item: str
    zone: str
    module: str
    kind: str
    target: str
    interval: float | None
    last: Result | None


@dataclass(frozen=True, slots=True)
class _Probed:
    """The answer to one /probe request: the run's result and the uniform series' inputs."""

    result: Result
    kind: str
    label_values: tuple[str, ...]
    failures: dict[Reason, int]
    failure_class: FailureClass | None = None

    def _uniform(self) -> list[Metric]:
        overrides = {self.label_values: self.failure_class} if self.failure_class else None
        return uniform_families([(self.label_values, self.failures, self.result)], overrides)

    def families(self) -> list[Metric]:
        """Detail metrics without identity labels, then the uniform series."""
        return [*merge_families([({}, with_basics(self.result, self.kind))]), *self._uniform()]

    def exposition(self, openmetrics: bool) -> bytes:
        details, simple = _detail_lines(with_basics(self.result, self.kind), "")
        if not simple:
            return encode(self.families(), openmetrics)
        head = []
        for name, type_, documentation, lines in details:
            base = name.removesuffix("_total") if type_ == "counter" else name
            head.append(family_header(base, type_, documentation, openmetrics))
            head.append(lines)
        return encode(self._uniform(), openmetrics, head)


class ProbeRequestError(ValueError):
    """A /probe request that cannot be served as asked (answered 400)."""


class Runtime:
    """The running exporter: the current configuration, its checks, their results."""

    def __init__(self, config: ExporterConfig, *, check_factory: CheckFactory = build_check,
                 clock: Clock = time.time, monotonic: Clock = time.monotonic,
                 loader: Callable[[], ExporterConfig] | None = None, background: bool = False) -> None:
        """`background`: checks with an interval are refreshed by the scheduler (`start()`, or
        `refresh()` called by hand in tests) and scrapes only serve their results; without it they
        run inside a scrape when their interval has passed (the scheduler's thread not running)."""
        self._background = background
        self._scheduler: threading.Thread | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._factory = check_factory
        self._clock = clock
        self._monotonic = monotonic
        self._loader = loader
        self._reload_lock = threading.Lock()
        self._generation = _Generation(config, check_factory, clock())
        self.last_reload_ok = True
        self.last_reload_success = self._generation.loaded_at
        self.last_reload_error = ""
        self._overrunning: set[_Run] = set()
        self._overrun_lock = threading.Lock()
        self._probe_failures: OrderedDict[tuple[str, str, str], dict[Reason, int]] = OrderedDict()
        self._probe_lock = threading.Lock()

    @property
    def config(self) -> ExporterConfig:
        return self._generation.config

    # ---- reload -------------------------------------------------------------------------------

    def reload(self) -> tuple[bool, str]:
        """Load the file again; on any problem keep the running configuration and say why."""
        if self._loader is None:
            return False, "this runtime was not started from a file"
        with self._reload_lock:
            try:
                config = self._loader()
                new = _Generation(config, self._factory, self._clock())
            except Exception as exc:
                self.last_reload_ok = False
                self.last_reload_error = str(exc)
                log.error("reloading the configuration failed; the previous one keeps running:\n%s", exc)
                return False, str(exc)
            old = self._generation
            new.adopt(old)
            self._generation = new
            old.retire()
            self.last_reload_ok = True
            self.last_reload_error = ""
            self.last_reload_success = new.loaded_at
            log.info("configuration reloaded: %d modules, %d checks", len(config.modules), len(config.checks))
            self._wake.set()
            return True, "configuration reloaded"

    def mark_reload_failed(self, message: str) -> None:
        """Another part of a reload (the web config) failed: show it in the same metric."""
        self.last_reload_ok = False
        self.last_reload_error = message

    def close(self) -> None:
        """Stop the scheduler and close the checks (their pooled connections) once runs end."""
        self._stopping.set()
        self._wake.set()
        scheduler = self._scheduler
        if scheduler is not None and scheduler is not threading.current_thread():
            scheduler.join(timeout=5.0)
        self._generation.retire()

    # ---- background refresh -------------------------------------------------------------------

    def start(self) -> None:
        """Start the scheduler thread that runs checks with an interval in the background."""
        if not self._background:
            raise RuntimeError("this runtime was built without background=True")
        if self._scheduler is not None:
            return
        self._scheduler = threading.Thread(target=self._schedule, name="scheduler", daemon=True)
        self._scheduler.start()

    def _schedule(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()  # before the pass: a run ending during it wakes the next one at once
            try:
                wait = self.refresh()
            except RuntimeError:  # closed
                return
            except Exception:
                log.exception("the background scheduler's pass failed; trying again")
                wait = _SCHEDULER_MAX_SLEEP
            self._wake.wait(min(max(wait, 0.0), _SCHEDULER_MAX_SLEEP))

    def refresh(self) -> float:
        """One pass of the scheduler over the checks with an interval: record a timeout for runs
        past their deadline, start the runs that are due. Returns the seconds until the next thing
        to do (a run due or a deadline; infinite when there is none).

        Runs due within a quarter of their interval (at most 1 s) start in the same pass, and all
        runs of a pass count as started at the pass's time: checks fall into step (also after a
        slow first run or a run that outlasted its interval) and the scheduler wakes about once per
        interval, not once per check."""
        gen = self._acquire()
        try:
            wait = float("inf")
            started: list[tuple[_CheckState, _Run]] = []
            now, wall = self._monotonic(), self._clock()
            for state in gen.states:
                interval = state.config.interval
                if interval is None:
                    continue
                overdue: _Run | None = None
                with state.lock:
                    run = state.run
                    if run is not None and run.future is not None and not run.future.done():
                        if run.result is not None:
                            continue  # recorded as a timeout; not restarted until it ends
                        if now < run.deadline:
                            wait = min(wait, run.deadline - now)
                            continue
                        overdue = run
                    elif run is not None and run.future is not None and run.result is None:
                        overdue = run  # ended, its completion not yet recorded
                    else:
                        last = state.last
                        due = 0.0 if last is None else last.started + interval - wall
                        if due > min(interval / 4, 1.0):
                            wait = min(wait, due)
                            continue
                        timeout = self._timeout(state.module.timeout, None)
                        # The pass's time, not each run's: runs started together stay due together.
                        run = self._start(gen, state, gen.handles[state.config.module], timeout, wall)
                        state.run = run
                        started.append((state, run))
                        wait = min(wait, timeout, interval)
                if overdue is not None:
                    self._settle(state, overdue, overdue.deadline)
                    wait = 0.0
            for state, run in started:
                assert run.future is not None
                run.future.add_done_callback(functools.partial(self._ran, state, run))
            return wait
        finally:
            gen.leave()

    def _ran(self, state: _CheckState, run: _Run, _future: Future[Outcome]) -> None:
        """A background run ended: record its result and render its lines here, off the scrape's
        path; wake the scheduler when the run outlasted its interval (the next one is due now)."""
        try:
            result = self._settle(state, run, run.deadline)
            with state.lock:
                failures = dict(state.failures) if state.last is result else None
            if failures is not None:
                state.fragment = _render_fragment(state, result, failures)
        finally:
            interval = state.config.interval
            if interval is None or self._clock() >= run.started + interval:
                self._wake.set()

    def _served(self, gen: _Generation, state: _CheckState, last: Result, interval: float) -> Result:
        """The latest result of a background check, or a failure when it is too old (call with
        state.lock held)."""
        factor = gen.config.global_.stale_after_intervals
        age = self._clock() - last.started
        if age <= factor * interval:
            return last
        if state.stale is None:
            run = state.run
            if run is not None and run.future is not None and not run.future.done():
                going = f"a run has been going for {self._monotonic() - run.started_mono:.0f}s"
            else:
                going = "no run is going: the scheduler is behind"
            detail = (f"stale: the last result started {age:.0f}s ago, more than {factor:g} x the"
                      f" interval of {interval:g}s ({going})")
            state.stale = Result(Outcome().fail(Reason.TIMEOUT, detail), last.attempts, last.duration,
                                 last.started)
            state.failures[Reason.TIMEOUT] += 1
            log.warning("check %s on %s: %s", state.config.name, state.config.target, detail)
        return state.stale

    def _acquire(self) -> _Generation:
        """The current generation, entered (a reload may retire one between reading and entering)."""
        while True:
            gen = self._generation
            if gen.try_enter():
                return gen
            if gen is self._generation:
                raise RuntimeError("the runtime is closed")

    # ---- /metrics -----------------------------------------------------------------------------

    def _timeout(self, module_timeout: float, budget: float | None) -> float:
        timeout = module_timeout if budget is None else min(module_timeout, budget)
        return max(timeout, _MIN_TIMEOUT)

    def budget(self, scrape_timeout: float | None) -> float | None:
        """Time a scrape may spend: Prometheus' scrape timeout minus the configured offset."""
        if scrape_timeout is None:
            return None
        return scrape_timeout - self._generation.config.global_.scrape_timeout_offset

    def _start(self, gen: _Generation, state: _CheckState, handle: _Handle, timeout: float,
               started: float | None = None) -> _Run:
        run = _Run(self._clock() if started is None else started, self._monotonic(), timeout)
        run.future = gen.pool.submit(execute, handle, state.config.target, state.module.retries, run,
                                     self._monotonic)
        return run

    def _begin(self, gen: _Generation, state: _CheckState, budget: float | None
               ) -> Result | tuple[_Run, float]:
        """A cached result, or the run to await and this scrape's own deadline for it."""
        timeout = self._timeout(state.module.timeout, budget)
        with state.lock:
            interval = state.config.interval
            last = state.last
            if interval is not None and last is not None:
                if self._background:
                    return self._served(gen, state, last, interval)
                if self._clock() < last.started + interval:
                    return last
            now = self._monotonic()
            run = state.run
            if run is not None and run.future is not None:
                if run.result is None and now < run.deadline:
                    return run, now + timeout
                if not run.future.done():
                    return state.record(Result(
                        _timeout_outcome(timeout, "the previous run is still going past its deadline",
                                         run.progress),
                        run.attempts, now - run.started_mono, run.started))
            run = self._start(gen, state, gen.handles[state.config.module], timeout)
            state.run = run
            return run, run.deadline

    def _settle(self, state: _CheckState, run: _Run, my_deadline: float) -> Result:
        assert run.future is not None
        remaining = min(run.deadline, my_deadline) - self._monotonic()
        if remaining > 0 and not run.future.done():
            wait_futures([run.future], timeout=remaining)
        with state.lock:
            if run.result is not None:
                return run.result
            future = run.future
            now = self._monotonic()
            if future.done() and not future.cancelled() and run.finished <= run.deadline + _GRACE:
                outcome, duration = future.result(), run.finished - run.started_mono
            elif now >= run.deadline:
                if not future.cancel():
                    self._mark_overrunning(run)
                outcome, duration = _timeout_outcome(run.timeout, progress=run.progress), run.timeout
            else:
                # Our own deadline came before the shared run's: report without recording.
                return Result(_timeout_outcome(my_deadline - run.started_mono, progress=run.progress),
                              run.attempts, now - run.started_mono, run.started)
            run.result = state.record(Result(outcome, run.attempts, duration, run.started))
            if outcome.failure is not None:
                log.debug("check %s on %s failed: %s: %s", state.config.name, state.config.target,
                          outcome.failure.reason, outcome.failure.detail)
            return run.result

    def _mark_overrunning(self, run: _Run) -> None:
        with self._overrun_lock:
            self._overrunning.add(run)

        def done(_: Future[Outcome]) -> None:
            with self._overrun_lock:
                self._overrunning.discard(run)

        assert run.future is not None
        run.future.add_done_callback(done)

    def run_checks(self, scrape_timeout: float | None = None
                   ) -> list[tuple[_CheckState, Result, dict[Reason, int]]]:
        """Results (and failure counters) of all checks for one scrape, running those that are due."""
        gen = self._acquire()
        try:
            return self._run_checks(gen, scrape_timeout)
        finally:
            gen.leave()

    def _run_checks(self, gen: _Generation, scrape_timeout: float | None
                    ) -> list[tuple[_CheckState, Result, dict[Reason, int]]]:
        budget = self.budget(scrape_timeout)
        begun = [(state, self._begin(gen, state, budget)) for state in gen.states]
        results = []
        for state, begin in begun:
            result = begin if isinstance(begin, Result) else self._settle(state, *begin)
            with state.lock:
                failures = dict(state.failures)
            results.append((state, result, failures))
        return results

    def collect(self, scrape_timeout: float | None = None) -> Iterator[Metric]:
        """Everything /metrics shows except the process/platform collectors."""
        started = self._monotonic()
        gen = self._acquire()
        try:
            results = self._run_checks(gen, scrape_timeout)
        finally:
            gen.leave()
        yield from uniform_families(((state.label_values(), failures, result)
                                     for state, result, failures in results),
                                    {state.label_values(): state.config.failure_class
                                     for state, _, _ in results if state.config.failure_class})
        yield from merge_families((state.identity, with_basics(result, state.module.kind))
                                  for state, result, _ in results)
        yield from self._own_families(gen, started)

    def render(self, scrape_timeout: float | None = None, openmetrics: bool = False,
               extra: Callable[[], Iterable[Metric]] = tuple) -> bytes:
        """The /metrics exposition: what encode(collect()) writes, followed by `extra` families,
        with each check's lines rendered once per result and reused while that result is served
        (a check with an interval serves one result for many scrapes)."""
        started = self._monotonic()
        gen = self._acquire()
        try:
            results = self._run_checks(gen, scrape_timeout)
        finally:
            gen.leave()
        fragments = []
        for state, result, failures in results:
            fragment = state.fragment
            counts = tuple(failures.values())
            if fragment is None or fragment.result is not result or fragment.failures != counts:
                fragment = state.fragment = _render_fragment(state, result, failures)
            fragments.append(fragment)
        if not all(fragment.simple for fragment in fragments):
            def families() -> Iterator[Metric]:
                yield from uniform_families(((state.label_values(), failures, result)
                                             for state, result, failures in results),
                                            {state.label_values(): state.config.failure_class
                                             for state, _, _ in results if state.config.failure_class})
                yield from merge_families((state.identity, with_basics(result, state.module.kind))
                                          for state, result, _ in results)
                yield from self._own_families(gen, started)
                yield from extra()
            return encode(families(), openmetrics)
        head: list[str] = []
        for index, builtin in enumerate(_UNIFORM):
            head.append(family_header(builtin.name.removesuffix("_total") if builtin.type == "counter"
                                      else builtin.name, builtin.type, builtin.documentation, openmetrics))
            head.extend(fragment.uniform[index] for fragment in fragments)
        merged: dict[str, tuple[str, str, list[str]]] = {}
        for fragment in fragments:
            for name, type_, documentation, lines in fragment.details:
                family = merged.get(name)
                if family is None:
                    family = merged[name] = (type_, documentation, [])
                family[2].append(lines)
        for name, (type_, documentation, parts) in merged.items():
            base = name.removesuffix("_total") if type_ == "counter" else name
            head.append(family_header(base, type_, documentation, openmetrics))
            head.extend(parts)
        return encode([*self._own_families(gen, started), *extra()], openmetrics, head)

    def _own_families(self, gen: _Generation, started: float) -> Iterator[Metric]:
        """The exporter's own series (catalogue, configuration, reloads, build, this scrape)."""
        yield sm.ITEM_INFO.family(((item.id, item.name_zh, item.zone.value), 1) for item in ITEMS)
        config = gen.config
        yield sm.ITEM_MONITORED_ELSEWHERE.family(((item,), 1) for item in sorted(config.monitored_elsewhere))
        kinds = dict.fromkeys(KIND_NAMES, 0)
        for module in config.modules.values():
            kinds[module.kind] += 1
        yield sm.CHECKS_CONFIGURED.family([((), len(config.checks))])
        yield sm.MODULES_CONFIGURED.family(((kind,), count) for kind, count in kinds.items())
        with self._overrun_lock:
            overrunning = len(self._overrunning)
        yield sm.CHECKS_OVERRUNNING.family([((), overrunning)])
        yield sm.CONFIG_RELOAD_OK.family([((), 1 if self.last_reload_ok else 0)])
        yield sm.CONFIG_RELOAD_TIME.family([((), self.last_reload_success)])
        yield sm.BUILD_INFO.family([((version(), ".".join(map(str, sys.version_info[:3]))), 1)])
        yield sm.SCRAPE_DURATION.family([((), self._monotonic() - started)])

    def log_matches(self) -> dict[str, dict[str, dict[str, tuple[float, str]]]]:
        """module -> target -> class -> (time, redacted line), from checks that keep them (logfile)."""
        handles = self._generation.handles.items()
        return {name: h.check.last_matches() for name, h in handles if hasattr(h.check, "last_matches")}

    def rows(self) -> list[CheckRow]:
        """The configured checks and their last results, without running anything."""
        rows = []
        for state in self._generation.states:
            with state.lock:
                last = state.stale or state.last
            rows.append(CheckRow(state.config.name, state.config.item, state.zone, state.config.module,
                                 state.module.kind, state.config.target, state.config.interval, last))
        return rows

    # ---- /probe -------------------------------------------------------------------------------

    def probe(self, module_name: str | None, target: str | None, item: str | None = None,
              scrape_timeout: float | None = None, check: str | None = None) -> list[Metric]:
        """The families of probe_exposition(), for callers that want metric objects."""
        return self._probed(module_name, target, item, scrape_timeout, check).families()

    def probe_exposition(self, module_name: str | None, target: str | None, item: str | None = None,
                         scrape_timeout: float | None = None, check: str | None = None,
                         openmetrics: bool = False) -> bytes:
        """What /probe answers, written without building metric objects when the types allow."""
        return self._probed(module_name, target, item, scrape_timeout, check).exposition(openmetrics)

    def _probed(self, module_name: str | None, target: str | None, item: str | None = None,
                scrape_timeout: float | None = None, check: str | None = None) -> _Probed:
        """Blackbox-style probe of one target with one module: detail metrics without identity
        labels, plus the uniform series with check=<module>. `check` names a configured check instead
        (`/probe?check=NAME`, what `--file-sd` generates): its module, target and item, and
        check=<NAME>; a check with an interval refreshed in the background is served as /metrics
        serves it (its latest result, stale when too old, its own failure counters), one without
        runs now. Raises ProbeRequestError for a bad request."""
        gen = self._acquire()
        try:
            check_name = None
            if check:
                configured = next((c for c in gen.config.checks if c.name == check), None)
                if configured is None:
                    raise ProbeRequestError(f"unknown check {check!r}")
                if module_name or target or item:
                    raise ProbeRequestError("check names its module, target and item; "
                                            "do not combine it with module, target or item")
                module_name, target, item = configured.module, configured.target, configured.item
                check_name = configured.name
                if self._background and configured.interval is not None:
                    state = next(s for s in gen.states if s.config is configured)
                    return self._probe_state(gen, state, scrape_timeout)
            return self._probe(gen, module_name, target, item, scrape_timeout, check_name)
        finally:
            gen.leave()

    def _probe_state(self, gen: _Generation, state: _CheckState, scrape_timeout: float | None
                     ) -> _Probed:
        begin = self._begin(gen, state, self.budget(scrape_timeout))
        result = begin if isinstance(begin, Result) else self._settle(state, *begin)
        with state.lock:
            failures = dict(state.failures)
        return _Probed(result, state.module.kind, state.label_values(), failures, state.config.failure_class)

    def _probe(self, gen: _Generation, module_name: str | None, target: str | None, item: str | None,
               scrape_timeout: float | None, check_name: str | None = None) -> _Probed:
        if not module_name:
            raise ProbeRequestError("the module parameter is missing; use /probe?module=NAME&target=TARGET")
        module = gen.config.modules.get(module_name)
        if module is None:
            known = ", ".join(sorted(gen.config.modules)) or "none"
            raise ProbeRequestError(f"unknown module {module_name!r} (configured: {known})")
        if not target:
            raise ProbeRequestError("the target parameter is missing; use /probe?module=NAME&target=TARGET")
        if len(target) > 512:
            raise ProbeRequestError("the target is longer than 512 characters")
        try:
            validate_target(module.kind, target)
        except ValueError as exc:
            raise ProbeRequestError(f"target {target!r}: {exc}") from None
        try:
            item_id = normalize_item_id(item) if item else module.item
        except ValueError as exc:
            raise ProbeRequestError(f"item parameter: {exc}") from None
        if item_id is None:
            raise ProbeRequestError(f"module {module_name!r} has no item; "
                                    "add &item=NN (01 to 20) to the request")
        zone = get_item(item_id).zone.value

        timeout = self._timeout(module.timeout, self.budget(scrape_timeout))
        run = _Run(self._clock(), self._monotonic(), timeout)
        future = gen.probe_pool.submit(execute, gen.handles[module_name], target, module.retries, run,
                                       self._monotonic)
        run.future = future
        wait_futures([future], timeout=timeout)
        if future.done() and not future.cancelled() and run.finished <= run.deadline + _GRACE:
            outcome, duration = future.result(), run.finished - run.started_mono
        else:
            if not future.cancel():
                self._mark_overrunning(run)
            outcome, duration = _timeout_outcome(timeout, progress=run.progress), timeout
        result = Result(outcome, run.attempts, duration, run.started)

        failures = self._probe_count(module_name, target, item_id, result.reason)
        configured = next((c for c in gen.config.checks if check_name and c.name == check_name), None)
        system = configured.resolved_system if configured else shipped().default_system(item_id)
        return _Probed(result, module.kind, (item_id, zone, check_name or module_name, target, system),
                       failures)

    def _probe_count(self, module: str, target: str, item: str, reason: Reason | None) -> dict[Reason, int]:
        key = (module, target, item)
        with self._probe_lock:
            counts = self._probe_failures.pop(key, None) or dict.fromkeys(Reason, 0)
            if reason is not None:
                counts[reason] += 1
            self._probe_failures[key] = counts
            while len(self._probe_failures) > PROBE_COUNTERS_MAX:
                self._probe_failures.popitem(last=False)
            return dict(counts)


def with_basics(result: Result, kind: str | None = None) -> MetricSet:
    """The run's metrics, plus probe_success and probe_duration_seconds as blackbox_exporter always
    shows them when the outcome does not carry them (a timeout, an exception, a kind without them),
    and the kind's own `unanswered` series when the run ended without the collector's word."""
    metrics = result.outcome.metrics
    names = metrics.names()
    hook = kinds()[kind].unanswered if kind in kinds() else None
    missing_own = hook is not None and not result.up and not names
    if "probe_success" in names and "probe_duration_seconds" in names and not missing_own:
        return metrics
    basics = MetricSet()
    basics.gauge("probe_success", "Displays whether or not the probe was a success", 1 if result.up else 0)
    basics.gauge("probe_duration_seconds", "Returns how long the probe took to complete in seconds",
                 result.duration)
    basics.extend(metrics, skip=("probe_success", "probe_duration_seconds"))
    if missing_own and hook is not None:
        hook(basics)
    return basics


def degraded(result: Result, override: FailureClass | None = None) -> int:
    """1 when the run failed with a failure of class degraded (the check's override, else the
    contract's class of the reason), 0 when it passed or the service is down."""
    if result.up or result.reason is None:
        return 0
    return 1 if (override or REASON_FAILURE_CLASS[result.reason]) is FailureClass.DEGRADED else 0


def uniform_families(
    entries: Iterable[tuple[tuple[str, ...], dict[Reason, int], Result]],
    failure_classes: Mapping[tuple[str, ...], FailureClass] | None = None,
) -> list[Metric]:
    """The einvoice_check_* series for (identity label values, failure counters, result) entries;
    `failure_classes` holds the checks' configured overrides of the failure class."""
    entries = list(entries)
    overrides = failure_classes or {}
    return [
        sm.CHECK_UP.family((labels, 1 if result.up else 0) for labels, _, result in entries),
        sm.CHECK_DEGRADED.family((labels, degraded(result, overrides.get(labels)))
                                 for labels, _, result in entries),
        sm.CHECK_DURATION.family((labels, result.duration) for labels, _, result in entries),
        sm.CHECK_FAILURES.family(((*labels, reason.value), count)
                                 for labels, failures, _ in entries for reason, count in failures.items()),
        sm.CHECK_ATTEMPTS.family((labels, result.attempts) for labels, _, result in entries),
        sm.CHECK_LAST_RUN.family((labels, result.started) for labels, _, result in entries),
    ]
