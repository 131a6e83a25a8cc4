"""Holiday awareness of the item-18 rules: the notifier calendar's holidays become a PromQL
expression, evaluated here by the real promtool at local-date boundaries (Asia/Shanghai, UTC+8)."""

from __future__ import annotations

import subprocess
from datetime import date
from pathlib import Path

import pytest
import yaml

from einvoice_core.generate import rules_data
from tests.support.procs import require_binary


def test_calendar_holidays_are_read(tmp_path: Path) -> None:
    calendar = tmp_path / "calendar.yml"
    calendar.write_text("holidays:\n  - {name: 元旦, date: 1970-01-01}\n"
                        "  - {name: 春节, start: 1970-02-05, end: 1970-02-11, onsite_hours: []}\n")
    assert rules_data.holiday_ranges(calendar) == [(date(1970, 1, 1), date(1970, 1, 1)),
                                                   (date(1970, 2, 5), date(1970, 2, 11))]
    calendar.write_text("holidays:\n  - {name: x, start: 1970-02-05}\n")
    with pytest.raises(ValueError, match=r"holidays\[0\]"):
        rules_data.holiday_ranges(calendar)
    assert rules_data.holiday_ranges(tmp_path / "absent.yml") == []
    assert rules_data.holiday_expr([], 8) == "vector(0)"


def test_holiday_expression_follows_the_local_date(tmp_path: Path) -> None:
    expr = rules_data.holiday_expr([(date(1970, 1, 1), date(1970, 1, 1)),
                                    (date(1970, 1, 3), date(1970, 1, 4))], 8)
    (tmp_path / "holiday.rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "h", "rules": [
        {"record": "einvoice:business_holiday", "expr": expr}]}]}))

    def at(hours: int, value: int) -> dict:
        return {"expr": "einvoice:business_holiday", "eval_time": f"{hours}h",
                "exp_samples": [{"labels": "einvoice:business_holiday", "value": value}]}

    # promtool's clock starts at 1970-01-01 00:00 UTC = 08:00 in Asia/Shanghai.
    cases = [at(0, 1), at(15, 1), at(16, 0), at(39, 0), at(40, 1), at(87, 1), at(88, 0)]
    (tmp_path / "holiday.test.yml").write_text(yaml.safe_dump({
        "rule_files": ["holiday.rules.yml"], "evaluation_interval": "1h",
        "tests": [{"interval": "1h", "input_series": [], "promql_expr_test": cases}]}))
    result = subprocess.run([require_binary("promtool"), "test", "rules", "holiday.test.yml"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
