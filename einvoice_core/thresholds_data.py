"""The `data:` section of thresholds.yaml: items 14, 16, 17, 18 and 19 (SQL data checks, GoldenGate,
scheduled jobs, business volumes, sync queue). Kept in its own module so the section can grow without
touching the rest of the thresholds model; `thresholds.Thresholds.data` is the only link."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from einvoice_core.configtypes import StrictModel


def _check_duration(value: str) -> str:
    from einvoice_core.thresholds import _check_duration as check

    return check(value)


PromDuration = Annotated[str, AfterValidator(_check_duration)]
Seconds = Annotated[float, Field(gt=0)]


class DataIntegrity(StrictModel):
    """Item 14: source vs target counts, unpushed backlog, push failures."""

    count_mismatch_ratio: Annotated[float, Field(gt=0, lt=1)]
    """|source - target| / source beyond this (and beyond count_mismatch_min) is a mismatch."""
    count_mismatch_min: Annotated[int, Field(ge=0)]
    """Absolute difference below which no mismatch is reported (in-flight rows)."""
    count_mismatch_for: PromDuration
    oldest_unpushed_warning: Seconds
    oldest_unpushed_critical: Seconds
    oldest_unpushed_for: PromDuration
    push_failures_warning: Annotated[int, Field(ge=1)]
    push_failures_for: PromDuration

    @model_validator(mode="after")
    def _ordered(self) -> DataIntegrity:
        if self.oldest_unpushed_critical <= self.oldest_unpushed_warning:
            raise ValueError("oldest_unpushed_critical must be above oldest_unpushed_warning")
        return self


class GoldenGate(StrictModel):
    """Item 16."""

    abended_for: PromDuration
    lag_warning: Seconds
    lag_critical: Seconds
    lag_for: PromDuration
    checkpoint_age_warning: Seconds
    checkpoint_age_for: PromDuration

    @model_validator(mode="after")
    def _ordered(self) -> GoldenGate:
        if self.lag_critical <= self.lag_warning:
            raise ValueError("lag_critical must be above lag_warning")
        return self


class Jobs(StrictModel):
    """Item 17."""

    failed_for: PromDuration
    overdue_grace: Seconds
    """Seconds past the scheduled run time before a job is overdue."""
    overdue_for: PromDuration
    broken_for: PromDuration


class BusinessVolume(StrictModel):
    """Item 18: the volume against the median of the same hour of the previous `weeks` weeks."""

    weeks: Annotated[int, Field(ge=2, le=8)]
    low_ratio: Annotated[float, Field(gt=0, lt=1)]
    high_ratio: Annotated[float, Field(gt=1)]
    floor: Annotated[float, Field(ge=0)]
    """No alert while the baseline is below this (3 a.m. silence, small hours)."""
    for_: PromDuration = Field(alias="for")
    utc_offset_hours: Annotated[int, Field(ge=-12, le=14)]
    """Of the calendar's timezone (Asia/Shanghai: 8), to tell holidays by local date."""


class SyncQueue(StrictModel):
    """Item 19."""

    backlog_warning: Annotated[int, Field(ge=1)]
    oldest_age_warning: Seconds
    for_: PromDuration = Field(alias="for")


class DataChecks(StrictModel):
    integrity: DataIntegrity
    goldengate: GoldenGate
    jobs: Jobs
    business_volume: BusinessVolume
    sync_queue: SyncQueue
