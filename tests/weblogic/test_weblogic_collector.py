"""The `weblogic` collector against a server answering as WebLogic 12.2.1.4 / 14.1.1 (conftest.py)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from einvoice_exporter.collectors import weblogic as kind
from einvoice_exporter.outcome import Outcome, Reason

from tests.support.collectors import reason, run_once
from tests.weblogic.conftest import FakeWebLogic


def scrape(fake: FakeWebLogic, timeout: float = 10.0, **values: Any) -> Outcome:
    values.setdefault("username", fake.username)
    values.setdefault("password", fake.password)
    return run_once(kind, kind.Settings.model_validate(values), fake.url, timeout)


def test_healthy_domain_in_one_request(weblogic: FakeWebLogic) -> None:
    outcome = scrape(weblogic, expected_servers=["AdminServer", "sl-intake-1", "sl-intake-2"])
    assert outcome.success, outcome.failure
    assert weblogic.paths == ["/management/weblogic/latest/domainRuntime/search"]
    q = weblogic.queries[0]["children"]["serverRuntimes"]
    assert q["links"] == [] and "activationTime" in q["fields"]
    ms = outcome.metrics
    s = {"server": "sl-intake-1"}
    assert ms.value("wls_server_state_val", s) == kind.SERVER_STATES.index("RUNNING")
    assert ms.value("einvoice_weblogic_server_state", {**s, "state": "RUNNING"}) == 1
    assert ms.value("einvoice_weblogic_server_health", {**s, "state": "ok"}) == 1
    assert ms.value("wls_server_activation_time", s) == 1764900100456
    assert ms.value("einvoice_weblogic_server_start_time_seconds", s) == pytest.approx(1764900100.456)
    assert ms.value("wls_threadpool_execute_thread_total_count", s) == 24
    assert ms.value("wls_threadpool_execute_thread_idle_count", s) == 9
    assert ms.value("wls_threadpool_stuck_thread_count", s) == 0
    assert ms.value("wls_threadpool_hogging_thread_count", s) == 0
    assert ms.value("wls_threadpool_queue_length", s) == 0
    assert ms.value("wls_threadpool_throughput", s) == 41.5
    d = {**s, "name": "einvoiceDS"}
    assert ms.value("wls_datasource_active_connections_current_count", d) == 7
    assert ms.value("wls_datasource_waiting_for_connection_current_count", d) == 0
    assert ms.value("wls_datasource_failures_to_reconnect_count", d) == 0
    assert ms.value("wls_datasource_leaked_connection_count", d) == 0
    assert ms.value("einvoice_weblogic_datasource_state", {**d, "state": "Running"}) == 1
    assert ms.value("wls_jms_connections_current_count", s) == 3
    assert ms.value("wls_jms_jms_servers_current_count", s) == 1
    assert ms.value("wls_jmsserver_messages_current_count", {**s, "jmsserver": "InvoiceJMSServer"}) == 12
    assert ms.value("einvoice_weblogic_server_present", {"server": "sl-intake-2"}) == 1


def test_jms_and_datasources_can_be_left_out_of_the_query(weblogic: FakeWebLogic) -> None:
    outcome = scrape(weblogic, jms=False, datasources=False)
    assert outcome.success
    children = weblogic.queries[0]["children"]["serverRuntimes"]["children"]
    assert set(children) == {"threadPoolRuntime"}
    assert outcome.metrics.value("wls_jms_connections_current_count", {"server": "AdminServer"}) is None


def test_stuck_thread_fails_with_threshold(weblogic: FakeWebLogic) -> None:
    weblogic.server("sl-intake-2")["threadPoolRuntime"]["stuckThreadCount"] = 2
    weblogic.server("sl-intake-2")["threadPoolRuntime"]["hoggingThreadCount"] = 5
    outcome = scrape(weblogic)
    assert outcome.metrics.value("wls_threadpool_stuck_thread_count", {"server": "sl-intake-2"}) == 2
    assert reason(outcome) is Reason.THRESHOLD
    assert outcome.failure is not None and "sl-intake-2 has 2 stuck thread(s)" in outcome.failure.detail
    assert scrape(weblogic, max_stuck_threads=2).success
    assert reason(scrape(weblogic, max_stuck_threads=2, max_hogging_threads=4)) is Reason.THRESHOLD


@pytest.mark.parametrize("state", ["ADMIN", "FAILED"])
def test_server_in_admin_or_failed_state(weblogic: FakeWebLogic, state: str) -> None:
    server = weblogic.server("sl-intake-1")
    server["state"] = state
    server["healthState"]["state"] = "failed" if state == "FAILED" else "ok"
    outcome = scrape(weblogic)
    s = {"server": "sl-intake-1"}
    assert outcome.metrics.value("einvoice_weblogic_server_state", {**s, "state": state}) == 1
    assert outcome.metrics.value("einvoice_weblogic_server_state", {**s, "state": "RUNNING"}) == 0
    assert outcome.metrics.value("wls_server_state_val", s) == kind.SERVER_STATES.index(state)
    assert reason(outcome) is Reason.STATE
    assert outcome.failure is not None and f"server sl-intake-1 is {state}" in outcome.failure.detail
    # A domain whose ADMIN mode is expected (maintenance) can say so.
    if state == "ADMIN":
        assert scrape(weblogic, healthy_states=["RUNNING", "ADMIN"]).success


def test_critical_health_and_suspended_datasource(weblogic: FakeWebLogic) -> None:
    weblogic.server("AdminServer")["healthState"]["state"] = "critical"
    ds = weblogic.server("sl-intake-2")["JDBCServiceRuntime"]["JDBCDataSourceRuntimeMBeans"]["items"][0]
    ds["state"] = "Suspended"
    ds["waitingForConnectionCurrentCount"] = 14
    outcome = scrape(weblogic)
    assert reason(outcome) is Reason.STATE
    assert outcome.failure is not None
    assert "server AdminServer health is critical" in outcome.failure.detail
    assert "data source einvoiceDS on sl-intake-2 is Suspended" in outcome.failure.detail
    d = {"server": "sl-intake-2", "name": "einvoiceDS"}
    assert outcome.metrics.value("wls_datasource_waiting_for_connection_current_count", d) == 14


def test_waiting_for_connection_threshold(weblogic: FakeWebLogic) -> None:
    ds = weblogic.server("sl-intake-1")["JDBCServiceRuntime"]["JDBCDataSourceRuntimeMBeans"]["items"][0]
    ds["waitingForConnectionCurrentCount"] = 6
    assert scrape(weblogic).success
    outcome = scrape(weblogic, max_waiting_for_connection=5)
    assert reason(outcome) is Reason.THRESHOLD
    assert outcome.failure is not None and "6 request(s) waiting" in outcome.failure.detail


def test_shut_down_server_is_absent_and_reported(weblogic: FakeWebLogic) -> None:
    weblogic.servers = [s for s in weblogic.servers if s["name"] != "sl-intake-2"]
    outcome = scrape(weblogic, expected_servers=["sl-intake-1", "sl-intake-2"])
    assert outcome.metrics.value("einvoice_weblogic_server_present", {"server": "sl-intake-2"}) == 0
    assert reason(outcome) is Reason.STATE
    assert outcome.failure is not None and "sl-intake-2 is not running" in outcome.failure.detail


def test_wrong_password_is_auth_and_never_shows_the_password(weblogic: FakeWebLogic) -> None:
    outcome = scrape(weblogic, password="wrong-Secret-123")
    assert reason(outcome) is Reason.AUTH
    assert outcome.failure is not None and "401" in outcome.failure.detail
    assert "wrong-Secret-123" not in outcome.failure.detail


def test_password_from_file(weblogic: FakeWebLogic, tmp_path: Any) -> None:
    secret = tmp_path / "wls_password"
    secret.write_text(weblogic.password + "\n")
    outcome = run_once(kind, kind.Settings(username=weblogic.username, password_file=secret),
                       weblogic.url, 10.0)
    assert outcome.success, outcome.failure


def test_hung_admin_server_times_out_within_the_deadline(weblogic: FakeWebLogic) -> None:
    weblogic.hold = threading.Event()
    started = time.monotonic()
    outcome = scrape(weblogic, timeout=1.0)
    elapsed = time.monotonic() - started
    assert reason(outcome) is Reason.TIMEOUT
    assert outcome.failure is not None and "domain runtime search" in outcome.failure.detail
    assert elapsed < 10  # bounded by the deadline, not by the server's 30 s hold


def test_admin_server_down_is_refused() -> None:
    outcome = run_once(kind, kind.Settings(), "http://127.0.0.1:9", 5.0)
    assert reason(outcome) is Reason.REFUSED


def test_not_a_weblogic_answer(weblogic: FakeWebLogic) -> None:
    outcome = scrape(weblogic, version="12.1.3")
    assert reason(outcome) is Reason.BAD_STATUS
    assert outcome.failure is not None and "404" in outcome.failure.detail


def test_settings_and_target_validation() -> None:
    with pytest.raises(ValueError, match="password needs username"):
        kind.Settings.model_validate({"password": "x"})
    with pytest.raises(ValueError, match="not server states"):
        kind.Settings.model_validate({"healthy_states": ["UP"]})
    for bad in ("wls-admin:7001", "http://u:p@wls:7001", "http://wls:7001/management"):
        with pytest.raises(ValueError):
            kind.validate_target(bad)

def test_metric_names_are_weblogic_monitoring_exporters_snake_case() -> None:
    import re

    tables = (("wls_threadpool_", kind.THREADPOOL_METRICS), ("wls_datasource_", kind.DATASOURCE_METRICS),
              ("wls_jms_", kind.JMS_METRICS), ("wls_jmsserver_", kind.JMS_SERVER_METRICS))
    for prefix, table in tables:
        for field, metric in table:
            snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", field).lower()
            assert metric == prefix + snake
