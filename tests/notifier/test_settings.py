"""Settings: runs with no file, refuses bad keys with their location, keeps secrets out of sight."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import bcrypt
import pytest
from einvoice_notifier.settings import ConfigError, load_settings, parse_settings


def test_defaults_run_without_any_file() -> None:
    settings = load_settings(None)
    assert settings.listen == "127.0.0.1:9878"
    assert settings.resolved_database_url() == "sqlite:///var/notifier.db"
    assert settings.channel_names() == ["console"]
    assert settings.sla["outage"].clock == "wall" and settings.sla["outage"].resolution == 1800
    assert settings.sla["urgent"].resolution == 7200 and settings.sla["general"].response == 14400


def test_env_and_file_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_DB_PW", "s3cr3t-pw")
    token_file = tmp_path / "token"
    token_file.write_text("tok-from-file\n")
    settings = parse_settings({
        "database_url": "mysql+pymysql://notifier:${NOTIFIER_DB_PW}@db/notifier",
        "webhook_token_file": str(token_file),
    })
    assert settings.resolved_database_url() == "mysql+pymysql://notifier:s3cr3t-pw@db/notifier"
    assert settings.configured_webhook_token() == "tok-from-file"
    assert "s3cr3t-pw" not in repr(settings) and "s3cr3t-pw" not in str(settings.model_dump())


def test_token_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EINVOICE_NOTIFIER_WEBHOOK_TOKEN", "env-token")
    assert parse_settings({}).configured_webhook_token() == "env-token"


@pytest.mark.parametrize("raw, where", [
    ({"listn": "x"}, "listn"),
    ({"sla": {"urgent": {"response": "2 hours", "resolution": "2h"}}}, "sla.urgent.response"),
    ({"sla": {"critical": {"response": "2h", "resolution": "2h"}}}, "sla.critical"),
    ({"routing": {"first_line": ["robot"]}}, "robot"),
    ({"users": [{"name": "alice", "password_hash": "plain", "role": "operator"}]}, "users.0.password_hash"),
    ({"users": [{"name": "a", "password_hash": "$2b$12$" + "x" * 53, "role": "admin"}]}, "users.0.role"),
    ({"database_url": "${NOTIFIER_TEST_UNSET_VAR}"}, "database_url"),
    ({"webhook_token": "a", "webhook_token_file": "/etc/hostname"}, "webhook_token"),
    ({"channels": [{"type": "carrier_pigeon", "name": "x"}]}, "channels.0"),
    ({"channels": [{"type": "console", "name": "c", "bogus": 1}]}, "channels.0.console.bogus"),
])
def test_bad_settings_name_the_key(raw: dict, where: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(raw)
    assert where in str(info.value)


def test_user_with_bcrypt_hash_is_accepted() -> None:
    digest = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    settings = parse_settings({"users": [{"name": "alice", "password_hash": digest, "role": "operator"}]})
    assert settings.users[0].role == "operator"


def test_check_config_cli(tmp_path: Path) -> None:
    good = tmp_path / "good.yml"
    good.write_text("listen: 127.0.0.1:19878\nrouting: {duty_mobiles: ['13800000000']}\n")
    bad = tmp_path / "bad.yml"
    bad.write_text("outbox: {max_attempts: 0}\n")
    run = [sys.executable, "-m", "einvoice_notifier.cli", "--check-config", "--config"]
    ok = subprocess.run([*run, str(good)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "config OK" in ok.stdout
    failed = subprocess.run([*run, str(bad)], capture_output=True, text=True, timeout=60)
    assert failed.returncode == 2
    assert "outbox.max_attempts" in failed.stderr


def test_shipped_examples_validate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The annotated examples operators copy must stay valid as the models change."""
    import yaml
    from einvoice_notifier.calendar import load_calendar_data

    examples = Path(__file__).resolve().parents[2] / "notifier" / "einvoice_notifier" / "examples"
    calendar = load_calendar_data(examples / "calendar.yml")
    assert calendar.important_periods and calendar.holidays
    for name in ("NOTIFIER_DB_PASSWORD", "NOTIFIER_REPORTS_TOKEN", "WECOM_ROBOT_KEY"):
        monkeypatch.setenv(name, "from-env")
    text = (examples / "notifier.yml").read_text(encoding="utf-8")
    for secret in ("notifier_webhook_token", "notifier_console_secret"):
        (tmp_path / secret).write_text("s" * 32)
        text = text.replace(f"/run/secrets/{secret}", str(tmp_path / secret))
    text = text.replace("/etc/einvoice/calendar.yml", str(examples / "calendar.yml"))
    settings = parse_settings(yaml.safe_load(text))
    assert settings.channel_names() == ["onsite-robot", "console"]
    assert settings.resolved_database_url().endswith("notifier:from-env@mariadb:3306/notifier")
