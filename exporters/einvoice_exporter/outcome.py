"""The contract between the runtime and the collectors.

A collector is a class built from one module config; its `run(target, timeout)` returns an
`Outcome`: the detailed metric families it measured (with the well-known exporters' names, without
the identity labels) and, when the check failed, a `Failure` with a bounded `Reason`. The runtime adds
`item`/`zone`/`check`/`target`/`system` labels, the uniform `einvoice_check_*` series, timing, caching,
retries and the timeout. A failing target is data: `run` returns a failed outcome rather than raising;
an exception that escapes `run` is counted by the runtime as reason `error` and logged as a bug.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from prometheus_client.core import Metric

from einvoice_core.contract import Reason

if TYPE_CHECKING:
    from .collectors import CheckError

IDENTITY_LABELS: tuple[str, ...] = ("item", "zone", "check", "target", "system")
"""`system` (issue 19): the system of the contract's scope the check watches (contract.SYSTEM_LABEL)."""
_IDENTITY = frozenset(IDENTITY_LABELS)


@dataclass(frozen=True, slots=True)
class Failure:
    reason: Reason
    detail: str
    """English, one line, for logs and the landing page. Never a secret, never taxpayer data."""


MetricType = Literal["gauge", "counter", "info", "histogram", "summary"]
_SUFFIX = "__sample_suffix"
"""Internal pseudo-label: which sample of a histogram (_bucket, _count, _sum) or a summary (_count,
_sum) a value is."""


@dataclass(slots=True)
class _Family:
    type: MetricType
    documentation: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)


class MetricSet:
    """Metric families one check run yields, keyed by name, without identity labels.

    >>> ms = MetricSet()
    >>> ms.gauge("probe_success", "Whether the probe succeeded", 1)
    >>> ms.gauge("probe_http_duration_seconds", "Duration by phase", 0.01, {"phase": "connect"})
    >>> ms.counter("redis_evicted_keys_total", "Evicted keys", 12)

    Counter names end in `_total`. Label names must not be one of IDENTITY_LABELS.
    """

    def __init__(self) -> None:
        self._families: dict[str, _Family] = {}

    def gauge(self, name: str, documentation: str, value: float,
              labels: Mapping[str, str] | None = None) -> None:
        self.add(name, "gauge", documentation, value, labels)

    def counter(self, name: str, documentation: str, value: float,
                labels: Mapping[str, str] | None = None) -> None:
        if not name.endswith("_total"):
            raise ValueError(f"counter {name} must end in _total")
        self.add(name, "counter", documentation, value, labels)

    def summary(self, name: str, documentation: str, quantiles: Mapping[str, float], total: float,
                count: float, labels: Mapping[str, str] | None = None) -> None:
        """A summary: one sample per quantile (label `quantile`), then `_sum` and `_count`."""
        own = dict(labels or {})
        for quantile, value in quantiles.items():
            self.add(name, "summary", documentation, value, {**own, "quantile": quantile})
        self.add(name, "summary", documentation, total, {**own, _SUFFIX: "_sum"})
        self.add(name, "summary", documentation, count, {**own, _SUFFIX: "_count"})

    def histogram(self, name: str, documentation: str, buckets: Sequence[tuple[float, float]],
                  count: float, total: float, labels: Mapping[str, str] | None = None) -> None:
        """Cumulative `buckets` as (upper bound, observations <= bound); +Inf is `count`."""
        own = dict(labels or {})
        for bound, observed in [*buckets, (float("inf"), count)]:
            le = "+Inf" if bound == float("inf") else repr(float(bound))
            self.add(name, "histogram", documentation, observed, {**own, "le": le, _SUFFIX: "_bucket"})
        self.add(name, "histogram", documentation, count, {**own, _SUFFIX: "_count"})
        self.add(name, "histogram", documentation, total, {**own, _SUFFIX: "_sum"})

    def add(self, name: str, type_: MetricType, documentation: str, value: float,
            labels: Mapping[str, str] | None = None) -> None:
        """One sample of a family of any type (copying families between sets)."""
        own = dict(labels) if labels else {}
        if own and not _IDENTITY.isdisjoint(own):
            clash = set(own) & _IDENTITY
            raise ValueError(f"{name}: label(s) {sorted(clash)} are reserved for the runtime")
        family = self._families.get(name)
        if family is None:
            family = self._families[name] = _Family(type_, documentation)
        elif family.type != type_:
            raise ValueError(f"{name} added as {type_} and as {family.type}")
        family.samples.append((own, float(value)))

    def extend(self, other: MetricSet, skip: tuple[str, ...] = ()) -> None:
        """Add every family of `other` (but `skip`), already checked when it was built."""
        for name, family in other._families.items():
            if name in skip:
                continue
            mine = self._families.get(name)
            if mine is None:
                self._families[name] = _Family(family.type, family.documentation, list(family.samples))
            elif mine.type != family.type:
                raise ValueError(f"{name} added as {family.type} and as {mine.type}")
            else:
                mine.samples.extend(family.samples)

    def names(self) -> list[str]:
        return list(self._families)

    def value(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """The value of one sample, for tests and for checks that judge their own metrics."""
        wanted = dict(labels or {})
        family = self._families.get(name)
        if family is None:
            return None
        for own, value in family.samples:
            if own == wanted:
                return value
        return None

    def items(self) -> Iterable[tuple[str, MetricType, str, list[tuple[dict[str, str], float]]]]:
        for name, fam in self._families.items():
            yield name, fam.type, fam.documentation, fam.samples


@dataclass(slots=True)
class Outcome:
    metrics: MetricSet = field(default_factory=MetricSet)
    failure: Failure | None = None

    @property
    def success(self) -> bool:
        return self.failure is None

    def fail(self, reason: Reason, detail: str) -> Outcome:
        """Record the first failure (later ones are usually consequences of it)."""
        if self.failure is None:
            self.failure = Failure(reason, detail)
        return self

    def fail_with(self, exc: CheckError) -> Outcome:
        """Record a raised `CheckError` (keeping the metrics measured before it)."""
        return self.fail(exc.reason, exc.detail)


class Check(Protocol):
    """What every collector class implements.

    Built once per module config (and rebuilt on reload); it may keep state between runs, keyed by
    target (history of offsets, connection pools). `run` is called from worker threads, possibly
    for several targets at once, so shared state needs a lock.
    """

    def run(self, target: str, timeout: float) -> Outcome:
        """Probe `target`, returning within about `timeout` seconds."""
        ...

    def close(self) -> None:
        """Release pooled connections; called when a reload replaces the check."""
        ...


def merge_families(
    results: Iterable[tuple[Mapping[str, str], MetricSet]],
) -> Iterator[Metric]:
    """Merge the metric sets of many checks into one family per name, identity labels first.

    The exposition format wants one HELP/TYPE per metric name; checks of the same kind yield the
    same names, so their samples are gathered under one family.
    """
    merged: dict[str, Metric] = {}
    for identity, metric_set in results:
        for name, type_, documentation, samples in metric_set.items():
            family = merged.get(name)
            if family is None:
                base = name.removesuffix("_total") if type_ == "counter" else name
                family = merged[name] = Metric(base, documentation, type_)
            add_sample = family.add_sample
            for own, value in samples:
                suffix = own.get(_SUFFIX, "")
                labels = {k: v for k, v in own.items() if k != _SUFFIX} if suffix else own
                add_sample(name + suffix, {**identity, **labels} if identity else labels, value)
    yield from merged.values()
