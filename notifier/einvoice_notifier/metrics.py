"""The notifier's own metrics, declared once here and read from the database at scrape time.

Ticket counts, breaches, MTTA/MTTR histograms, ratios and outbox figures are computed from the
store on each scrape, so they are right after a restart and agree with the console. Only what
happens in-process and is not stored (sends by result, webhook answers by code) are counters.

With several replicas on one store, the store figures come from one replica at a time (the one
holding the scheduler lease, or every one while nobody holds it): the dashboards sum over
instances, and three replicas each reporting every ticket would count it three times. The
in-process counters come from every replica.

    einvoice_notifier_tickets{state="open",severity_class="urgent"} 3
    einvoice_notifier_deadline_breaches_total{deadline="response",severity_class="urgent"} 1
    einvoice_notifier_time_to_acknowledge_seconds_bucket{severity_class="urgent",le="600"} 2
    einvoice_notifier_outbox_depth{channel="robot"} 0
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import DBAPIError

from .db import OPEN_STATES, STATES, from_db, outbox, tickets
from .service import month_bounds, resolution_rates
from .settings import SEVERITY_CLASSES

log = logging.getLogger(__name__)

REPORT_TZ = ZoneInfo("Asia/Shanghai")
"""The ratios are per calendar month in the bureau's time zone."""

DURATION_BUCKETS: Sequence[float] = (60, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400, 259200)
"""Seconds: 1 min … 3 days, around the SLA marks (10 min, 30 min, 2 h, 4 h)."""

WEBHOOK_CODES = ("200", "400", "401", "413", "415", "422", "500", "503")
SEND_RESULTS = ("sent", "retry", "paced", "permanent")


class _Child:
    def __init__(self, owner: LabelledCounter, key: tuple[str, ...]) -> None:
        self._owner, self._key = owner, key

    def inc(self, amount: float = 1.0) -> None:
        with self._owner.lock:
            self._owner.values[self._key] = self._owner.values.get(self._key, 0.0) + amount


class LabelledCounter:
    """A counter without the `_created` series prometheus_client adds: exposition is exactly the
    shared metric list."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str]) -> None:
        self.name, self.documentation, self.label_names = name, documentation, tuple(labels)
        self.values: dict[tuple[str, ...], float] = {}
        self.lock = threading.Lock()

    def labels(self, **labels: str) -> _Child:
        key = tuple(labels[name] for name in self.label_names)
        with self.lock:
            self.values.setdefault(key, 0.0)
        return _Child(self, key)

    def family(self) -> CounterMetricFamily:
        family = CounterMetricFamily(self.name, self.documentation, labels=list(self.label_names))
        with self.lock:
            for key, value in sorted(self.values.items()):
                family.add_metric(list(key), value)
        return family


class Counters(Collector):
    """In-process counters, exposed through the app's own registry (never the global one)."""

    def __init__(self, registry: CollectorRegistry, channels: Iterable[str]) -> None:
        self.webhook_requests = LabelledCounter(
            "einvoice_notifier_webhook_requests", "Webhook requests answered, by HTTP status code.", ["code"])
        self.sends = LabelledCounter(
            "einvoice_notifier_sends", "Message send attempts by channel and result.", ["channel", "result"])
        for code in WEBHOOK_CODES:
            self.webhook_requests.labels(code=code)
        for channel in channels:
            for result in SEND_RESULTS:
                self.sends.labels(channel=channel, result=result)
        registry.register(self)

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        yield self.webhook_requests.family()
        yield self.sends.family()


class StoreCollector(Collector):
    """Figures from the ticket store; on a database error the families are absent, not an error."""

    def __init__(self, engine: Engine, channels: Iterable[str], clock: Callable[[], datetime],
                 reports_store: Callable[[], bool] = lambda: True) -> None:
        self.engine = engine
        self.channels = tuple(channels)
        self.clock = clock
        self.reports_store = reports_store
        """Whether this replica exports the store's figures now (see the module docstring)."""

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        try:
            return list(self._collect()) if self.reports_store() else []
        except DBAPIError as exc:
            log.warning("metrics: ticket store unavailable (%s)", type(exc.orig).__name__)
            return []

    def _collect(self) -> Iterable[Metric]:
        now = self.clock()
        with self.engine.connect() as conn:
            by_state = {(state, cls): count for state, cls, count in conn.execute(
                select(tickets.c.state, tickets.c.severity_class, func.count())
                .group_by(tickets.c.state, tickets.c.severity_class))}
            breaches = {}
            for deadline, column in (("response", tickets.c.response_breached),
                                     ("resolution", tickets.c.resolution_breached)):
                for cls, count in conn.execute(select(tickets.c.severity_class, func.count())
                                               .where(column.is_(True)).group_by(tickets.c.severity_class)):
                    breaches[(deadline, cls)] = count
            timings = conn.execute(select(tickets.c.severity_class, tickets.c.starts_at,
                                          tickets.c.acknowledged_at, tickets.c.resolved_at)).all()
            rates = resolution_rates(conn, *month_bounds(now, REPORT_TZ))
            open_rows = conn.execute(select(
                tickets.c.id, tickets.c.item, tickets.c.severity_class, tickets.c.acknowledged_at,
                tickets.c.response_deadline, tickets.c.resolution_deadline)
                .where(tickets.c.state.in_(OPEN_STATES))).all()
            pending = outbox.c.state == "pending"
            depth: dict[str, int] = dict(conn.execute(
                select(outbox.c.channel, func.count()).where(pending).group_by(outbox.c.channel)).all())
            oldest: dict[str, datetime] = dict(conn.execute(
                select(outbox.c.channel, func.min(outbox.c.created_at)).where(pending)
                .group_by(outbox.c.channel)).all())
            dead: dict[str, int] = dict(conn.execute(
                select(outbox.c.channel, func.count()).where(outbox.c.state == "dead")
                .group_by(outbox.c.channel)).all())

        family = GaugeMetricFamily("einvoice_notifier_tickets", "Tickets by state and severity class.",
                                   labels=["state", "severity_class"])
        for state in STATES:
            for cls in SEVERITY_CLASSES:
                family.add_metric([state, cls], by_state.get((state, cls), 0))
        yield family

        counter = CounterMetricFamily("einvoice_notifier_deadline_breaches",
                                      "Tickets that missed a deadline, by deadline and severity class.",
                                      labels=["deadline", "severity_class"])
        for deadline in ("response", "resolution"):
            for cls in SEVERITY_CLASSES:
                counter.add_metric([deadline, cls], breaches.get((deadline, cls), 0))
        yield counter

        ack = {cls: [] for cls in SEVERITY_CLASSES}  # type: dict[str, list[float]]
        res = {cls: [] for cls in SEVERITY_CLASSES}  # type: dict[str, list[float]]
        for cls, starts, acked, resolved in timings:
            if cls not in ack:
                continue
            if acked is not None:
                ack[cls].append(max(0.0, (acked - starts).total_seconds()))
            if resolved is not None:
                res[cls].append(max(0.0, (resolved - starts).total_seconds()))
        yield _histogram("einvoice_notifier_time_to_acknowledge_seconds",
                         "From the alert's start to the ticket's acknowledgement (MTTA).", ack)
        yield _histogram("einvoice_notifier_time_to_resolve_seconds",
                         "From the alert's start to the ticket's resolution (MTTR).", res)

        # The current calendar month (Asia/Shanghai), as the monthly report and panels count.
        if rates.local_ratio is not None:
            yield GaugeMetricFamily("einvoice_notifier_local_resolution_ratio",
                                    "This month's closed tickets solved locally, never escalated to the "
                                    "second line (本级解决率).", value=rates.local_ratio)
        if rates.one_time_ratio is not None:
            yield GaugeMetricFamily("einvoice_notifier_one_time_resolution_ratio",
                                    "This month's resolved tickets whose problem did not recur within "
                                    "30 days (一次性解决率).", value=rates.one_time_ratio)

        deadlines = GaugeMetricFamily("einvoice_notifier_ticket_deadline_timestamp_seconds",
                                      "Deadline of each open ticket (unix time).",
                                      labels=["ticket_id", "item", "severity_class", "deadline"])
        for ticket_id, item, cls, acked, response, resolution in open_rows:
            if acked is None:
                deadlines.add_metric([str(ticket_id), item or "", cls, "response"],
                                     from_db(response).timestamp())  # type: ignore[union-attr]
            deadlines.add_metric([str(ticket_id), item or "", cls, "resolution"],
                                 from_db(resolution).timestamp())  # type: ignore[union-attr]
        yield deadlines

        names = sorted({*self.channels, *depth, *dead})
        depth_family = GaugeMetricFamily("einvoice_notifier_outbox_depth",
                                         "Messages waiting to be sent, by channel.", labels=["channel"])
        age_family = GaugeMetricFamily("einvoice_notifier_outbox_oldest_age_seconds",
                                       "Age of the oldest message waiting, by channel (0: none).",
                                       labels=["channel"])
        dead_family = GaugeMetricFamily("einvoice_notifier_outbox_dead_letters",
                                        "Messages given up on (dead letters), by channel.",
                                        labels=["channel"])
        naive_now = now.astimezone(UTC).replace(tzinfo=None)
        for name in names:
            depth_family.add_metric([name], depth.get(name, 0))
            first = oldest.get(name)
            age_family.add_metric([name], max(0.0, (naive_now - first).total_seconds()) if first else 0.0)
            dead_family.add_metric([name], dead.get(name, 0))
        yield depth_family
        yield age_family
        yield dead_family


def _histogram(name: str, documentation: str, values: dict[str, list[float]]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=["severity_class"])
    for cls, seconds in values.items():
        buckets = [(str(float(bound)), float(sum(1 for value in seconds if value <= bound)))
                   for bound in DURATION_BUCKETS]
        buckets.append(("+Inf", float(len(seconds))))
        family.add_metric([cls], buckets, sum_value=sum(seconds))
    return family


class RosterCollector(Collector):
    """Stretches of an important period ahead that the duty roster leaves (partly) empty, per line:
    an important period must be staffed 7×24, and a gap is itself an alert
    (EinvoiceRosterUncoveredShift).

        einvoice_notifier_roster_uncovered_shifts{line="first_line"} 1
        einvoice_notifier_roster_uncovered_shifts{line="second_line"} 0
    """

    def __init__(self, service: RosterSource, reports_store: Callable[[], bool] = lambda: True) -> None:
        self.service = service
        self.reports_store = reports_store

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        try:
            if not self.reports_store():
                return []
            counts = self.service.uncovered_shifts()
        except DBAPIError as exc:
            log.warning("metrics: roster unavailable (%s)", type(exc.orig).__name__)
            return []
        family = GaugeMetricFamily(
            "einvoice_notifier_roster_uncovered_shifts",
            "Shifts of an important period, from now to the roster horizon, with a gap in their cover",
            labels=["line"])
        for line, count in sorted(counts.items()):
            family.add_metric([line], count)
        return [family]


class RosterSource(Protocol):
    def uncovered_shifts(self) -> dict[str, int]: ...
