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
               "OGG_MONITOR_PASSWORD": "pw-ogg", "REDIS_MONITOR_PASSWORD": "pw-redis",
               "ES_MONITOR_PASSWORD": "pw-es"}


def test_example_config_covers_every_item_with_every_kind():
    """What an operator copies on day one: checks for all 20 items, every kind shown at least once."""
    from einvoice_exporter.collectors import KINDS
    from einvoice_exporter.coverage import coverage

    path = REPO / "config" / "example.yml"
    config = parse_config(path.read_text(encoding="utf-8"), str(path), env=EXAMPLE_ENV)
    assert [row.item.id for row in coverage(config) if row.status != "covered"] == []
    assert not config.monitored_elsewhere
    kinds = {config.modules[check.module].kind for check in config.checks}
    assert kinds == set(KINDS)
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
