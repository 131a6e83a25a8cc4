"""The one thresholds file (thresholds.yaml) and its strict model.

Rules, routing and dashboards read their numbers from here, so an SLA figure or a `for:` duration is
changed in one place and every generated file follows after `einvoice-generate`.
"""

from __future__ import annotations

import functools
import re
from datetime import date, datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import yaml
from pydantic import AfterValidator, Field, StringConstraints, ValidationError, model_validator

from einvoice_core.catalogue import ITEMS, Severity, normalize_item_id
from einvoice_core.configtypes import StrictModel
from einvoice_core.thresholds_data import DataChecks

DEFAULT_PATH = Path(__file__).with_name("thresholds.yaml")
SERVICE_KEYS = frozenset({"intake", "processing", "pipeline"})
"""The `service` label values other parts of the bundle (dashboards, notifier, reports) rely on."""

_DURATION_RE = re.compile(r"^(?:\d+y)?(?:\d+w)?(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?(?:\d+ms)?$")
_UNIT_SECONDS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}


def duration_seconds(text: str) -> float:
    """Seconds of a Prometheus duration string ("1h30m", "400d")."""
    return sum(int(n) * _UNIT_SECONDS[unit] for n, unit in re.findall(r"(\d+)(ms|[ywdhms])", text))


def _check_duration(value: str) -> str:
    if not value or _DURATION_RE.fullmatch(value) is None:
        raise ValueError(f"{value!r} is not a Prometheus duration; write it like 30s, 5m, 1h30m or 400d")
    return value


PromDuration = Annotated[str, AfterValidator(_check_duration)]
"""Kept as text: it is written into the rule files as the operator wrote it."""
ItemKey = Annotated[str, AfterValidator(normalize_item_id)]


def _check_ratio(value: float) -> float:
    if not 0 < value < 1:
        raise ValueError("must be a ratio between 0 and 1 (exclusive)")
    return value


Ratio = Annotated[float, AfterValidator(_check_ratio)]
SystemKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)]
"""A `system` label value: lower-case snake_case, stable (dashboards and the ticket store keep it)."""




class ItemRule(StrictModel):
    for_: PromDuration = Field(alias="for")
    severity: Severity | None = None
    """None keeps the catalogue's severity."""


class Service(StrictModel):
    name_zh: str
    items: tuple[ItemKey, ...] = Field(min_length=1)


class System(StrictModel):
    """A system the bureau scores the vendor on (附件1: 「广西税务 XXX 系统 XX年 XX月运维厂商考核评级表」)."""

    name_zh: str
    vendor_scope: bool
    """True: the contract puts its operation on the vendor (seed §二.(一)), so its faults count in
    scorecard line 11 and its availability in the SLA. False: the vendor only gives related technical
    support (电子签章系统), so its faults are recorded but owned by another party."""
    services: tuple[str, ...] = ()
    """The SLA services (keys of `services`) that serve this system."""
    items: tuple[ItemKey, ...] = ()
    """The monitoring items whose checks watch this system."""


_MONTH_DAY = r"^(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"


class Drills(StrictModel):
    """Disaster-recovery drills (seed §二.9: 每年至少 2 次); windows in alert_rules/drill_windows.yml."""

    required_per_year: int = Field(default=2, ge=0, le=52)
    warn_from: Annotated[str, StringConstraints(pattern=_MONTH_DAY)] = "11-01"
    """MM-DD (local): from this day of the year EinvoiceDrillsBehind fires while fewer than
    required_per_year drills are declared for the year."""


class BurnWindow(StrictModel):
    long: PromDuration
    short: PromDuration
    factor: float = Field(gt=0)
    for_: PromDuration = Field(alias="for")
    severity: Severity


class Sla(StrictModel):
    yearly_outage_budget: PromDuration
    max_single_outage: PromDuration
    restore_within: PromDuration
    outage_alert_for: PromDuration
    stall_alert_for: PromDuration
    max_gap: PromDuration
    """Missing data up to this long does not end an outage or stall (docs/runbook.md#sla-gaps)."""
    restore_warning_after: PromDuration
    single_outage_warning_after: PromDuration
    budget_remaining_warning_ratio: Ratio
    retention: PromDuration
    year_evaluation_interval: PromDuration
    burn_rate: tuple[BurnWindow, ...] = Field(min_length=1)

    @property
    def objective(self) -> float:
        """Availability objective the yearly budget implies: 1 - 12 h / 8760 h ≈ 0.998630."""
        return 1 - duration_seconds(self.yearly_outage_budget) / (365 * 86400)

    @model_validator(mode="after")
    def _ordered(self) -> Sla:
        if not (duration_seconds(self.restore_warning_after) < duration_seconds(self.restore_within)
                <= duration_seconds(self.single_outage_warning_after)
                < duration_seconds(self.max_single_outage)):
            raise ValueError("need restore_warning_after < restore_within <= single_outage_warning_after"
                             " < max_single_outage")
        if duration_seconds(self.retention) < 366 * 86400:
            raise ValueError("retention must exceed a year, or the yearly SLA figures cannot be computed")
        return self


class Continuity(StrictModel):
    """应用连续运行 (docs/runbook.md#app-running): start times of the application instances."""

    job: str = Field(min_length=1)
    continuous_run: PromDuration
    restart_alert_window: PromDuration


class Certificates(StrictModel):
    warning_days: int = Field(gt=0)
    critical_days: int = Field(gt=0)
    for_: PromDuration = Field(alias="for")

    @model_validator(mode="after")
    def _ordered(self) -> Certificates:
        if self.critical_days >= self.warning_days:
            raise ValueError("critical_days must be fewer than warning_days")
        return self


class LatencyOverride(StrictModel):
    good_seconds: float = Field(gt=0)
    alert_seconds: float = Field(gt=0)


class Latency(StrictModel):
    items: tuple[ItemKey, ...] = Field(min_length=1)
    """Items whose probes are the key interfaces of the response-time SLI."""
    good_seconds: float = Field(gt=0)
    alert_seconds: float = Field(gt=0)
    alert_for: PromDuration
    overrides: dict[ItemKey, LatencyOverride] = Field(default_factory=dict)

    def for_item(self, item: str) -> LatencyOverride:
        return self.overrides.get(item, LatencyOverride(good_seconds=self.good_seconds,
                                                        alert_seconds=self.alert_seconds))


class Redis(StrictModel):
    memory_ratio_warning: Ratio
    memory_for: PromDuration
    cluster_state_for: PromDuration
    cluster_slots_for: PromDuration


class Elasticsearch(StrictModel):
    red_for: PromDuration
    yellow_for: PromDuration
    heap_ratio_max: Ratio
    disk_ratio_max: Ratio
    green_ratio_min: Ratio


class Tickets(StrictModel):
    local_resolution_min: Ratio
    one_time_resolution_min: Ratio


class Kafka(StrictModel):
    lag_growing_for: PromDuration
    lag_growing_min_messages: int = Field(ge=0)
    lag_seconds_warning: float = Field(gt=0)
    lag_seconds_critical: float = Field(gt=0)
    lag_seconds_for: PromDuration
    stalled_for: PromDuration


class Monitoring(StrictModel):
    exporter_down_for: PromDuration
    check_stale_after: PromDuration
    check_stale_for: PromDuration
    check_vanished_for: PromDuration
    check_vanished_lookback: PromDuration
    item_unmonitored_for: PromDuration
    config_reload_failed_for: PromDuration
    notifier_down_for: PromDuration
    outbox_oldest_age_warning: PromDuration
    outbox_stuck_for: PromDuration
    roster_uncovered_for: PromDuration = "5m"
    """An important-period shift left empty in the duty roster (rules_tickets.py)."""
    vulnerability_due_warning: PromDuration = "2d"
    """A vulnerability not hardened this long before the bureau's deadline (rules_registers.py)."""


def _check_clock(value: str) -> str:
    match = re.fullmatch(r"(\d\d):(\d\d)", value)
    hours, minutes = (int(match[1]), int(match[2])) if match else (99, 99)
    if minutes > 59 or hours > 24 or (hours == 24 and minutes != 0):
        raise ValueError(f"{value!r} is not a time of day; write it like 07:30 (24:00 ends the day)")
    return value


Clock = Annotated[str, AfterValidator(_check_clock)]


class OnsiteWindow(StrictModel):
    start: Clock
    end: Clock

    @model_validator(mode="after")
    def _ordered(self) -> OnsiteWindow:
        if self.end <= self.start:
            raise ValueError(f"on-site window {self.start}-{self.end}: end must be after start"
                             " (split a window that crosses midnight in two)")
        return self


class Routing(StrictModel):
    location: str
    onsite_hours: tuple[OnsiteWindow, ...] = Field(min_length=1)
    group_wait: PromDuration
    group_interval: PromDuration
    repeat_interval_critical: PromDuration
    repeat_interval_warning: PromDuration
    repeat_interval_sla: PromDuration


class Apps(StrictModel):
    """Containers, WebLogic and micro-service registries (items 05, 10, 15; rules_apps.py)."""

    container_restarts: int = Field(gt=0)
    """Restarts within `container_restart_window` that page (urgent)."""
    container_restart_window: PromDuration
    container_unhealthy_for: PromDuration
    weblogic_stuck_threads: int = Field(ge=0)
    """More stuck threads than this on a server alerts."""
    weblogic_stuck_urgent_items: tuple[ItemKey, ...] = Field(min_length=1)
    """Items whose servers page on a stuck thread (the intake servers); elsewhere a warning."""
    weblogic_stuck_for: PromDuration
    datasource_waiting_warning: int = Field(ge=0)
    datasource_waiting_for: PromDuration
    service_instances_for: PromDuration
class LogClass(StrictModel):
    severity: Severity
    min_matches: int = Field(ge=1)
    """Matching lines within `logs.window` that fire the class's alert."""


class Logs(StrictModel):
    window: PromDuration
    behind_for: PromDuration
    classes: dict[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")], LogClass]


class Nginx(StrictModel):
    error_ratio_warning: Ratio
    error_ratio_critical: Ratio
    error_ratio_min_rps: float = Field(ge=0)
    error_ratio_for: PromDuration
    p95_seconds_warning: float = Field(gt=0)
    p95_for: PromDuration
    config_invalid_for: PromDuration


class Thresholds(StrictModel):
    runbook_url: str
    """Base of every alert's runbook_url; the anchor (#alertname) is appended."""
    evaluation_interval: PromDuration
    check_failing_for_default: PromDuration
    items: dict[ItemKey, ItemRule]
    services: dict[str, Service]
    """Keyed by the fixed `service` label values: intake, processing, pipeline."""
    systems: dict[SystemKey, System] = Field(min_length=1)
    """The systems of the contract's scope (seed §二.(一)), keyed by the `system` label value."""
    sla: Sla
    continuity: Continuity
    certificates: Certificates
    latency: Latency
    redis: Redis
    elasticsearch: Elasticsearch
    tickets: Tickets
    kafka: Kafka
    monitoring: Monitoring
    routing: Routing
    apps: Apps
    logs: Logs
    nginx: Nginx
    hosts: Hosts
    data: DataChecks
    dbhealth: DbHealth
    drills: Drills = Field(default_factory=Drills)

    @model_validator(mode="after")
    def _complete(self) -> Thresholds:
        missing = SERVICE_KEYS - set(self.services)
        unknown = set(self.services) - SERVICE_KEYS
        if missing or unknown:
            raise ValueError(f"services must be exactly {', '.join(sorted(SERVICE_KEYS))}"
                             f" (missing: {', '.join(sorted(missing)) or '-'};"
                             f" unknown: {', '.join(sorted(unknown)) or '-'})")
        for key, system in self.systems.items():
            unknown_services = set(system.services) - set(self.services)
            if unknown_services:
                raise ValueError(f"systems.{key}.services: {', '.join(sorted(unknown_services))} is not"
                                 f" a service of `services` ({', '.join(sorted(self.services))})")
        unowned = {item.id for item in ITEMS} - {i for system in self.systems.values() for i in system.items}
        if unowned:
            raise ValueError(f"systems: items {', '.join(sorted(unowned))} serve no system; every item"
                             " must belong to at least one, so its faults can be given per system")
        if duration_seconds(self.monitoring.exporter_down_for) >= duration_seconds(self.sla.max_gap):
            raise ValueError("monitoring.exporter_down_for must be shorter than sla.max_gap, so a gap too"
                             " long for the SLA clocks is always announced by EinvoiceExporterDown")
        return self

    def default_system(self, item: str) -> str:
        """The system of a check that names none: the first system listing its item."""
        return next(key for key, system in self.systems.items() if item in system.items)

    def item_for(self, item: str) -> str:
        rule = self.items.get(item)
        return rule.for_ if rule else self.check_failing_for_default

    def item_severity(self, item: str) -> Severity:
        rule = self.items.get(item)
        if rule and rule.severity is not None:
            return rule.severity
        return next(i.severity for i in ITEMS if i.id == item)


class ImportantPeriod(StrictModel):
    """A declared 重要时期: on-site staff are on 7×24 from `start` to `end` (whole days, inclusive)."""

    name: str
    start: date
    end: date

    @model_validator(mode="after")
    def _ordered(self) -> ImportantPeriod:
        if self.end < self.start:
            raise ValueError(f"important period {self.name!r}: end {self.end} is before start {self.start}")
        return self


class ImportantPeriods(StrictModel):
    periods: tuple[ImportantPeriod, ...] = ()


class ChangeWindow(StrictModel):
    """An approved change window (变更窗口): an application may be restarted inside it."""

    name: str = Field(min_length=1)
    start: datetime
    """Local time in routing.location (Asia/Shanghai) unless an offset is written."""
    end: datetime

    @model_validator(mode="after")
    def _ordered(self) -> ChangeWindow:
        if self.end <= self.start:
            raise ValueError(f"change window {self.name!r}: end {self.end} is not after start {self.start}")
        return self

    def bounds(self, location: str) -> tuple[int, int]:
        """[start, end) as Unix seconds, naive times read in `location`."""
        zone = ZoneInfo(location)
        start, end = (t if t.tzinfo else t.replace(tzinfo=zone) for t in (self.start, self.end))
        return int(start.timestamp()), int(end.timestamp())


class ChangeWindows(StrictModel):
    windows: tuple[ChangeWindow, ...] = ()


class DrillWindow(StrictModel):
    """A disaster-recovery drill (容灾演练, seed §二.9) declared in advance: alerts firing inside it are
    marked drill, and outage time inside it is reported apart from the SLA budget."""

    name: str = Field(min_length=1, max_length=100)
    start: datetime
    """Local time in routing.location (Asia/Shanghai) unless an offset is written."""
    end: datetime

    @model_validator(mode="after")
    def _ordered(self) -> DrillWindow:
        if self.end <= self.start:
            raise ValueError(f"drill window {self.name!r}: end {self.end} is not after start {self.start}")
        return self

    def bounds(self, location: str) -> tuple[int, int]:
        """[start, end) as Unix seconds, naive times read in `location`."""
        zone = ZoneInfo(location)
        start, end = (t if t.tzinfo else t.replace(tzinfo=zone) for t in (self.start, self.end))
        return int(start.timestamp()), int(end.timestamp())


class DrillWindows(StrictModel):
    windows: tuple[DrillWindow, ...] = ()

    @model_validator(mode="after")
    def _unique_names(self) -> DrillWindows:
        names = [w.name for w in self.windows]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"drill window names must be unique (`einvoice-report drill --window NAME`"
                             f" picks one): {', '.join(twice)} is used twice")
        return self

    def find(self, name: str) -> DrillWindow | None:
        return next((w for w in self.windows if w.name == name), None)


class ThresholdsError(ValueError):
    """The thresholds or calendar file is invalid; the message names the file and the key."""


def _load(path: Path, model: type[StrictModel]) -> StrictModel:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ThresholdsError(f"{path}: cannot read: {exc}") from exc
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        lines = [f"{path}: invalid"]
        for err in exc.errors():
            key = ".".join(str(part) for part in err["loc"]) or "(top level)"
            lines.append(f"  {key}: {err['msg']}")
        raise ThresholdsError("\n".join(lines)) from exc


@functools.cache
def shipped() -> Thresholds:
    """The thresholds file shipped with the bundle: the defaults that collectors judge by, so a
    collector's default and a dashboard's colour come from the same number."""
    return load_thresholds(DEFAULT_PATH)


def load_thresholds(path: Path = DEFAULT_PATH) -> Thresholds:
    result = _load(path, Thresholds)
    assert isinstance(result, Thresholds)
    return result


def load_change_windows(path: Path) -> ChangeWindows:
    result = _load(path, ChangeWindows)
    assert isinstance(result, ChangeWindows)
    return result


def load_drill_windows(path: Path) -> DrillWindows:
    result = _load(path, DrillWindows)
    assert isinstance(result, DrillWindows)
    return result


def load_important_periods(path: Path) -> ImportantPeriods:
    result = _load(path, ImportantPeriods)
    assert isinstance(result, ImportantPeriods)
    return result


class Hosts(StrictModel):
    """node_exporter on every server (jobs `node-<zone>`, labels zone and item; rules_hosts.py)."""

    job_regex: str = Field(min_length=1)
    fstypes_exclude: str
    mountpoints_exclude: str
    readonly_ok_mountpoints: str
    """Regex of mountpoints that are read-only by design; empty: every read-only filesystem alerts."""
    filesystem_free_warning: Ratio
    filesystem_free_critical: Ratio
    filesystem_free_for: PromDuration
    fill_window: PromDuration
    fill_warning_seconds: float = Field(gt=0)
    fill_critical_seconds: float = Field(gt=0)
    fill_max_free_ratio: Ratio
    fill_for: PromDuration
    inodes_free_warning: Ratio
    inodes_free_critical: Ratio
    inodes_free_for: PromDuration
    readonly_for: PromDuration
    memory_available_warning: Ratio
    memory_available_critical: Ratio
    memory_for: PromDuration
    swap_used_warning: Ratio
    swap_for: PromDuration
    load_per_core_warning: float = Field(gt=0)
    load_for: PromDuration
    clock_offset_warning_seconds: float = Field(gt=0)
    clock_offset_critical_seconds: float = Field(gt=0)
    clock_offset_for: PromDuration
    clock_unsynced_for: PromDuration
    exporter_down_for: PromDuration

    @model_validator(mode="after")
    def _ordered(self) -> Hosts:
        pairs = (("filesystem_free", self.filesystem_free_critical, self.filesystem_free_warning),
                 ("inodes_free", self.inodes_free_critical, self.inodes_free_warning),
                 ("memory_available", self.memory_available_critical, self.memory_available_warning),
                 ("fill_seconds", self.fill_critical_seconds, self.fill_warning_seconds))
        for name, critical, warning in pairs:
            if critical >= warning:
                raise ValueError(f"hosts.{name}: the critical value ({critical:g}) must be below the"
                                 f" warning value ({warning:g})")
        if self.clock_offset_critical_seconds <= self.clock_offset_warning_seconds:
            raise ValueError("hosts.clock_offset_critical_seconds must be above"
                             " clock_offset_warning_seconds")
        return self


class DbHealth(StrictModel):
    """Database health from the sql kind's templates (config/example.yml; rules_dbhealth.py)."""

    replication_stopped_for: PromDuration
    replication_lag_seconds: float = Field(gt=0)
    replication_lag_for: PromDuration
    connections_ratio_warning: Ratio
    connections_for: PromDuration
    long_transaction_seconds: float = Field(gt=0)
    long_transaction_for: PromDuration
    backup_max_age: PromDuration
    backup_failed_for: PromDuration
    tablespace_used_percent_warning: float = Field(gt=0, le=100)
    tablespace_used_percent_critical: float = Field(gt=0, le=100)
    tablespace_for: PromDuration
    fra_used_percent_warning: float = Field(gt=0, le=100)
    fra_used_percent_critical: float = Field(gt=0, le=100)
    fra_for: PromDuration
    blocking_for: PromDuration
    long_running_sql_for: PromDuration
    sessions_ratio_warning: Ratio
    sessions_for: PromDuration
    dataguard_lag_seconds: float = Field(gt=0)
    dataguard_lag_for: PromDuration
    invalid_objects_for: PromDuration

    @model_validator(mode="after")
    def _ordered(self) -> DbHealth:
        for name in ("tablespace_used_percent", "fra_used_percent"):
            if getattr(self, f"{name}_warning") >= getattr(self, f"{name}_critical"):
                raise ValueError(f"dbhealth.{name}_warning must be below {name}_critical")
        return self
