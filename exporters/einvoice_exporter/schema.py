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

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from .collectors import dns, elasticsearch, goldengate, http, kafka, redis, redis_cluster, sql, tcp, tls
from .collectors.dns import Settings as DnsSettings
from .collectors.elasticsearch import Settings as ElasticsearchSettings
from .collectors.http import Settings as HttpSettings
from .collectors.kafka import Settings as KafkaSettings
from .collectors.redis import Settings as RedisSettings
from .collectors.redis_cluster import Settings as RedisClusterSettings
from .collectors.tcp import Settings as TcpSettings
from .collectors.tls import Settings as TlsSettings
from .fields import Duration, ItemId, Name, PositiveDuration, StrictModel


class ModuleBase(StrictModel):
    timeout: PositiveDuration = 10.0
    """Upper bound for one run; a scrape's own timeout (minus the offset) may shorten it."""
    retries: Annotated[int, Field(ge=0, le=5)] = 0
    """Extra attempts after a failed one, within the same timeout."""
    item: ItemId | None = None
    """Item for `/probe` requests that do not name one with `&item=`."""


class DnsModule(ModuleBase):
    kind: Literal["dns"]
    dns: DnsSettings = Field(default_factory=DnsSettings)


class TcpModule(ModuleBase):
    kind: Literal["tcp"]
    tcp: TcpSettings = Field(default_factory=TcpSettings)


class TlsModule(ModuleBase):
    kind: Literal["tls"]
    tls: TlsSettings = Field(default_factory=TlsSettings)


class HttpModule(ModuleBase):
    kind: Literal["http"]
    http: HttpSettings = Field(default_factory=HttpSettings)


class RedisModule(ModuleBase):
    kind: Literal["redis"]
    redis: RedisSettings = Field(default_factory=RedisSettings)


class RedisClusterModule(ModuleBase):
    kind: Literal["redis_cluster"]
    redis_cluster: RedisClusterSettings = Field(default_factory=RedisClusterSettings)


class ElasticsearchModule(ModuleBase):
    kind: Literal["elasticsearch"]
    elasticsearch: ElasticsearchSettings = Field(default_factory=ElasticsearchSettings)


class KafkaModule(ModuleBase):
    kind: Literal["kafka"]
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)


class SqlModule(ModuleBase):
    kind: Literal["sql"]
    sql: sql.Settings


class GoldenGateModule(ModuleBase):
    kind: Literal["goldengate"]
    goldengate: goldengate.Settings


Module = Annotated[
    DnsModule | TcpModule | TlsModule | HttpModule | RedisModule | RedisClusterModule
    | ElasticsearchModule | KafkaModule | SqlModule | GoldenGateModule,
    Field(discriminator="kind"),
]

KIND_MODULES = {
    "dns": dns, "tcp": tcp, "tls": tls, "http": http, "redis": redis,
    "redis_cluster": redis_cluster, "elasticsearch": elasticsearch, "kafka": kafka,
    "sql": sql, "goldengate": goldengate,
}


def module_settings(module: Module) -> StrictModel:
    """The kind-specific settings block of a module (`module.http` for kind http, ...)."""
    return getattr(module, module.kind)


class CheckConfig(StrictModel):
    name: Name
    item: ItemId
    module: Name
    target: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    interval: PositiveDuration | None = None
    """Run at most this often; between runs the cached result is served."""


class GlobalConfig(StrictModel):
    scrape_timeout_offset: Duration = 0.5
    """Subtracted from Prometheus' X-Prometheus-Scrape-Timeout-Seconds for /probe and /metrics."""
    max_concurrency: Annotated[int, Field(ge=1, le=1024)] = 64
    """Checks running at once in one scrape."""


class ExporterConfig(StrictModel):
    global_: GlobalConfig = Field(default_factory=GlobalConfig, alias="global")
    modules: dict[Name, Module] = Field(default_factory=dict)
    checks: list[CheckConfig] = Field(default_factory=list)

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
            validate = getattr(KIND_MODULES[module.kind], "validate_target", None)
            if validate is not None:
                try:
                    validate(check.target)
                except ValueError as exc:
                    raise ValueError(f"{where}: target {check.target!r}: {exc}") from None
        return self
