"""Collector of kind `redis`: one standalone instance (master or replica), or a Sentinel-managed group.

Items 06 (the extranet log Redis) and 12 (Redis status). Series carry redis_exporter's names so its
community dashboards keep working; in sentinel mode each instance's series carry `addr`.

    modules:
      log_redis:
        kind: redis
        redis: {password: "${LOG_REDIS_PASSWORD}", memory_used_max_ratio: 0.85}
      session_sentinel:
        kind: redis
        redis: {mode: sentinel, master_name: mymaster, password_file: /etc/einvoice/redis.pw}
    checks:
      - {name: log-redis, item: "06", module: log_redis, target: "10.1.2.3:6379"}
      - {name: session-redis, item: "12", module: session_sentinel,
         target: "10.1.3.1:26379,10.1.3.2:26379,10.1.3.3:26379"}

Least privilege for the monitoring user (Redis 6+ ACL). Only INFO is required; without the others
their series are absent (slow log, latency spikes, `redis_config_*`):

    ACL SETUSER einvoice_monitor on >PASSWORD +info +slowlog|len +slowlog|get +latency|latest
        +config|get +cluster|info +cluster|nodes

In sentinel mode the Sentinel is asked SENTINEL MASTER/SLAVES (required), INFO SENTINEL, SENTINEL
CKQUORUM and SENTINEL SENTINELS (redis_exporter's `redis_sentinel_*` series). What is and is not
exposed of redis_exporter 1.45, and why: tests/community/README.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, model_validator

from ..fields import one_of_secret
from ..outcome import Check, MetricSet, Outcome, Reason
from . import CheckError, Deadline
from ._redis_common import (
    ConnectionSettings,
    Credentials,
    InstanceReport,
    RedisConnector,
    classify,
    emit_instance,
    emit_up,
    format_address,
    judge_instance,
    number,
    parse_address,
    parse_addresses,
    parse_info,
    query_instance,
    query_many,
)

SENTINEL_PORT = 26379


class Settings(ConnectionSettings):
    """Settings of a `redis` module (connection and auth settings apply to the data instances)."""

    mode: Literal["standalone", "sentinel"] = "standalone"
    """standalone: the target is the instance. sentinel: the target (or `sentinels`) lists
    Sentinels, asked for the current master of `master_name` and its replicas."""
    master_name: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    sentinels: list[str] = Field(default_factory=list)
    """Sentinel addresses; when empty the target is a comma-separated list of them."""
    sentinel_username: str | None = None
    sentinel_password: SecretStr | None = None
    """Sentinels' own password (`requirepass` in sentinel.conf), often different from the data's."""
    sentinel_password_file: Path | None = None
    max_concurrency: Annotated[int, Field(ge=1, le=64)] = 8
    """Instances queried at once in sentinel mode."""

    @model_validator(mode="after")
    def _mode(self) -> Settings:
        one_of_secret(self.sentinel_password, self.sentinel_password_file, "sentinel_password")
        if self.mode == "sentinel":
            if self.master_name is None:
                raise ValueError("master_name is required when mode is sentinel")
            for index, address in enumerate(self.sentinels):
                try:
                    parse_address(address, SENTINEL_PORT)
                except ValueError as exc:
                    raise ValueError(f"sentinels[{index}]: {exc}") from None
        else:
            for key in ("master_name", "sentinel_username", "sentinel_password",
                        "sentinel_password_file"):
                if getattr(self, key) is not None:
                    raise ValueError(f"{key} only applies when mode is sentinel")
            if self.sentinels:
                raise ValueError("sentinels only applies when mode is sentinel")
        return self


def _text(raw: Any) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def validate_target(target: str) -> str:
    """`host:port` of the instance, or of Sentinels separated by commas (sentinel mode)."""
    parse_addresses(target)
    return target


class RedisCollector:
    """One standalone instance per target, or the group a Sentinel reports.

        redis_up 1
        redis_memory_used_bytes 1.040128e+06
        redis_master_link_up 1                      (replicas only)
        redis_sentinel_master_status{master_address="10.0.0.1:6379",master_name="m",master_status="ok"} 1
        redis_up{addr="10.0.0.2:6379"} 1            (sentinel mode: one set per instance)
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.connector = RedisConnector(settings)
        self.sentinel_connector = RedisConnector(settings, Credentials(
            settings.sentinel_username, settings.sentinel_password, settings.sentinel_password_file))

    def run(self, target: str, timeout: float) -> Outcome:
        deadline = Deadline(timeout)
        outcome = Outcome()
        try:
            password = self.connector.credentials.resolve()
        except OSError as exc:
            emit_up(outcome.metrics, False)
            return outcome.fail(Reason.ERROR, f"password_file unreadable: {exc.strerror}")
        if self.settings.mode == "sentinel":
            return self._run_sentinel(target, deadline, password, outcome)
        return self._run_standalone(target, deadline, password, outcome)

    def close(self) -> None:
        """Close the connections kept for the next run."""
        self.connector.close()
        self.sentinel_connector.close()

    def _run_standalone(self, target: str, deadline: Deadline, password: str | None,
                        outcome: Outcome) -> Outcome:
        from redis.exceptions import RedisError

        addresses = parse_addresses(target)
        if len(addresses) != 1:
            emit_up(outcome.metrics, False)
            return outcome.fail(Reason.ERROR, "standalone mode takes one host:port target")
        host, port = addresses[0]
        try:
            report, _ = query_instance(self.connector, host, port, deadline, password)
        except (RedisError, OSError) as exc:
            emit_up(outcome.metrics, False)
            return outcome.fail_with(classify(exc))
        emit_instance(outcome.metrics, report)
        judge_instance(outcome, report, self.settings)
        return outcome

    def _run_sentinel(self, target: str, deadline: Deadline, password: str | None,
                      outcome: Outcome) -> Outcome:
        from redis.exceptions import RedisError, ResponseError

        settings = self.settings
        assert settings.master_name is not None  # the model requires it in sentinel mode
        name = settings.master_name
        sentinels = ([parse_address(s, SENTINEL_PORT) for s in settings.sentinels]
                     or parse_addresses(target, SENTINEL_PORT))
        try:
            sentinel_password = self.sentinel_connector.credentials.resolve()
        except OSError as exc:
            return outcome.fail(Reason.ERROR, f"sentinel_password_file unreadable: {exc.strerror}")
        answer: tuple[dict[str, str], list[dict[str, str]], list[Any]] | None = None
        last = CheckError(Reason.ERROR, "no sentinel to ask")
        for host, port in sentinels:
            if deadline.expired():
                break
            try:
                master_raw, replicas_raw, *optional = self.sentinel_connector.exchange(
                    host, port, deadline, sentinel_password,
                    [("SENTINEL", "MASTER", name), ("SENTINEL", "SLAVES", name), ("INFO", "SENTINEL"),
                     ("SENTINEL", "CKQUORUM", name), ("SENTINEL", "SENTINELS", name)])
            except (RedisError, OSError) as exc:
                failure = classify(exc)
                last = CheckError(failure.reason, f"sentinel {format_address(host, port)}: {failure.detail}")
                continue
            for reply in (master_raw, replicas_raw):
                if isinstance(reply, ResponseError):
                    # A Sentinel that answers but does not know the group: the others say the same.
                    return outcome.fail(Reason.STATE, f"sentinel {format_address(host, port)}: "
                                        f"{classify(reply).detail}")
            answer = (_pairs(master_raw), [_pairs(r) for r in replicas_raw], optional)
            break
        if answer is None:
            return outcome.fail_with(last)

        master, replicas, optional = answer
        metrics = outcome.metrics
        _emit_sentinel_optional(metrics, name, format_address(
            master.get("ip", ""), int(master.get("port", 0) or 0)), optional)
        master_addr = format_address(master.get("ip", ""), int(master.get("port", 0) or 0))
        flags = set(master.get("flags", "").split(","))
        status = "odown" if "o_down" in flags else "sdown" if "s_down" in flags else "ok"
        group = {"master_name": name, "master_address": master_addr}
        metrics.gauge("redis_sentinel_master_status", "Master status as a Sentinel sees it", 1,
                      {**group, "master_status": status})
        metrics.gauge("redis_sentinel_master_slaves", "Replicas the Sentinel knows for the master",
                      len(replicas), group)
        ok_replicas = [r for r in replicas if not _down(r)]
        metrics.gauge("redis_sentinel_master_ok_slaves", "Replicas not flagged down or disconnected",
                      len(ok_replicas), group)
        sentinel_count = int(master.get("num-other-sentinels", 0) or 0) + 1
        metrics.gauge("redis_sentinel_master_sentinels", "Sentinels watching the master",
                      sentinel_count, group)
        quorum = int(master.get("quorum", 1) or 1)

        instances = [(master.get("ip", ""), int(master.get("port", 0) or 0))]
        instances += [(r.get("ip", ""), int(r.get("port", 0) or 0)) for r in replicas]
        reports = query_many(self.connector, instances, deadline, password, settings.max_concurrency)

        if status != "ok":
            outcome.fail(Reason.STATE, f"master {name} is {status} according to the sentinel")
        if sentinel_count < quorum:
            outcome.fail(Reason.STATE, f"{sentinel_count} sentinel(s) for {name}, below quorum {quorum}")
        for (host, port), result in reports.items():
            addr = format_address(host, port)
            labels = {"addr": addr}
            if isinstance(result, InstanceReport):
                emit_instance(metrics, result, labels)
            else:
                emit_up(metrics, False, labels)
        for index, ((host, port), result) in enumerate(reports.items()):
            role = "master" if index == 0 else "replica"
            where = f"{role} {format_address(host, port)}"
            if not isinstance(result, InstanceReport):
                outcome.fail(result.reason, f"{where}: {result.detail}")
                continue
            if index == 0 and result.info.get("role") != "master":
                outcome.fail(Reason.STATE, f"{where} reports role {result.info.get('role')}")
            judge_instance(outcome, result, settings, where)
        return outcome


SENTINEL_INFO_METRICS = (
    ("sentinel_masters", "redis_sentinel_masters", "Masters this Sentinel monitors"),
    ("sentinel_tilt", "redis_sentinel_tilt", "1 while the Sentinel is in TILT mode"),
    ("sentinel_running_scripts", "redis_sentinel_running_scripts", "Scripts running now"),
    ("sentinel_scripts_queue_length", "redis_sentinel_scripts_queue_length", "Scripts queued"),
    ("sentinel_simulate_failure_flags", "redis_sentinel_simulate_failure_flags",
     "Failure simulation flags (testing only)"),
)


def _emit_sentinel_optional(metrics: MetricSet, name: str, master_addr: str, answers: list[Any]) -> None:
    """redis_exporter's Sentinel series from INFO SENTINEL, SENTINEL CKQUORUM and SENTINEL SENTINELS."""
    from redis.exceptions import NoPermissionError, ResponseError

    info_raw, ckquorum, sentinels = (None if isinstance(a, ResponseError) else a for a in answers)
    refused = isinstance(answers[1], NoPermissionError)
    if info_raw is not None:
        info = parse_info(_text(info_raw))[0]
        for key, metric, help_ in SENTINEL_INFO_METRICS:
            value = number(info.get(key))
            if value is not None:
                metrics.gauge(metric, help_, value)
    group = {"master_name": name, "master_address": master_addr}
    if ckquorum is not None or (isinstance(answers[1], ResponseError) and not refused):
        message = _text(ckquorum if ckquorum is not None else answers[1]).strip()
        metrics.gauge("redis_sentinel_master_ckquorum_status",
                      "1 when SENTINEL CKQUORUM says the quorum can be reached",
                      1 if ckquorum is not None else 0,
                      {"master_name": name, "message": message[:200]})
    if sentinels is not None:
        ok = 1 + sum(1 for raw in sentinels if not _down(_pairs(raw)))  # itself and the healthy others
        metrics.gauge("redis_sentinel_master_ok_sentinels", "Sentinels not flagged down, this one included",
                      ok, group)


def _pairs(raw: Any) -> dict[str, str]:
    """A Sentinel's flat [key, value, key, value...] reply as a dict of strings."""
    items = [item.decode() if isinstance(item, bytes) else str(item) for item in raw]
    return dict(zip(items[::2], items[1::2], strict=False))


def _down(replica: dict[str, str]) -> bool:
    flags = set(replica.get("flags", "").split(","))
    return bool(flags & {"s_down", "o_down", "disconnected"})


def unanswered(metrics: MetricSet) -> None:
    """`redis_up 0` for a run that timed out or raised before it could say so itself."""
    emit_up(metrics, False)


def build(settings: Settings) -> Check:
    return RedisCollector(settings)

