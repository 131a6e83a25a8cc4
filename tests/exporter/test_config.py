"""Config errors are reported by message: file, key path and a sentence, never a secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from einvoice_exporter.config import ConfigError, load_config, parse_config

GOOD = """
modules:
  web: {kind: http, timeout: 5s}
  port: {kind: tcp, timeout: 2s, retries: 1}
checks:
  - {name: intake-health, item: "05", module: web, target: "http://intake.example:7001/health"}
  - {name: lb-vip, item: 2, module: port, target: "10.0.0.1:443", interval: 1m}
"""


def errors(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "exporter.yml", env or {})
    return caught.value.lines


def test_valid_config_is_parsed_with_normalised_items_and_durations():
    config = parse_config(GOOD, "exporter.yml", {})
    assert [c.item for c in config.checks] == ["05", "02"]
    assert config.checks[1].interval == 60.0
    assert config.modules["port"].timeout == 2.0


def test_unknown_key_names_path_and_suggests_spelling():
    lines = errors(GOOD.replace("timeout: 5s}", "timout: 5s}"))
    assert lines == ["exporter.yml: modules.web.timout: unknown key; did you mean 'timeout'? "
                     "allowed keys here: timeout, retries, item, kind, http"]


def test_unknown_key_in_a_check_names_the_check():
    lines = errors(GOOD.replace('interval: 1m}', 'interval: 1m, intervall: 2m}'))
    assert len(lines) == 1
    assert lines[0].startswith(
        "exporter.yml: checks[1] (lb-vip).intervall: unknown key; did you mean 'interval'?")


def test_bad_duration():
    lines = errors(GOOD.replace("timeout: 2s", "timeout: 2 seconds"))
    assert lines == ["exporter.yml: modules.port.timeout: '2 seconds' is not a duration; "
                     "write it like 5s, 1m30s or 500ms"]


def test_unknown_module():
    lines = errors(GOOD.replace("module: web", "module: webb"))
    assert lines == [
        "exporter.yml: checks[0] (intake-health): module 'webb' is not defined (defined: port, web)"]


def test_duplicate_check_names():
    lines = errors(GOOD.replace("name: lb-vip", "name: intake-health"))
    assert lines == ["exporter.yml: checks[1] (intake-health): check name 'intake-health' is used twice; "
                     "names must be unique"]


def test_duplicate_yaml_keys_are_refused_not_silently_merged():
    text = GOOD.replace("  port: {kind: tcp", "  web: {kind: tcp")
    lines = errors(text)
    assert lines == ["exporter.yml:4:3: YAML syntax error: duplicate key 'web' (first defined on line 3)"]


def test_bad_item():
    lines = errors(GOOD.replace('item: "05"', "item: 21"))
    assert lines == ["exporter.yml: checks[0] (intake-health).item: item 21 is not one of the contract's "
                     "items 01 to 20"]


def test_unknown_kind_and_missing_kind():
    lines = errors(GOOD.replace("kind: http", "kind: htp").replace("{kind: tcp, ", "{"))
    assert "exporter.yml: modules.web: kind 'htp' is not known; use one of dns, tcp, tls, http" in lines[0]
    assert lines[1].startswith("exporter.yml: modules.port: kind is missing; set kind to one of dns, tcp")


def test_several_problems_are_all_reported():
    text = GOOD.replace("timeout: 2s", "timeout: -").replace('item: "05"', "item: 0")
    lines = errors(text)
    assert len(lines) == 2
    assert any(".timeout:" in line for line in lines)
    assert any("checks[0] (intake-health).item:" in line for line in lines)


def test_missing_required_key():
    lines = errors(GOOD.replace(', target: "10.0.0.1:443"', ""))
    assert lines == ["exporter.yml: checks[1] (lb-vip).target: required key is missing"]


def test_env_var_is_expanded():
    text = GOOD.replace("10.0.0.1:443", "${VIP}:443")
    config = parse_config(text, "exporter.yml", {"VIP": "10.9.9.9"})
    assert config.checks[1].target == "10.9.9.9:443"


def test_escaped_env_reference_stays_literal():
    text = GOOD.replace("http://intake.example:7001/health", "http://intake.example/$${NOT_EXPANDED}")
    config = parse_config(text, "exporter.yml", {})
    assert config.checks[0].target == "http://intake.example/${NOT_EXPANDED}"


def test_unset_env_var_names_key_and_variable():
    lines = errors(GOOD.replace("10.0.0.1:443", "${VIP_ADDRESS}:443"))
    assert lines == ["exporter.yml: checks[1] (lb-vip).target: environment variable VIP_ADDRESS is not set"]


def test_secrets_expanded_from_env_are_masked_in_messages():
    from einvoice_exporter.config import _redact, expand_env

    secrets: set[str] = set()
    data = {"modules": {"cache": {"redis": {"password": "${PW}", "host": "${HOST}"}}}}
    expanded = expand_env(data, {"PW": "s3cr3t-Value-42", "HOST": "redis-a"}, (), [], secrets)
    assert expanded["modules"]["cache"]["redis"]["password"] == "s3cr3t-Value-42"
    assert secrets == {"s3cr3t-Value-42"}, "only values of secret-looking keys are collected"
    assert _redact("value 's3cr3t-Value-42' is wrong", secrets) == "value '<secret>' is wrong"


def test_config_errors_never_echo_values_of_secret_keys():
    text = GOOD.replace("{kind: http, timeout: 5s}", "{kind: http, timeout: 5s, http: {password: '${PW}'}}")
    lines = errors(text, {"PW": "s3cr3t-Value-42"})
    assert lines and lines[0].startswith("exporter.yml: modules.web.http.password: unknown key")
    assert all("s3cr3t-Value-42" not in line for line in lines)


def test_yaml_syntax_error_has_line_and_column():
    lines = errors("modules:\n  web: {kind: http\nchecks: []\n")
    assert len(lines) == 1
    assert lines[0].startswith("exporter.yml:3:")
    assert "YAML syntax error" in lines[0]


def test_empty_file_and_wrong_top_level():
    assert errors("") == ["exporter.yml: the file is empty; it needs at least `modules` and `checks`"]
    assert errors("- a\n- b\n") == ["exporter.yml: the top level must be a mapping with `modules` and "
                                    "`checks`, not a list"]


def test_unreadable_file_is_named(tmp_path: Path):
    missing = tmp_path / "nope.yml"
    with pytest.raises(ConfigError) as caught:
        load_config(missing, {})
    assert caught.value.lines == [f"{missing}: cannot read the file: No such file or directory"]
