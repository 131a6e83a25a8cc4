"""The `docker` collector against a real Docker engine (see conftest.py): containers crash-looping,
failing their health check, OOM-killed, disappearing, and the daemon stopped mid-scrape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from einvoice_exporter.collectors import docker as kind
from einvoice_exporter.outcome import Outcome, Reason

from tests.docker.conftest import IMAGE, Daemon
from tests.support.certs import TestCA
from tests.support.collectors import reason, run_once
from tests.support.procs import wait_until

pytestmark = pytest.mark.slow

SECRET = "hunter2-Sup3rSecret"


def settings(**values: Any) -> kind.Settings:
    return kind.Settings.model_validate(values)


def scrape(daemon: Daemon | str, **values: Any) -> Outcome:
    target = daemon if isinstance(daemon, str) else daemon.target
    return run_once(kind, settings(**values), target, 20.0)


def every_text(outcome: Outcome) -> str:
    """Every label value, family name and the failure detail, to look for leaks."""
    parts = [outcome.failure.detail if outcome.failure else ""]
    for name, _type, doc, samples in outcome.metrics.items():
        parts += [name, doc]
        for labels, _value in samples:
            parts += [*labels.keys(), *labels.values()]
    return "\n".join(parts)


def test_running_container_is_reported_without_env_or_command(docker: Daemon) -> None:
    docker.run("intake-api-1", "--init", "-e", f"DB_PASSWORD={SECRET}", "--label", f"token={SECRET}",
               IMAGE, "sh", "-c", f"echo {SECRET}; exec sleep infinity")
    wait_until(lambda: docker.state("intake-api-1").get("Running") is True, timeout=30,
               what="container running")
    started = kind.parse_time(docker.state("intake-api-1")["StartedAt"])
    outcome = scrape(docker, include="intake-.*",
                     expected=[{"name": "intake-api-1"}, {"pattern": "intake-api-[0-9]+", "min_running": 1}])
    assert outcome.success, outcome.failure
    c = {"name": "intake-api-1", "image": IMAGE}
    ms = outcome.metrics
    assert ms.value("einvoice_container_state", {**c, "state": "running"}) == 1
    assert ms.value("einvoice_container_state", {**c, "state": "exited"}) == 0
    assert ms.value("einvoice_containers", {"state": "running"}) == 1
    assert ms.value("einvoice_container_restarts_total", c) == 0
    assert ms.value("einvoice_container_oom_killed", c) == 0
    assert ms.value("container_start_time_seconds", c) == pytest.approx(started)
    uptime = ms.value("einvoice_container_uptime_seconds", c)
    assert uptime is not None and 0 <= uptime < 600
    assert ms.value("einvoice_container_expected_running", {"expected": "intake-api-[0-9]+"}) == 1
    assert ms.value("einvoice_container_health", {**c, "status": "healthy"}) is None  # no health check
    assert SECRET not in every_text(outcome)
    assert "sleep" not in every_text(outcome)


def test_crash_loop_under_restart_policy_fails_with_restart_count(docker: Daemon) -> None:
    docker.run("crashy", "--restart", "always", IMAGE, "sh", "-c", "exit 3")

    # Docker doubles the delay between restarts from 100 ms: after 6 restarts the container
    # waits 6.4 s in `restarting`, long enough for one scrape on a loaded machine.
    def looping() -> bool:
        state = docker.inspect("crashy")
        return state.get("RestartCount", 0) >= 6 and state["State"]["Status"] == "restarting"

    wait_until(looping, timeout=90, interval=0.05, what="6 restarts")
    outcome = scrape(docker, include="crashy")
    c = {"name": "crashy", "image": IMAGE}
    ms = outcome.metrics
    restarts = ms.value("einvoice_container_restarts_total", c)
    assert restarts is not None and restarts >= 6
    assert ms.value("einvoice_container_last_exit_code", c) == 3
    assert ms.value("einvoice_container_state", {**c, "state": "restarting"}) == 1
    assert reason(outcome) is Reason.STATE
    assert outcome.failure is not None and "crashy is restarting" in outcome.failure.detail
    # The same container with the judgement switched off: measured, not failed.
    assert scrape(docker, include="crashy", fail_on_restarting=False).success


def test_failing_health_check_is_unhealthy_and_its_output_never_exported(docker: Daemon) -> None:
    docker.run("health-bad", "--init", "--health-cmd", f"echo {SECRET}; exit 1", "--health-interval", "1s",
               "--health-retries", "1", "--health-timeout", "5s", IMAGE, "sleep", "infinity")
    wait_until(lambda: (docker.state("health-bad").get("Health") or {}).get("Status") == "unhealthy",
               timeout=60, what="health check failing")
    outcome = scrape(docker, include="health-.*")
    c = {"name": "health-bad", "image": IMAGE}
    assert outcome.metrics.value("einvoice_container_health", {**c, "status": "unhealthy"}) == 1
    assert outcome.metrics.value("einvoice_container_health", {**c, "status": "healthy"}) == 0
    streak = outcome.metrics.value("einvoice_container_health_failing_streak", c)
    assert streak is not None and streak >= 1
    assert reason(outcome) is Reason.STATE
    assert outcome.failure is not None and "health-bad is unhealthy" in outcome.failure.detail
    assert SECRET not in every_text(outcome)


def test_oom_killed_under_memory_limit(docker: Daemon) -> None:
    # The shell doubles a string until the 8 MiB limit (no swap) kills it.
    docker.run("oomer", "--memory", "8m", "--memory-swap", "8m", IMAGE,
               "sh", "-c", "x=a; while true; do x=$x$x; done")
    # dockerd records the exit and the kernel's OOM event separately (either may come first): wait
    # for both, which also proves the kernel really killed it.
    def oom_killed() -> bool:
        state = docker.state("oomer")
        return state.get("Status") == "exited" and state.get("OOMKilled") is True

    wait_until(oom_killed, timeout=60, what="exited with OOMKilled")
    outcome = scrape(docker, include="oomer", expected=[{"name": "oomer"}])
    c = {"name": "oomer", "image": IMAGE}
    assert outcome.metrics.value("einvoice_container_oom_killed", c) == 1
    assert outcome.metrics.value("einvoice_container_last_exit_code", c) == 137
    assert outcome.metrics.value("einvoice_container_state", {**c, "state": "exited"}) == 1
    assert outcome.metrics.value("einvoice_container_uptime_seconds", c) is None
    assert outcome.metrics.value("einvoice_container_expected_running", {"expected": "oomer"}) == 0
    assert reason(outcome) is Reason.STATE
    assert outcome.failure is not None and "oomer: 0 running of 1, 1 must run" in outcome.failure.detail


def test_expected_container_that_disappears(docker: Daemon) -> None:
    for n in (1, 2):
        docker.run(f"worker-{n}", "--init", IMAGE, "sleep", "infinity")
    expected = [{"name": "worker-1"}, {"pattern": "worker-[0-9]+", "min_running": 2}]
    wait_until(lambda: all(docker.state(f"worker-{n}").get("Running") for n in (1, 2)), timeout=30,
               what="workers running")
    assert scrape(docker, include="worker-.*", expected=expected).success
    docker.cli("rm", "-f", "worker-1")
    outcome = scrape(docker, include="worker-.*", expected=expected)
    ms = outcome.metrics
    assert ms.value("einvoice_container_expected_running", {"expected": "worker-1"}) == 0
    assert ms.value("einvoice_container_expected_running", {"expected": "worker-[0-9]+"}) == 1
    assert ms.value("einvoice_container_expected_min", {"expected": "worker-[0-9]+"}) == 2
    gone = {"name": "worker-1", "image": IMAGE, "state": "running"}
    assert ms.value("einvoice_container_state", gone) is None
    assert reason(outcome) is Reason.STATE
    assert outcome.failure is not None
    assert "container worker-1: none found, 1 must run" in outcome.failure.detail
    assert "containers matching worker-[0-9]+: 1 running of 1, 2 must run" in outcome.failure.detail


def test_daemon_stopped_mid_scrape_is_a_reason(docker: Daemon, proxy_factory: Any) -> None:
    docker.run("victim", "--init", IMAGE, "sleep", "infinity")
    wait_until(lambda: docker.state("victim").get("Running") is True, timeout=30, what="running")

    def stop_after_listing(connection: int) -> None:
        if connection == 2:  # the list has been read; the inspection is next
            docker.stop()

    proxy = proxy_factory(docker.socket, stop_after_listing)
    outcome = scrape(proxy.target, include="victim")
    assert proxy.count == 2
    assert reason(outcome) in (Reason.RESET, Reason.REFUSED)
    assert outcome.failure is not None and "inspecting container victim" in outcome.failure.detail
    # What was measured before the daemon went away is kept.
    assert outcome.metrics.value("einvoice_containers", {"state": "running"}) == 1
    # The daemon gone altogether: refused, with the socket path never needed in the detail.
    stopped = scrape(docker)
    assert reason(stopped) is Reason.REFUSED
    assert stopped.failure is not None and "listing containers" in stopped.failure.detail


def test_remote_daemon_over_tls_with_a_client_certificate(docker: Daemon, tmp_path: Path) -> None:
    docker.run("remote-app", "--init", IMAGE, "sleep", "infinity")
    wait_until(lambda: docker.state("remote-app").get("Running") is True, timeout=30, what="running")
    client = docker.client_cert
    outcome = run_once(kind, settings(include="remote-app", ca_file=str(docker.ca.cert_path),
                                      cert_file=str(client.cert), key_file=str(client.key)),
                       docker.tls_target, 20.0)
    assert outcome.success, outcome.failure
    assert outcome.metrics.value("einvoice_container_state",
                                 {"name": "remote-app", "image": IMAGE, "state": "running"}) == 1
    # --tlsverify: a client without a certificate is refused during the handshake.
    anonymous = run_once(kind, settings(ca_file=str(docker.ca.cert_path)), docker.tls_target, 20.0)
    assert reason(anonymous) in (Reason.TLS, Reason.RESET)
    # A daemon whose certificate the configured CA did not sign.
    other = TestCA(tmp_path / "other-ca")
    stranger = run_once(kind, settings(ca_file=str(other.cert_path), cert_file=str(client.cert),
                                       key_file=str(client.key)), docker.tls_target, 20.0)
    assert reason(stranger) is Reason.TLS


def test_socket_that_is_not_a_daemon(tmp_path: Path) -> None:
    outcome = scrape(f"unix://{tmp_path}/none.sock")
    assert reason(outcome) is Reason.REFUSED


def test_targets_and_settings_are_validated() -> None:
    assert kind.validate_target("unix:///var/run/docker.sock")
    assert kind.validate_target("tcp://10.1.2.3:2376")
    for bad in ("docker.sock", "http://host:2375", "tcp://user:pw@host:2376", "unix://relative"):
        with pytest.raises(ValueError):
            kind.validate_target(bad)
    with pytest.raises(ValueError, match="either a name or a pattern"):
        settings(expected=[{"name": "a", "pattern": "b"}])
    with pytest.raises(ValueError, match="not a regular expression"):
        settings(expected=[{"pattern": "("}])
    with pytest.raises(ValueError, match="cert_file and key_file"):
        settings(cert_file="/etc/hostname")
    assert kind.parse_time("0001-01-01T00:00:00Z") is None
    assert kind.parse_time("2026-12-06T03:22:24.00939066Z") == pytest.approx(1796527344.009390)
    assert kind._image("registry.local/intake:2.3@sha256:" + "a" * 64) == "registry.local/intake:2.3"
