"""A configured secret that is empty is a start-up error naming its key (issue 10: an empty
webhook_token_file was accepted, a dev token generated, and Alertmanager's `Bearer ` refused)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from einvoice_notifier.settings import ConfigError, parse_settings


@pytest.mark.parametrize("content", ["", "\n", "   \n", "\r\n"])
@pytest.mark.parametrize("key", ["webhook_token", "console_secret_key", "database_url"])
def test_an_empty_secret_file_is_refused_with_its_key(tmp_path: Path, key: str, content: str) -> None:
    secret = tmp_path / "secret"
    secret.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        parse_settings({f"{key}_file": str(secret)})
    assert f"{key}_file {secret} is empty" in str(info.value)


def test_an_empty_api_token_file_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "api-token"
    secret.write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        parse_settings({"api_tokens": [{"name": "script", "token_file": str(secret)}]})
    assert "api_tokens.0" in str(info.value) and "is empty" in str(info.value)


def test_an_inline_secret_that_expands_to_nothing_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFIER_TEST_EMPTY_TOKEN", "")
    with pytest.raises(ConfigError) as info:
        parse_settings({"webhook_token": "${NOTIFIER_TEST_EMPTY_TOKEN}"})
    assert "webhook_token is empty" in str(info.value)


def test_a_short_console_secret_in_a_file_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "console"
    secret.write_text("short\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        parse_settings({"console_secret_key_file": str(secret)})
    assert "at least 16 characters" in str(info.value)


def test_a_filled_secret_file_still_works(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("tok-from-file\n", encoding="utf-8")
    assert parse_settings({"webhook_token_file": str(secret)}).configured_webhook_token() == "tok-from-file"


def test_the_cli_refuses_to_start_and_names_the_key(tmp_path: Path) -> None:
    secret = tmp_path / "webhook-token"
    secret.write_text("", encoding="utf-8")
    config = tmp_path / "notifier.yml"
    config.write_text(f"webhook_token_file: {secret}\nstate_dir: {tmp_path}\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "einvoice_notifier.cli", "--config", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "webhook_token_file" in done.stderr and "is empty" in done.stderr
    assert "generated dev token" not in done.stderr
