"""Drill windows on a real Prometheus (issue 19), with the real clock: the generated rules with a
window open now mark a firing alert drill="true", count its outage as drill outage (not against the
budget) and keep the system's SLA state up while its raw state is down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from einvoice_core.generate import rules, rules_drills
from einvoice_core.thresholds import DrillWindow, DrillWindows, load_thresholds
from tests.rules.test_prometheus_e2e import Target, _value
from tests.support.procs import Proc, free_port, require_binary, wait_until


def _alert_labels(base: str, alertname: str) -> list[dict[str, str]]:
    answer = requests.get(f"{base}/api/v1/query", timeout=5,
                          params={"query": f'ALERTS{{alertname="{alertname}",alertstate="firing"}}'}).json()
    return [item["metric"] for item in answer["data"]["result"]]


@pytest.mark.xdist_group("rules-prometheus")
def test_an_outage_inside_an_open_window_is_a_drill(tmp_path: Path) -> None:
    binary = require_binary("prometheus")
    shipped = load_thresholds()
    th = shipped.model_copy(update={
        "evaluation_interval": "1s",
        "sla": shipped.sla.model_copy(update={"year_evaluation_interval": "1s", "outage_alert_for": "1s"}),
    })
    now = datetime.now(UTC)
    drills = DrillWindows(windows=(DrillWindow(name="e2e", start=now - timedelta(minutes=1),
                                               end=now + timedelta(minutes=30)),))
    rule_dir = tmp_path / "rules"
    rule_dir.mkdir()
    for name, text in rules.rule_files(th, drills=drills).items():
        (rule_dir / name).write_text(rules_drills.mark_rule_file(text), encoding="utf-8")
    target = Target()
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: 1s}\n"
        f"rule_files: ['{rule_dir}/*.rules.yml']\n"
        "scrape_configs:\n"
        f"  - job_name: einvoice-exporter\n    static_configs: [{{targets: ['127.0.0.1:{target.port}']}}]\n",
        encoding="utf-8")
    proc = Proc([binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}"], log=tmp_path / "prometheus.log")
    base = f"http://127.0.0.1:{port}"
    intake = '{service="intake"}'
    try:
        proc.wait_port(port)
        wait_until(lambda: requests.get(f"{base}/-/ready", timeout=2).ok, timeout=30, what="prometheus ready")
        wait_until(lambda: _value(base, "einvoice:drill_active") == 1, timeout=30, what="the window open")
        wait_until(lambda: _value(base, f"einvoice:service_up{intake}") == 1, timeout=30, what="service up")
        target.up = 0
        wait_until(lambda: bool(_alert_labels(base, "EinvoiceServiceOutage")), timeout=60,
                   what="the outage alert firing")
        (alert,) = _alert_labels(base, "EinvoiceServiceOutage")
        assert alert["service"] == "intake" and alert["drill"] == "true"
        wait_until(lambda: (_value(base, f"einvoice:service_drill_outage_seconds_year{intake}") or 0) >= 3,
                   timeout=30, what="three seconds of drill outage")
        assert _value(base, f"einvoice:service_outage_seconds_year{intake}") == 0
        assert _value(base, f"einvoice:service_outage_budget_remaining:ratio{intake}") == 1
        assert _value(base, f"einvoice:service_sla_up{intake}") == 1
        # the SERIES of test_prometheus_e2e has no system label: item 05's service carries the system
        assert _value(base, 'einvoice:system_up{system="public_service"}') == 0
        assert _value(base, 'einvoice:system_sla_up{system="public_service"}') == 1
        wait_until(lambda: (_value(base, 'einvoice:system_drill_outage_seconds_year{system="public_service"}')
                            or 0) >= 3, timeout=30, what="the system's drill outage")
        assert _value(base, 'einvoice:system_outage_seconds_year{system="public_service"}') == 0
        # the window belongs to the local year it starts in (0 only in New Year's first minute)
        zone = ZoneInfo(th.routing.location)
        same_year = drills.windows[0].start.astimezone(zone).year == datetime.now(zone).year
        assert _value(base, "einvoice:drills_declared:count_year") == (1 if same_year else 0)
    finally:
        proc.stop()
        target.close()
