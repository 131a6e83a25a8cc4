"""The generator is deterministic, the committed alert_rules/ equal a fresh generation, and the
thresholds/calendar files fail with the key named when they are wrong."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from einvoice_core.catalogue import ITEMS
from einvoice_core.generate import rules
from einvoice_core.thresholds import (
    DEFAULT_PATH,
    ImportantPeriod,
    ImportantPeriods,
    ThresholdsError,
    load_important_periods,
    load_thresholds,
)

ROOT = Path(__file__).resolve().parents[2]
ALERT_RULES = ROOT / "alert_rules"
RUNBOOK = ROOT / "docs" / "runbook.md"


def _generate(into: Path) -> dict[str, str]:
    (into / "alert_rules").mkdir(parents=True)
    for calendar in ("important_periods.yml", "change_windows.yml", "drill_windows.yml"):
        shutil.copy(ALERT_RULES / calendar, into / "alert_rules" / calendar)
    paths = rules.write_all(into)
    return {str(p.relative_to(into / "alert_rules")): p.read_text(encoding="utf-8") for p in paths}


def test_committed_files_equal_a_fresh_generation(tmp_path: Path) -> None:
    fresh = _generate(tmp_path)
    assert fresh, "the generator wrote nothing"
    stale = [name for name, text in fresh.items()
             if (ALERT_RULES / name).read_text(encoding="utf-8") != text]
    assert not stale, f"alert_rules/ is stale, run `make generate` and commit: {stale}"


def test_generation_is_deterministic(tmp_path: Path) -> None:
    assert _generate(tmp_path / "a") == _generate(tmp_path / "b")


def _alert_rules() -> list[dict]:
    out = []
    for path in sorted(ALERT_RULES.glob("*.rules.yml")):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            out += [r for r in group["rules"] if "alert" in r]
    return out


def test_every_alert_has_severity_chinese_text_and_a_runbook_anchor_that_exists() -> None:
    runbook = RUNBOOK.read_text(encoding="utf-8")
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', runbook))
    alerts = _alert_rules()
    assert len(alerts) > 40
    for rule in alerts:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        for key in ("summary", "description"):
            assert re.search(r"[\u4e00-\u9fff]", rule["annotations"][key]), (rule["alert"], key)
        url = rule["annotations"]["runbook_url"]
        assert url.startswith("docs/runbook.md#"), url
        assert url.split("#", 1)[1] in anchors, f"docs/runbook.md has no anchor for {url}"


def test_every_item_has_a_check_failing_alert_with_its_for_and_severity() -> None:
    th = load_thresholds()
    by_item = {r["labels"].get("item"): r for r in _alert_rules() if r["alert"] == "EinvoiceCheckFailing"}
    assert sorted(by_item) == [i.id for i in ITEMS]
    assert by_item["01"]["for"] == "2m" and by_item["01"]["labels"]["severity"] == "critical"
    assert by_item["14"]["for"] == th.item_for("14") == "15m"
    assert by_item["13"]["labels"]["severity"] == "warning"
    assert "KAFKA消费状态检查" in by_item["13"]["annotations"]["summary"]


def test_objective_follows_from_the_yearly_budget() -> None:
    th = load_thresholds()
    assert th.sla.objective == pytest.approx(1 - 12 / 8760)
    assert round(th.sla.objective * 100, 3) == 99.863
    sla = (ALERT_RULES / "einvoice-sla.rules.yml").read_text(encoding="utf-8")
    assert "(14.4 * 0.001369863)" in sla and "(1 * 0.001369863)" in sla


def _write(tmp_path: Path, text: str, name: str = "thresholds.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_bad_threshold_names_the_key(tmp_path: Path) -> None:
    text = DEFAULT_PATH.read_text(encoding="utf-8")
    broken = text.replace("  warning_days: 30", "  warning_days: 30\n  warnign_days: 31")
    with pytest.raises(ThresholdsError, match=r"certificates\.warnign_days"):
        load_thresholds(_write(tmp_path, broken))
    broken = text.replace('"14": {for: 15m}', '"14": {for: 15 minutes}')
    with pytest.raises(ThresholdsError, match=r"items\.14\.for.*not a Prometheus duration"):
        load_thresholds(_write(tmp_path, broken))
    broken = text.replace('"20": {for: 5m}', '"21": {for: 5m}')
    with pytest.raises(ThresholdsError, match="not one of the contract's items"):
        load_thresholds(_write(tmp_path, broken))
    broken = text.replace("  restore_warning_after: 20m", "  restore_warning_after: 40m")
    with pytest.raises(ThresholdsError, match="restore_warning_after < restore_within"):
        load_thresholds(_write(tmp_path, broken))
    broken = text.replace("  retention: 400d", "  retention: 15d")
    with pytest.raises(ThresholdsError, match=r"sla.*retention must exceed a year"):
        load_thresholds(_write(tmp_path, broken))
    broken = text.replace("  pipeline:\n", "  pipe_line:\n")
    with pytest.raises(ThresholdsError, match=r"missing: pipeline; unknown: pipe_line"):
        load_thresholds(_write(tmp_path, broken))
    broken = text.replace('{start: "14:30", end: "22:00"}', '{start: "22:00", end: "02:00"}')
    with pytest.raises(ThresholdsError, match=r"routing\.onsite_hours\.1.*crosses midnight"):
        load_thresholds(_write(tmp_path, broken))


def test_systems_name_known_services_and_cover_every_item(tmp_path: Path) -> None:
    text = DEFAULT_PATH.read_text(encoding="utf-8")
    broken = text.replace("    services: [pipeline]\n", "    services: [pipe]\n")
    assert broken != text
    with pytest.raises(ThresholdsError, match=r"systems\.invoice_mgmt\.services: pipe is not a service"):
        load_thresholds(_write(tmp_path, broken))
    broken = text.replace('    items: ["14", "16", "17", "18", "19"]\n',
                          '    items: ["14", "16", "17", "18"]\n')
    assert broken != text
    with pytest.raises(ThresholdsError, match=r"items 19 serve no system"):
        load_thresholds(_write(tmp_path, broken))
    broken = text.replace("  ofd_front:\n", "  OFD-front:\n")
    with pytest.raises(ThresholdsError, match=r"systems\.OFD-front"):
        load_thresholds(_write(tmp_path, broken))


def test_important_periods_are_validated_and_split_by_month(tmp_path: Path) -> None:
    path = _write(tmp_path, "periods:\n  - {name: x, start: 2027-02-10, end: 2027-02-01}\n", "cal.yml")
    with pytest.raises(ThresholdsError, match=r"periods\.0.*end 2027-02-01 is before start"):
        load_important_periods(path)
    periods = ImportantPeriods(periods=(
        ImportantPeriod(name="跨月", start="2026-12-30", end="2027-01-02"),  # type: ignore[arg-type]
    ))
    config = rules.alertmanager_config(load_thresholds(), periods)
    interval = next(t for t in config["time_intervals"] if t["name"] == "important_periods")
    assert interval["time_intervals"] == [
        {"years": ["2026"], "months": ["december"], "days_of_month": ["30:31"], "location": "Asia/Shanghai"},
        {"years": ["2027"], "months": ["january"], "days_of_month": ["1:2"], "location": "Asia/Shanghai"},
    ]


def test_alertmanager_target_is_substitutable() -> None:
    target = rules.AlertmanagerTarget(notifier_url="http://127.0.0.1:9878/api/v1/webhook/alertmanager",
                                      credentials_file="/tmp/demo/token")
    text = rules.alertmanager_yaml(load_thresholds(), ImportantPeriods(), target=target)
    body = text.split("\nroute:", 1)[1]
    assert rules.NOTIFIER_URL not in body and rules.CREDENTIALS_FILE not in body
    config = yaml.safe_load(text)
    urls = {r["name"]: r["webhook_configs"][0]["url"] for r in config["receivers"]}
    assert urls["second-line"] == "http://127.0.0.1:9878/api/v1/webhook/alertmanager?route=second_line"
    assert urls["important-period"].endswith("?route=important_period")
    assert {r["webhook_configs"][0]["http_config"]["authorization"]["credentials_file"]
            for r in config["receivers"]} == {"/tmp/demo/token"}


def test_reason_names_cover_the_exporters_reasons() -> None:
    """The exporter's reasons and their Chinese names come from the one contract module."""
    from einvoice_exporter.outcome import Reason as ExporterReason

    from einvoice_core.contract import REASON_ZH, Reason

    assert ExporterReason is Reason
    assert set(rules.REASONS_ZH) == {reason.value for reason in Reason} == {r.value for r in REASON_ZH}


def _sla_alerts() -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for rule in _alert_rules():
        out.setdefault(rule["alert"], []).append(rule)
    return out


def test_service_alerts_carry_the_ticket_class_the_sla_event_and_the_card_annotations() -> None:
    """issue 9.5: the notifier reads the class and the follow-up event from labels, not from names."""
    from einvoice_core.contract import (
        ANNOTATION_FAILING_CHECKS,
        ANNOTATION_STARTED_AT,
        SLA_EVENT_LABEL,
        TICKET_CLASS_LABEL,
        SlaEvent,
    )

    alerts = _sla_alerts()
    expected = {
        "EinvoiceServiceOutage": ("outage", None),
        "EinvoiceServiceStall": ("stall", None),
        "EinvoiceServiceOutageRestoreDeadline": ("outage", SlaEvent.RESTORE_WARNING),
        "EinvoiceServiceStallRestoreDeadline": ("stall", SlaEvent.RESTORE_WARNING),
        "EinvoiceServiceOutageRestoreBreached": ("outage", SlaEvent.RESTORE_BREACHED),
        "EinvoiceServiceStallRestoreBreached": ("stall", SlaEvent.RESTORE_BREACHED),
        "EinvoiceServiceOutageLimitNear": ("outage", SlaEvent.LIMIT_NEAR),
        "EinvoiceServiceOutageLimitExceeded": ("outage", SlaEvent.LIMIT_EXCEEDED),
    }
    assert sorted(name for name in alerts
                  if name.startswith(("EinvoiceServiceOutage", "EinvoiceServiceStall"))) == sorted(expected)
    for name, (ticket_class, event) in expected.items():
        (rule,) = alerts[name]
        assert rule["labels"][TICKET_CLASS_LABEL] == ticket_class, name
        assert rule["labels"].get(SLA_EVENT_LABEL) == (event.value if event else None), name
        assert "query" in rule["annotations"][ANNOTATION_FAILING_CHECKS], name
        assert "einvoice:service_impaired_current_seconds" in rule["annotations"][ANNOTATION_STARTED_AT]
    # burn-rate and budget alerts are about the budget, not one outage: no outage ticket class
    for name in ("EinvoiceErrorBudgetBurn", "EinvoiceOutageBudgetLow", "EinvoiceOutageBudgetExhausted"):
        assert all(TICKET_CLASS_LABEL not in rule["labels"] for rule in alerts[name]), name


def test_the_two_hour_cap_fires_only_above_two_hours_and_the_restore_breach_above_30_minutes() -> None:
    alerts = _sla_alerts()
    (exceeded,) = alerts["EinvoiceServiceOutageLimitExceeded"]
    assert exceeded["expr"] == "last_over_time(einvoice:service_outage_current_seconds[5m]) / 60 > 120"
    (near,) = alerts["EinvoiceServiceOutageLimitNear"]
    assert near["expr"].endswith(" / 60 >= 90")
    for name in ("EinvoiceServiceOutageRestoreBreached", "EinvoiceServiceStallRestoreBreached"):
        (rule,) = alerts[name]
        assert "einvoice:service_impaired_current_seconds[5m]) / 60 > 30" in rule["expr"], name


def test_burn_rate_text_is_computed_from_the_yearly_budget() -> None:
    """issue 9.8: 14.4x spends the 12-hour yearly budget in 365/14.4 = 25.3 days, not 2.1."""
    texts = {rule["labels"]["long_window"]: rule["annotations"]["description"]
             for rule in _sla_alerts()["EinvoiceErrorBudgetBurn"]}
    assert "全年 12 小时宕机预算约 25 天即耗尽" in texts["1h"]
    assert "约 61 天" in texts["6h"] and "约 122 天" in texts["1d"] and "约 365 天" in texts["3d"]
    assert not any("2.1 天" in text or "5.0 天" in text for text in texts.values())
    runbook = RUNBOOK.read_text(encoding="utf-8")
    assert "14.4 倍约 25 天" in runbook and "6 倍约 61 天" in runbook


def test_change_windows_are_validated_and_rendered_as_unix_seconds(tmp_path: Path) -> None:
    from einvoice_core.thresholds import ChangeWindows, load_change_windows

    bad = _write(tmp_path, 'windows:\n  - {name: x, start: "2027-01-10T02:00", end: "2027-01-09T22:00"}\n',
                 "cw.yml")
    with pytest.raises(ThresholdsError, match=r"windows\.0.*is not after start"):
        load_change_windows(bad)
    typo = _write(tmp_path, 'windows:\n  - {name: x, begin: "2027-01-09T22:00", end: "2027-01-10T02:00"}\n',
                  "cw2.yml")
    with pytest.raises(ThresholdsError, match=r"windows\.0\.begin"):
        load_change_windows(typo)
    shipped = load_change_windows(ALERT_RULES / "change_windows.yml")
    # 2027-01-09 22:00 in Asia/Shanghai is 14:00 UTC
    assert shipped.windows[0].bounds("Asia/Shanghai") == (1799503200, 1799517600)
    th = load_thresholds()
    (restart,) = [r for g in rules.app_groups(th, shipped) for r in g["rules"]
                  if r.get("alert") == "EinvoiceAppRestartUnplanned"]
    assert ">= 1799503200 and" in restart["expr"] and "< 1799517600)" in restart["expr"]
    (none,) = [r for g in rules.app_groups(th, ChangeWindows()) for r in g["rules"] if r.get("alert")]
    assert none["expr"] == ('(\nchanges(process_start_time_seconds{job="einvoice-apps"}[15m]) > 0\n)\nor\n'
                            '(\nchanges(einvoice:app_start_time_seconds[15m]) > 0\n)\n')


def test_the_trusted_gap_is_longer_than_the_exporter_down_alert(tmp_path: Path) -> None:
    text = DEFAULT_PATH.read_text(encoding="utf-8")
    broken = text.replace("  max_gap: 5m ", "  max_gap: 1m ")
    assert broken != text
    with pytest.raises(ThresholdsError, match=r"exporter_down_for must be shorter than sla\.max_gap"):
        load_thresholds(_write(tmp_path, broken))


def test_down_and_degraded_come_from_the_exporters_gauge_with_a_fallback() -> None:
    """issue 22: failing and degraded -> stall; failing and not degraded -> outage; an exporter without
    einvoice_check_degraded still counts failures as outage."""
    groups = rules.item_groups(load_thresholds())
    records = {r["record"]: r["expr"] for r in groups[0]["rules"] if "record" in r}
    assert "einvoice_check_degraded or 0 * einvoice_check_up" in records["einvoice:item_down"]
    assert "einvoice_check_degraded or 0 * einvoice_check_up" in records["einvoice:item_degraded"]
