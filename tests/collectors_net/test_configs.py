"""config/example.yml and config/demo/exporter.yml validate, cover the items they promise, and the
demo's local checks behave as its comments say."""

from __future__ import annotations

from pathlib import Path

import pytest
from einvoice_exporter.collectors import build_check
from einvoice_exporter.config import ConfigError, parse_config
from einvoice_exporter.outcome import Reason

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_ENV = {"ACTUATOR_PASSWORD": "pw-from-env", "IDAUTH_PROBE_TOKEN": "tok-a", "SYNC_API_TOKEN": "tok-b",
               "WEBLOGIC_MONITOR_PASSWORD": "tok-c", "NACOS_MONITOR_PASSWORD": "tok-d",
               "EINV_ORACLE_PASSWORD": "pw-oracle", "EINV_MYSQL_PASSWORD": "pw-mysql",
               "OGG_MONITOR_PASSWORD": "pw-ogg"}


def test_example_config_covers_the_network_items():
    path = REPO / "config" / "example.yml"
    config = parse_config(path.read_text(encoding="utf-8"), str(path), env=EXAMPLE_ENV)
    assert {check.item for check in config.checks} >= {"01", "02", "05", "07", "08", "10", "14", "16", "17",
                                                       "18", "19", "20"}
    kinds = {config.modules[check.module].kind for check in config.checks}
    assert kinds >= {"dns", "tcp", "tls", "http", "sql", "goldengate"}
    actuator = config.modules["actuator"]
    assert actuator.http.basic_auth.password.get_secret_value() == "pw-from-env"
    assert "pw-from-env" not in repr(config)


def test_example_config_needs_its_secrets_from_the_environment():
    path = REPO / "config" / "example.yml"
    with pytest.raises(ConfigError, match="ACTUATOR_PASSWORD is not set"):
        parse_config(path.read_text(encoding="utf-8"), str(path), env={})


def test_demo_config_shows_both_states():
    path = REPO / "config" / "demo" / "exporter.yml"
    config = parse_config(path.read_text(encoding="utf-8"), str(path), env={})
    checks = {check.name: check for check in config.checks}
    dns_check = build_check(config.modules[checks["localhost-dns"].module])
    closed = build_check(config.modules[checks["closed-port"].module])
    up = dns_check.run(checks["localhost-dns"].target, 2)
    down = closed.run(checks["closed-port"].target, 2)
    assert up.success, up.failure
    assert down.failure is not None and down.failure.reason == Reason.REFUSED
