"""What `make demo` sets up around the chain: ports that are taken (Debian's prometheus and
prometheus-alertmanager services listen on 9090 and 9093), a fresh start, the alerts that open no
ticket in the demo, and a demo config whose names say what they check."""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from einvoice_core.catalogue import Severity, get_item
from einvoice_core.thresholds import load_thresholds
from einvoice_stack.__main__ import parse_args
from einvoice_stack.stack import (
    DEMO_QUIET_ALERTS,
    DEMO_QUIET_RECEIVER,
    PORTS,
    REPO,
    PortSpec,
    Stack,
    StackConfig,
    StackError,
    choose_ports,
    lock_run_dir,
)
from tests.support.procs import free_port, require_binary, wait_until
from tests.support.stack import fast_stack_config

pytestmark = pytest.mark.xdist_group("e2e")


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port something else listens on, as a Debian service would."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_taken_default_port_is_replaced_and_the_stack_runs_there(tmp_path: Path, held_port: int) -> None:
    config = replace(fast_stack_config(tmp_path), prometheus_port=held_port,
                     movable_ports=frozenset({"prometheus"}))
    stack = Stack(config)
    try:
        stack.start(demo_schedule=[(True, 3600.0)])
        moved = stack.config.prometheus_port
        assert moved != held_port
        assert [note for note in stack.port_notes if f"port {held_port} is in use" in note]
        assert stack.urls()["Prometheus"] == f"http://127.0.0.1:{moved}"
        # Prometheus answers on the new port and scrapes itself there.
        def scrapes_itself() -> bool:
            url = f"http://127.0.0.1:{moved}/api/v1/targets"
            with urllib.request.urlopen(url, timeout=10) as resp:
                targets = json.loads(resp.read())["data"]["activeTargets"]
            return f"127.0.0.1:{moved}" in {t["labels"]["instance"] for t in targets}

        wait_until(scrapes_itself, timeout=30, interval=0.2, what="Prometheus scraping itself there")
    finally:
        stack.stop()


def test_a_taken_port_that_was_asked_for_is_a_clear_error(tmp_path: Path, held_port: int) -> None:
    config = StackConfig(run_dir=tmp_path, prometheus_port=held_port, alertmanager_port=free_port(),
                         exporter_port=free_port(), notifier_port=free_port(), demo_target_port=free_port())
    with pytest.raises(StackError, match=rf"prometheus port {held_port} is in use.*--prometheus-port"):
        choose_ports(config)
    # On the usual port, the message names the Debian service that holds it and how to stop it.
    debian = (PortSpec("prometheus", "prometheus_port", "--prometheus-port", held_port,
                       PORTS[0].usual_owner), *PORTS[1:])
    with pytest.raises(StackError, match=r"systemctl stop prometheus"):
        choose_ports(config, debian)
    moved, notes = choose_ports(replace(config, movable_ports=frozenset({"prometheus"})), debian)
    assert moved.prometheus_port != held_port and "systemctl stop prometheus" in notes[0]


def test_two_taken_ports_never_get_the_same_replacement(held_port: int) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        second = int(other.getsockname()[1])
        config = StackConfig(run_dir=Path("/nonexistent"), prometheus_port=held_port,
                             alertmanager_port=second, exporter_port=held_port, notifier_port=free_port(),
                             demo_target_port=free_port(),
                             movable_ports=frozenset(spec.name for spec in PORTS))
        moved, notes = choose_ports(config)
    ports = [getattr(moved, spec.field) for spec in PORTS]
    assert len(set(ports)) == len(ports) and held_port not in ports and second not in ports
    assert len(notes) == 3


def test_cli_defaults_are_movable_and_given_ports_are_not() -> None:
    args = parse_args(["--prometheus-port", "19999"])
    assert args.prometheus_port == 19999 and args.alertmanager_port is None


def test_every_start_is_fresh_unless_asked_to_keep(tmp_path: Path) -> None:
    config = fast_stack_config(tmp_path)
    Stack(config).render()
    old_series = config.run_dir / "prometheus-data" / "old-block"
    old_tickets = config.run_dir / "notifier" / "notifier.db"
    old_series.write_text("x")
    old_tickets.write_text("x")
    Stack(replace(config, keep_data=True)).render()
    assert old_series.exists() and old_tickets.exists()
    Stack(config).render()
    assert not old_series.exists() and not old_tickets.exists()
    assert (config.run_dir / "prometheus.yml").exists()


def _routes(config_file: Path, **labels: str) -> str:
    binary = require_binary("amtool")
    result = subprocess.run([binary, "config", "routes", "test", f"--config.file={config_file}",
                             *(f"{key}={value}" for key, value in labels.items())],
                            capture_output=True, text=True, timeout=60, check=True)
    return result.stdout.strip()


def test_the_demo_routes_its_background_alerts_to_no_channel(tmp_path: Path) -> None:
    config = fast_stack_config(tmp_path)
    Stack(config).render()
    rendered = config.run_dir / "alertmanager.yml"
    receivers = {r["name"]: r for r in yaml.safe_load(rendered.read_text())["receivers"]}
    assert receivers[DEMO_QUIET_RECEIVER] == {"name": DEMO_QUIET_RECEIVER}  # nothing to send to
    for alertname in DEMO_QUIET_ALERTS:
        assert _routes(rendered, alertname=alertname, severity="critical", service="processing",
                       item="03", zone="extranet") == DEMO_QUIET_RECEIVER, alertname
    # The story's alerts still reach the notifier, the outage through the SLA route.
    assert _routes(rendered, alertname="EinvoiceServiceOutage", severity="critical",
                   service="processing").startswith("onsite-sla")
    assert _routes(rendered, alertname="EinvoiceCheckFailing", severity="warning", item="20",
                   zone="extranet").startswith("onsite-warning")


def test_demo_config_names_say_what_they_check() -> None:
    doc = yaml.safe_load((REPO / "config" / "demo" / "exporter.yml").read_text(encoding="utf-8"))
    checks = {check["name"]: check for check in doc["checks"]}
    services = load_thresholds().services
    # The target that goes down and comes back is the processing service's health endpoint.
    assert checks["demo-processing-health"]["item"] in services["processing"].items
    # The check that fails on purpose is a warning item outside every service: no outage, no page.
    failing = checks["closed-port"]["item"]
    assert get_item(failing).severity is Severity.WARNING
    assert all(failing not in service.items for service in services.values())


def test_rendered_configs_pass_each_tools_own_check(tmp_path: Path) -> None:
    config = fast_stack_config(tmp_path)
    Stack(config).render()
    run, bin_dir = config.run_dir, config.python_bin
    checks = [
        [str(bin_dir / "einvoice-notifier"), "--config", str(run / "notifier.yml"), "--check-config"],
        [str(bin_dir / "einvoice-exporter"), "--config", str(run / "exporter.yml"), "--check-config"],
        [require_binary("amtool"), "check-config", str(run / "alertmanager.yml")],
        [require_binary("promtool"), "check", "config", str(run / "prometheus.yml")],
    ]
    for argv in checks:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"
    notifier = yaml.safe_load((run / "notifier.yml").read_text())
    # First line and second line write to their own files, so a critical alert outside on-site
    # hours (sent to both) is not the same card twice in one file.
    paths = {channel["name"]: Path(channel["path"]).name for channel in notifier["channels"]}
    assert paths == {"console": "messages.log", "second-line": "second-line.log"}
    assert notifier["routing"]["first_line"] == ["console"]
    assert notifier["routing"]["second_line"] == ["second-line"]


def test_a_second_demo_in_the_same_run_directory_is_refused(tmp_path: Path) -> None:
    first = lock_run_dir(tmp_path)
    try:
        with pytest.raises(StackError, match="another demo is running from"):
            lock_run_dir(tmp_path)
    finally:
        first.close()
    lock_run_dir(tmp_path).close()  # free again once the first one is gone
