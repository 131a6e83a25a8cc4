"""Drill windows (issue 19): validated like the change windows, rendered as Unix seconds into the
rules, the `drill` label on every alert of every generated file, and the yearly counts by local year."""

from __future__ import annotations

import calendar
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from einvoice_core.contract import DRILL_LABEL
from einvoice_core.generate import rules_drills, rules_systems
from einvoice_core.thresholds import DrillWindows, ThresholdsError, load_drill_windows, load_thresholds

ROOT = Path(__file__).resolve().parents[2]
ALERT_RULES = ROOT / "alert_rules"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "drills.yml"
    path.write_text(text, encoding="utf-8")
    return path


def _utc(text: str) -> int:
    return calendar.timegm(datetime.fromisoformat(text).timetuple())


def test_drill_windows_are_validated_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ThresholdsError, match=r"windows\.0.*end .* is not after start"):
        load_drill_windows(_write(tmp_path, 'windows:\n  - {name: x, start: "2027-04-18T02:00",'
                                            ' end: "2027-04-17T22:00"}\n'))
    with pytest.raises(ThresholdsError, match=r"windows\.0\.begin"):
        load_drill_windows(_write(tmp_path, 'windows:\n  - {name: x, begin: "2027-04-17T22:00",'
                                            ' end: "2027-04-18T02:00"}\n'))
    with pytest.raises(ThresholdsError, match=r"names must be unique.*x is used twice"):
        load_drill_windows(_write(tmp_path, (
            'windows:\n'
            '  - {name: x, start: "2027-04-17T22:00", end: "2027-04-18T02:00"}\n'
            '  - {name: x, start: "2027-10-16T22:00", end: "2027-10-17T02:00"}\n')))


def test_shipped_windows_are_rendered_as_unix_seconds_in_local_time() -> None:
    th = load_thresholds()
    drills = load_drill_windows(ALERT_RULES / rules_drills.FILE_NAME)
    assert len(drills.windows) >= th.drills.required_per_year
    first = drills.windows[0]
    # 22:00 in Asia/Shanghai (UTC+8) is 14:00 UTC
    start = _utc(first.start.isoformat()) - 8 * 3600
    end = _utc(first.end.isoformat()) - 8 * 3600
    assert first.bounds(th.routing.location) == (start, end)
    sla = (ALERT_RULES / "einvoice-sla.rules.yml").read_text(encoding="utf-8")
    assert f"(vector(time()) >= bool {start}) * (vector(time()) < bool {end})" in sla
    systems = (ALERT_RULES / rules_systems.FILE_NAME).read_text(encoding="utf-8")
    assert f"(vector(time()) >= bool {start}) * (vector(time()) < bool {end})" in systems


def test_no_windows_render_as_never_active() -> None:
    assert rules_drills.active_expr(DrillWindows(), "Asia/Shanghai") == "vector(0)"
    assert rules_drills.declared_expr(DrillWindows(), "Asia/Shanghai") == "vector(0)"
    assert rules_drills.held_expr(DrillWindows(), "Asia/Shanghai") == "vector(0)"


def test_every_alert_of_every_generated_file_carries_the_drill_label() -> None:
    files = sorted(ALERT_RULES.glob("*.rules.yml"))
    assert len(files) >= 9
    alerts = 0
    for path in files:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    alerts += 1
                    label = rule["labels"][DRILL_LABEL]
                    assert label == rules_drills.LABEL_TEMPLATE, (path.name, rule["alert"])
    assert alerts > 100


def test_a_drill_belongs_to_the_local_year_it_starts_in() -> None:
    # 2027-12-31 23:00 in Beijing is still 2027 there (15:00 UTC); it ends in 2028
    drills = DrillWindows.model_validate({"windows": [
        {"name": "a", "start": "2027-12-31T23:00:00", "end": "2028-01-01T03:00:00"},
        {"name": "b", "start": "2027-04-17T22:00:00", "end": "2027-04-18T02:00:00"},
        {"name": "c", "start": "2028-01-01T00:00:00+08:00", "end": "2028-01-01T04:00:00+08:00"},
    ]})
    year_2027 = (_utc("2027-01-01T00:00:00") - 8 * 3600, _utc("2028-01-01T00:00:00") - 8 * 3600)
    year_2028 = (year_2027[1], _utc("2029-01-01T00:00:00") - 8 * 3600)
    declared = rules_drills.declared_expr(drills, "Asia/Shanghai")
    assert declared == (
        f"2 * (vector(time()) >= bool {year_2027[0]}) * (vector(time()) < bool {year_2027[1]})\n"
        f"+ 1 * (vector(time()) >= bool {year_2028[0]}) * (vector(time()) < bool {year_2028[1]})")
    held = rules_drills.held_expr(drills, "Asia/Shanghai")
    # window a ends in 2028: it counts as held for 2027 in 2027's last second, not never
    assert f"(vector(time()) >= bool {year_2027[1] - 1}) * (vector(time()) < bool {year_2027[1]})" in held
    b_end = _utc("2027-04-18T02:00:00") - 8 * 3600
    assert f"1 * (vector(time()) >= bool {b_end}) * (vector(time()) < bool {year_2027[1]})" in held


def test_the_late_year_warning_reads_the_thresholds(tmp_path: Path) -> None:
    th = load_thresholds()
    fixture = th.model_copy(update={"drills": th.drills.model_copy(update={"required_per_year": 3,
                                                                           "warn_from": "12-15"})})
    (alert,) = [r for g in rules_drills.count_groups(fixture, DrillWindows()) for r in g["rules"]
                if r.get("alert")]
    assert alert["expr"].startswith("einvoice:drills_declared:count_year < 3\n")
    assert ">= 1215" in alert["expr"] and "time() + 28800" in alert["expr"]
    text = (ROOT / "einvoice_core" / "thresholds.yaml").read_text(encoding="utf-8")
    broken = text.replace('  warn_from: "11-01"', '  warn_from: "13-01"')
    assert broken != text
    path = tmp_path / "th.yml"
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(ThresholdsError, match=r"drills\.warn_from"):
        load_thresholds(path)
