"""The `json_values` and `service_registry` collectors against servers answering as Spring Boot
actuator, Nacos (v1, v2) and Eureka do (conftest.py)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from einvoice_exporter.collectors import json_values, service_registry
from einvoice_exporter.outcome import Outcome, Reason

from tests.jsonvalues.conftest import FakeServices
from tests.support.collectors import reason, run_once

HEALTH = {"name": "einvoice_app_health_component_up", "help": "Whether a health component is UP",
          "each": "components.*", "value": "status", "labels": {"component": "$key"},
          "value_map": {"UP": 1, "DOWN": 0, "OUT_OF_SERVICE": 0, "UNKNOWN": 0}, "min": 1}


def values(url: str, timeout: float = 10.0, **settings: Any) -> Outcome:
    return run_once(json_values, json_values.Settings.model_validate(settings), url, timeout)


def registry(url: str, **settings: Any) -> Outcome:
    return run_once(service_registry, service_registry.Settings.model_validate(settings), url, 10.0)


# --- json_values -------------------------------------------------------------------------------

def test_actuator_health_components_with_key_labels(services: FakeServices) -> None:
    outcome = values(services.url + "/actuator/health", metrics=[
        HEALTH,
        {"name": "einvoice_app_disk_free_bytes", "help": "Free disk",
         "value": "components.diskSpace.details.free"},
    ])
    assert outcome.success, outcome.failure
    for component in ("db", "diskSpace", "ping", "redis"):
        assert outcome.metrics.value("einvoice_app_health_component_up", {"component": component}) == 1
    assert outcome.metrics.value("einvoice_app_disk_free_bytes") == 53687091200
    # Details (database product, paths) never become labels unless asked for.
    assert all("Oracle" not in str(s) for _n, _t, _d, s in outcome.metrics.items())


def test_component_down_fails_with_threshold(services: FakeServices) -> None:
    services.actuator["health"]["status"] = "DOWN"
    services.actuator["health"]["components"]["db"]["status"] = "DOWN"
    outcome = values(services.url + "/actuator/health", metrics=[HEALTH])
    # Spring answers 503 when DOWN: the status is the failure, before any value.
    assert reason(outcome) is Reason.BAD_STATUS
    services.actuator["health"]["status"] = "UP"
    outcome = values(services.url + "/actuator/health", metrics=[HEALTH])
    assert outcome.metrics.value("einvoice_app_health_component_up", {"component": "db"}) == 0
    assert reason(outcome) is Reason.THRESHOLD
    assert outcome.failure is not None
    assert "einvoice_app_health_component_up{component=db} = 0, below 1" in outcome.failure.detail


def test_actuator_metric_measurements_by_statistic(services: FakeServices) -> None:
    outcome = values(services.url + "/actuator/metrics/http.server.requests", metrics=[
        {"name": "einvoice_app_http_server_requests", "help": "http.server.requests measurements",
         "each": "measurements.*", "value": "value", "labels": {"statistic": "statistic"}},
    ])
    assert outcome.success
    ms = outcome.metrics
    assert ms.value("einvoice_app_http_server_requests", {"statistic": "COUNT"}) == 18234
    assert ms.value("einvoice_app_http_server_requests", {"statistic": "MAX"}) == 2.31


def test_series_are_bounded(services: FakeServices) -> None:
    services.actuator["health"]["components"] = {f"c{i}": {"status": "UP"} for i in range(50)}
    outcome = values(services.url + "/actuator/health", metrics=[HEALTH], max_series=10)
    samples = next(s for n, _t, _d, s in outcome.metrics.items() if n == "einvoice_app_health_component_up")
    assert len(samples) == 10
    assert outcome.metrics.value("einvoice_json_series_dropped",
                                 {"metric": "einvoice_app_health_component_up"}) == 40
    services.actuator["health"]["components"] = {"x" * 500: {"status": "UP"}}
    outcome = values(services.url + "/actuator/health", metrics=[HEALTH])
    assert outcome.metrics.value("einvoice_app_health_component_up", {"component": "x" * 64}) == 1


def test_answers_that_are_not_what_was_asked(services: FakeServices) -> None:
    assert reason(values(services.url + "/not-json", metrics=[HEALTH])) is Reason.BAD_CONTENT
    assert reason(values(services.url + "/actuator/missing", metrics=[HEALTH])) is Reason.BAD_STATUS
    nothing = values(services.url + "/actuator/health", metrics=[
        {"name": "x_value", "help": "absent", "value": "no.such.path"}])
    assert reason(nothing) is Reason.BAD_CONTENT
    assert nothing.failure is not None and "no value found for x_value" in nothing.failure.detail


def test_hung_endpoint_times_out(services: FakeServices) -> None:
    services.hold = threading.Event()
    outcome = values(services.url + "/actuator/health", timeout=0.5, metrics=[HEALTH])
    assert reason(outcome) is Reason.TIMEOUT


def test_paths_and_settings_are_validated() -> None:
    assert json_values.parse_path("components.[db.primary].status") == ["components", "db.primary", "status"]
    assert json_values.parse_path("") == []
    with pytest.raises(ValueError):
        json_values.parse_path("a..b]")
    with pytest.raises(ValueError, match="reserved"):
        json_values.JsonMetric.model_validate({"name": "a", "help": "h", "labels": {"target": "x"}})
    with pytest.raises(ValueError, match="credentials do not go in headers"):
        json_values.Settings.model_validate({"metrics": [HEALTH], "headers": {"Authorization": "Bearer x"}})
    with pytest.raises(ValueError):
        json_values.validate_target("http://user:pw@host/actuator/health")


# --- service_registry --------------------------------------------------------------------------

SERVICES = [{"name": "sl-intake-api", "min_healthy": 2}, {"name": "invoice-processing", "min_healthy": 1}]


@pytest.mark.parametrize("api", ["nacos_v1", "nacos_v2"])
def test_nacos_healthy_instances_per_service(services: FakeServices, api: str) -> None:
    outcome = registry(services.url, api=api, services=SERVICES)
    assert outcome.success, outcome.failure
    ms = outcome.metrics
    assert ms.value("einvoice_service_instances", {"service": "sl-intake-api", "state": "healthy"}) == 2
    # One unhealthy and one disabled instance: neither counts as healthy.
    assert ms.value("einvoice_service_instances", {"service": "invoice-processing", "state": "healthy"}) == 1
    processing = {"service": "invoice-processing", "state": "unhealthy"}
    assert ms.value("einvoice_service_instances", processing) == 2
    assert ms.value("einvoice_service_instances_min", {"service": "sl-intake-api"}) == 2
    version = api[-2:]
    assert f"/nacos/{version}/ns/instance/list?serviceName=sl-intake-api" in services.requests[0]


@pytest.mark.parametrize("api", ["nacos_v1", "nacos_v2"])
def test_nacos_below_minimum_and_unknown_service(services: FakeServices, api: str) -> None:
    services.nacos["sl-intake-api"]["hosts"][1]["healthy"] = False
    outcome = registry(services.url, api=api, services=[*SERVICES, {"name": "tax-bureau-gateway"}])
    assert reason(outcome) is Reason.THRESHOLD
    assert outcome.failure is not None
    assert "service sl-intake-api: 1 healthy instance(s) of 2, 2 needed" in outcome.failure.detail
    assert "service tax-bureau-gateway: 0 healthy instance(s) of 0, 1 needed" in outcome.failure.detail


def test_nacos_with_authentication(services: FakeServices) -> None:
    services.nacos_auth = ("monitor", "N@cos-2026")
    assert reason(registry(services.url, api="nacos_v1", services=SERVICES)) is Reason.AUTH
    assert reason(registry(services.url, api="nacos_v1", services=SERVICES, username="monitor",
                           password="wrong")) is Reason.AUTH
    outcome = registry(services.url, api="nacos_v2", services=SERVICES, username="monitor",
                       password="N@cos-2026")
    assert outcome.success, outcome.failure
    assert services.requests.count("/nacos/v1/auth/login") == 2  # one login per run


def test_eureka_applications_in_one_request(services: FakeServices) -> None:
    outcome = registry(services.url, api="eureka", services=SERVICES)
    assert outcome.success, outcome.failure
    assert services.requests == ["/eureka/apps"]
    ms = outcome.metrics
    assert ms.value("einvoice_service_instances", {"service": "sl-intake-api", "state": "healthy"}) == 2
    processing = {"service": "invoice-processing", "state": "unhealthy"}
    assert ms.value("einvoice_service_instances", processing) == 1


def test_eureka_instance_down_and_single_instance_object(services: FakeServices) -> None:
    apps = services.eureka["applications"]["application"]
    apps[0]["instance"][1]["status"] = "DOWN"
    apps[1]["instance"] = apps[1]["instance"][0]  # Eureka writes a lone instance as an object
    outcome = registry(services.url, api="eureka", services=SERVICES)
    assert outcome.metrics.value("einvoice_service_instances",
                                 {"service": "invoice-processing", "state": "healthy"}) == 1
    assert reason(outcome) is Reason.THRESHOLD
    assert outcome.failure is not None and "sl-intake-api: 1 healthy" in outcome.failure.detail


def test_eureka_with_basic_auth(services: FakeServices) -> None:
    services.eureka_auth = ("eureka", "Eur3ka-pw")
    assert reason(registry(services.url, api="eureka", services=SERVICES)) is Reason.AUTH
    assert registry(services.url, api="eureka", services=SERVICES, username="eureka",
                    password="Eur3ka-pw").success


def test_registry_down_is_refused() -> None:
    assert reason(registry("http://127.0.0.1:9", api="eureka", services=SERVICES)) is Reason.REFUSED
