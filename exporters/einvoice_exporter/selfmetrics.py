"""Every series the exporter itself defines, declared once in one table.

Collectors' detail metrics (probe_*, redis_*, ...) are declared by the collectors; everything the
runtime adds around them (the uniform einvoice_check_* series, the item catalogue, the exporter's own
health) is here, so names, types, labels and HELP texts live in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from .outcome import IDENTITY_LABELS

_INTERVAL_NOTE = (" Checks with an interval run at most once per interval; between runs the cached"
                  " result of the last run is served (see einvoice_check_last_run_timestamp_seconds).")


@dataclass(frozen=True, slots=True)
class Builtin:
    name: str
    type: Literal["gauge", "counter"]
    documentation: str
    labels: tuple[str, ...] = ()

    def family(self, samples: Iterable[tuple[Sequence[str], float]]) -> Metric:
        """A metric family with these samples (label values in the order of `labels`)."""
        family: GaugeMetricFamily | CounterMetricFamily
        if self.type == "counter":
            family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        else:
            family = GaugeMetricFamily(self.name, self.documentation, labels=self.labels)
        for values, value in samples:
            family.add_metric(list(values), value)
        return family


CHECK_UP = Builtin(
    "einvoice_check_up", "gauge",
    "1 if the last run of the check succeeded, 0 if it failed." + _INTERVAL_NOTE, IDENTITY_LABELS)
CHECK_DEGRADED = Builtin(
    "einvoice_check_degraded", "gauge",
    "1 if the last run of the check failed and its failure is of class degraded (卡顿: answers, but"
    " slow, behind or self-reported unhealthy), 0 otherwise; a failing check that is not degraded is"
    " down (宕机)." + _INTERVAL_NOTE, IDENTITY_LABELS)
CHECK_DURATION = Builtin(
    "einvoice_check_duration_seconds", "gauge",
    "How long the last run of the check took, retries included." + _INTERVAL_NOTE, IDENTITY_LABELS)
CHECK_FAILURES = Builtin(
    "einvoice_check_failures_total", "counter",
    "Failed runs of the check by reason, counted once per run (a cached result is not counted again).",
    (*IDENTITY_LABELS, "reason"))
CHECK_ATTEMPTS = Builtin(
    "einvoice_check_attempts", "gauge",
    "Attempts made in the last run of the check (1 + retries used)." + _INTERVAL_NOTE, IDENTITY_LABELS)
CHECK_LAST_RUN = Builtin(
    "einvoice_check_last_run_timestamp_seconds", "gauge",
    "Unix time at which the run whose result is served started.", IDENTITY_LABELS)
ITEM_INFO = Builtin(
    "einvoice_item_info", "gauge",
    "The contract's monitoring items: Chinese name and network zone, always 1.", ("item", "name", "zone"))
ITEM_MONITORED_ELSEWHERE = Builtin(
    "einvoice_item_monitored_elsewhere", "gauge",
    "1 for each item the configuration declares monitored outside this bundle (monitored_elsewhere):"
    " the unmonitored-item alert and the wall treat it as covered.", ("item",))
CONFIG_RELOAD_OK = Builtin(
    "einvoice_exporter_config_last_reload_successful", "gauge",
    "1 if the last attempt to load the configuration succeeded, 0 if the old configuration is still running.")
CONFIG_RELOAD_TIME = Builtin(
    "einvoice_exporter_config_last_reload_success_timestamp_seconds", "gauge",
    "Unix time of the last successful configuration load.")
BUILD_INFO = Builtin(
    "einvoice_exporter_build_info", "gauge",
    "Version of the exporter and of Python it runs on, always 1.", ("version", "python_version"))
SCRAPE_DURATION = Builtin(
    "einvoice_exporter_scrape_duration_seconds", "gauge",
    "Time this /metrics request spent running or awaiting the checks.")
CHECKS_CONFIGURED = Builtin(
    "einvoice_exporter_checks_configured", "gauge", "Checks in the running configuration.")
MODULES_CONFIGURED = Builtin(
    "einvoice_exporter_modules_configured", "gauge", "Modules in the running configuration, by kind.",
    ("kind",))
CHECKS_OVERRUNNING = Builtin(
    "einvoice_exporter_checks_overrunning", "gauge",
    "Check runs still going past their deadline (reported as timeout; not restarted until they end).")

BUILTINS: tuple[Builtin, ...] = (
    CHECK_UP, CHECK_DEGRADED, CHECK_DURATION, CHECK_FAILURES, CHECK_ATTEMPTS, CHECK_LAST_RUN, ITEM_INFO,
    ITEM_MONITORED_ELSEWHERE,
    CONFIG_RELOAD_OK, CONFIG_RELOAD_TIME, BUILD_INFO, SCRAPE_DURATION, CHECKS_CONFIGURED,
    MODULES_CONFIGURED, CHECKS_OVERRUNNING,
)
