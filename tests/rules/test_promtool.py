"""`promtool check rules` is clean, every promtool test file passes, and every alert rule has a test
case where it fires and one where it does not (the kubernetes-mixin habit, enforced)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.procs import require_binary

ROOT = Path(__file__).resolve().parents[2]
ALERT_RULES = ROOT / "alert_rules"
TEST_FILES = sorted((ALERT_RULES / "tests").glob("*.yml"))
# Labels that tell apart rules sharing an alertname (severity pairs, burn-rate windows, items).
DISTINGUISHING = ("severity", "item", "long_window", "short_window")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = require_binary("promtool")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=600, cwd=ROOT)


def test_promtool_check_rules_is_clean() -> None:
    files = sorted(str(p) for p in ALERT_RULES.glob("*.rules.yml"))
    # + einvoice-data (items 14, 16-19), einvoice-hosts, einvoice-dbhealth, -systems, -params
    assert len(files) == 10
    result = _promtool("check", "rules", *files)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "FAILED" not in output and "lint" not in output.lower(), output
    assert output.count("SUCCESS") == len(files)


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(test_file: Path) -> None:
    result = _promtool("test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _rule_keys() -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    keys = set()
    for path in ALERT_RULES.glob("*.rules.yml"):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    labels = tuple(sorted((k, str(v)) for k, v in rule["labels"].items()
                                          if k in DISTINGUISHING))
                    keys.add((rule["alert"], labels))
    return keys


def _cases() -> list[tuple[str, list[dict[str, str]]]]:
    cases = []
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for case in test.get("alert_rule_test", []):
                exp = [{k: str(v) for k, v in a.get("exp_labels", {}).items()}
                       for a in case.get("exp_alerts") or []]
                cases.append((case["alertname"], exp))
    return cases


def test_every_alert_rule_has_a_firing_and_a_quiet_test_case() -> None:
    keys = _rule_keys()
    assert len(keys) > 40
    cases = _cases()
    missing = []
    for alertname, labels in sorted(keys):
        def matches(alert: dict[str, str], labels: tuple[tuple[str, str], ...] = labels) -> bool:
            return all(alert.get(k) == v for k, v in labels)

        fired = any(name == alertname and any(matches(a) for a in exp) for name, exp in cases)
        quiet = any(name == alertname and not any(matches(a) for a in exp) for name, exp in cases)
        if not (fired and quiet):
            missing.append(f"{alertname} {dict(labels)} fired={fired} quiet={quiet}")
    assert not missing, "alert rules without a firing and a quiet promtool case:\n" + "\n".join(missing)
