"""Configuration models: strict (unknown keys are errors), frozen, with reusable annotated types.

The file has two sections. `modules` are reusable probe definitions (a kind and its settings, like
blackbox_exporter's modules); `checks` bind a module to a target and to one of the 20 items. The
same modules serve `/probe?module=&target=`.

    modules:
      actuator:
        kind: http
        timeout: 5s
        http: {valid_status_codes: [200], json_expect: [{path: status, equals: UP}]}
    checks:
      - {name: intake-health, item: "05", module: actuator, target: "http://intake:7001/actuator/health"}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import Field, StringConstraints, create_model, model_validator

from einvoice_core.contract import FailureClass
from einvoice_core.thresholds import SystemKey, shipped

from .collectors import kinds, validate_target
from .fields import Duration, ItemId, Name, PositiveDuration, StrictModel


class ModuleBase(StrictModel):
    timeout: PositiveDuration = 10.0
    """Upper bound for one run; a scrape's own timeout (minus the offset) may shorten it."""
    retries: Annotated[int, Field(ge=0, le=5)] = 0
    """Extra attempts after a failed one, within the same timeout."""
    item: ItemId | None = None
    """Item for `/probe` requests that do not name one with `&item=`."""


def _module_model(kind: str, settings: type[StrictModel]) -> type[ModuleBase]:
    """`kind: <kind>` plus the kind's settings block under the key `<kind>` (HttpModule, ...)."""
    title = "".join(part.capitalize() for part in kind.split("_")) + "Module"
    fields: dict[str, Any] = {
        "kind": (Literal[kind], ...),
        kind: (settings, Field(default_factory=settings)),
    }
    model: type[ModuleBase] = create_model(title, __base__=ModuleBase, __module__=__name__, **fields)
    return model


MODULE_MODELS: dict[str, type[ModuleBase]] = {
    name: _module_model(name, kind.settings) for name, kind in kinds().items()
}
"""One module model per registered kind, derived from the registry (collectors.KINDS)."""

KIND_NAMES: tuple[str, ...] = tuple(MODULE_MODELS)

if TYPE_CHECKING:
    class Module(ModuleBase):
        kind: str
else:
    Module = Annotated[Union[tuple(MODULE_MODELS.values())], Field(discriminator="kind")]  # noqa: UP007


def module_settings(module: Module) -> StrictModel:
    """The kind-specific settings block of a module (`module.http` for kind http, ...)."""
    settings: StrictModel = getattr(module, module.kind)
    return settings


class CheckConfig(StrictModel):
    name: Name
    item: ItemId
    module: Name
    target: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    interval: PositiveDuration | None = None
    """Run this often in the background (the exporter's scheduler, from start-up on); a scrape serves
    the latest result and never waits for the check, except for its very first result. A result
    older than `global.stale_after_intervals` intervals is served as a failure (reason timeout,
    detail `stale: ...`), never as silently old data. Without an interval the check runs inside each
    scrape (and each `/probe`)."""
    failure_class: FailureClass | None = None
    """Overrides the failure class (down/degraded) the reason implies (contract REASON_FAILURE_CLASS)."""
    failure_class_reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] | None = None
    """Why the override holds; required with failure_class, so the next reader knows."""
    system: SystemKey | None = None
    """The system of the contract's scope this check watches (thresholds.yaml `systems`, label
    `system`); without it, the first system listing the check's item (item 08 serves three)."""

    @property
    def resolved_system(self) -> str:
        return self.system or shipped().default_system(self.item)

    @model_validator(mode="after")
    def _system_lists_the_item(self) -> CheckConfig:
        if self.system is None:
            return self
        systems = shipped().systems
        if self.system not in systems:
            raise ValueError(f"system {self.system!r} is not a system of thresholds.yaml `systems`"
                             f" ({', '.join(systems)})")
        if self.item not in systems[self.system].items:
            listing = [key for key, system in systems.items() if self.item in system.items]
            raise ValueError(f"system {self.system!r} does not list item {self.item} in thresholds.yaml"
                             f" (systems with item {self.item}: {', '.join(listing)}); name one of them"
                             f" or add the item to systems.{self.system}.items")
        return self

    @model_validator(mode="after")
    def _override_has_a_reason(self) -> CheckConfig:
        if self.failure_class is not None and self.failure_class_reason is None:
            raise ValueError("failure_class overrides the contract's classification: add"
                             " failure_class_reason with a sentence saying why")
        if self.failure_class is None and self.failure_class_reason is not None:
            raise ValueError("failure_class_reason is set without failure_class (down or degraded)")
        return self


class GlobalConfig(StrictModel):
    scrape_timeout_offset: Duration = 0.5
    """Subtracted from Prometheus' X-Prometheus-Scrape-Timeout-Seconds for /probe and /metrics."""
    max_concurrency: Annotated[int, Field(ge=1, le=1024)] = 64
    """Checks running at once in one scrape (and, separately, in the background scheduler)."""
    stale_after_intervals: Annotated[float, Field(ge=1.5, le=100)] = 3.0
    """A check with an interval whose served result started more than this many intervals ago is
    reported failed (reason timeout, `stale: ...`): the background run is stuck or far too slow."""


ElsewhereNote = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=200)]


class ExporterConfig(StrictModel):
    global_: GlobalConfig = Field(default_factory=GlobalConfig, alias="global")
    modules: dict[Name, Module] = Field(default_factory=dict)
    checks: list[CheckConfig] = Field(default_factory=list)
    monitored_elsewhere: dict[ItemId, ElsewhereNote] = Field(default_factory=dict)
    """Items watched outside this bundle on purpose, each with who watches it and how (Chinese, for
    people): `{"15": "容器平台自带监控（xx 平台）负责，见运维手册 3.2"}`. They get no unmonitored-item
    alert and show as 外部监控 on the wall. An item with checks here cannot also be declared elsewhere."""

    @model_validator(mode="after")
    def _cross_references(self) -> ExporterConfig:
        seen: set[str] = set()
        for index, check in enumerate(self.checks):
            where = f"checks[{index}] ({check.name})"
            if check.name in seen:
                raise ValueError(f"{where}: check name {check.name!r} is used twice; names must be unique")
            seen.add(check.name)
            module = self.modules.get(check.module)
            if module is None:
                known = ", ".join(sorted(self.modules)) or "none"
                raise ValueError(f"{where}: module {check.module!r} is not defined (defined: {known})")
            try:
                validate_target(module.kind, check.target)
            except ValueError as exc:
                raise ValueError(f"{where}: target {check.target!r}: {exc}") from None
            if check.item in self.monitored_elsewhere:
                raise ValueError(f"{where}: item {check.item} is declared in monitored_elsewhere; remove "
                                 "the declaration or the check, an item cannot be both")
        return self
